-- #### Texts PostgreSQL's grammar reads differently from sqlparser (issue 12, findings 1
-- #### and 2) and reads both agree on.
-- #### Format: a line "-- ==== <class>" (a note may follow), then the text up to the next
-- #### "-- ====" or "-- ####" line; "-- ####" lines are comments.
-- #### Finding 1: ANALYSE is PostgreSQL's other spelling of ANALYZE in an option list.
-- ==== unknown
EXPLAIN (ANALYSE) DELETE FROM accounts
-- ==== unknown
EXPLAIN (ANALYSE, COSTS off) INSERT INTO accounts VALUES (1)
-- ==== unknown
EXPLAIN (analyse true) UPDATE accounts SET balance = 0
-- ==== read
EXPLAIN (ANALYSE) SELECT 1
-- ==== read
EXPLAIN (ANALYSE off) DELETE FROM accounts
-- #### Finding 2's texts, each judged on its own: 0 / false / off are off, anything else on.
-- ==== read
EXPLAIN (ANALYZE 0) DELETE FROM accounts
-- ==== write
EXPLAIN (ANALYZE 1) DELETE FROM accounts
-- ==== read
EXPLAIN (ANALYZE 'OFF') DELETE FROM accounts
-- ==== read
EXPLAIN (ANALYZE FALSE) DELETE FROM accounts
-- ==== write
EXPLAIN (ANALYZE 2) DELETE FROM accounts
-- ==== unknown
EXPLAIN (ANALYZE '0') DELETE FROM accounts
-- ==== write
EXPLAIN (ANALYZE 0.0) DELETE FROM accounts
-- ==== write
EXPLAIN (ANALYZE off, ANALYZE on) DELETE FROM accounts
-- #### plan-only EXPLAIN still plans, and never runs
-- ==== read
EXPLAIN (COSTS off) DELETE FROM accounts
-- ==== read
EXPLAIN SELECT * INTO x FROM accounts
-- ==== read
EXPLAIN SELECT * FROM accounts FOR UPDATE
-- ==== unknown
EXPLAIN (ANALYSE) SELECT * FROM accounts FOR UPDATE
-- ==== unknown
EXPLAIN (ANALYSE) SELECT nextval('s')
-- ==== unknown
EXPLAIN (ANALYSE) WITH d AS (DELETE FROM accounts RETURNING 1) SELECT * FROM d
-- #### reads both grammars agree on
-- ==== read
SELECT a ILIKE 'z' ESCAPE '!', EXTRACT(year FROM now()), x AT TIME ZONE 'UTC' FROM t
-- ==== read
SELECT * FROM t TABLESAMPLE BERNOULLI (5)
-- ==== unknown
COMMIT PREPARED 'x'
-- ==== unknown
ROLLBACK PREPARED 'x'
-- ==== read
SET TRANSACTION READ ONLY; SHOW work_mem; RESET ALL
