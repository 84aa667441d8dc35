-- #### Session statements: SET / RESET / SHOW, transactions, cursors, PREPARE / EXECUTE,
-- #### EXPLAIN, COPY.
-- #### Format: a line "-- ==== <class>" (a note may follow), then the text up to the next
-- #### "-- ====" or "-- ####" line; "-- ####" lines are comments.
-- #### SET / RESET / SHOW
-- ==== read
SET search_path TO public, "$user"
-- ==== read
SET statement_timeout = '5s'
-- ==== read
SET LOCAL statement_timeout = 5
-- ==== read
SET lock_timeout TO DEFAULT
-- ==== read
SET application_name = 'psql'
-- ==== read
SET TIME ZONE 'UTC'
-- ==== read
SET timezone = 'Europe/Paris'
-- ==== read
SET DateStyle = ISO
-- ==== read
SET datestyle TO 'ISO, MDY'
-- ==== read
SET IntervalStyle = postgres
-- ==== read
SET client_encoding = 'UTF8'
-- ==== read
SET NAMES 'UTF8'
-- #### pinned settings: only their pinned value (finding 3)
-- ==== read
SET client_encoding = 'utf-8'
-- ==== read
SET client_encoding TO unicode
-- ==== read
SET client_encoding TO DEFAULT
-- ==== read
RESET client_encoding
-- ==== read
SET NAMES DEFAULT
-- ==== read
SET standard_conforming_strings = on
-- ==== read
SET standard_conforming_strings TO 'true'
-- ==== read
SET standard_conforming_strings = 1
-- ==== unknown
SET client_encoding = 'SJIS'
-- ==== unknown
SET client_encoding TO "LATIN1"
-- ==== unknown
SET client_encoding = sql_ascii
-- ==== unknown
SET SESSION client_encoding = 'BIG5'
-- ==== unknown
SET LOCAL client_encoding = 'GBK'
-- ==== unknown
SET NAMES 'SJIS'
-- ==== unknown
SET NAMES sjis
-- ==== unknown
SET standard_conforming_strings = off
-- ==== unknown
SET standard_conforming_strings TO 'off'
-- ==== unknown
SET standard_conforming_strings = false
-- ==== unknown
SET standard_conforming_strings = 0
-- ==== unknown
SET LOCAL standard_conforming_strings = no
-- ==== unknown
SET standard_conforming_strings = 'nonsense'
-- ==== unknown
SET work_mem = '1MB'; SET standard_conforming_strings = off
-- ==== read
SET escape_string_warning = off
-- ==== read
SET extra_float_digits = 3
-- ==== read
SET work_mem = '64MB'
-- ==== read
SET SESSION work_mem = '64MB'
-- ==== read
SET enable_seqscan = off
-- ==== read
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ
-- ==== read
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY
-- ==== read
RESET ALL
-- ==== read
RESET work_mem
-- ==== read
SHOW search_path
-- ==== read
SHOW ALL
-- ==== read
SHOW server_version
-- ==== write
SET search_path = public; DELETE FROM t
-- #### transactions
-- ==== read
BEGIN
-- ==== read
BEGIN ISOLATION LEVEL SERIALIZABLE
-- ==== read
START TRANSACTION READ ONLY
-- ==== read
COMMIT
-- ==== read
END
-- ==== read
ROLLBACK
-- ==== read
ABORT
-- ==== read
SAVEPOINT s
-- ==== read
RELEASE SAVEPOINT s
-- ==== read
ROLLBACK TO SAVEPOINT s
-- ==== write
BEGIN; DELETE FROM t; COMMIT
-- ==== read
LISTEN ch
-- ==== read
UNLISTEN ch
-- ==== read
UNLISTEN *
-- ==== read
DISCARD ALL
-- ==== read
DISCARD PLANS
-- #### cursors
-- ==== read
DECLARE c CURSOR FOR SELECT * FROM t
-- ==== read
DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t
-- ==== admin
DECLARE c CURSOR FOR SELECT pg_terminate_backend(pid) FROM pg_stat_activity
-- ==== write
DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE
-- ==== read
FETCH 10 FROM c
-- ==== read
FETCH ALL IN c
-- ==== read
CLOSE c
-- ==== read
CLOSE ALL
-- #### PREPARE / EXECUTE / DEALLOCATE
-- ==== read
PREPARE p(int) AS SELECT * FROM t WHERE id = $1
-- ==== write
PREPARE p AS DELETE FROM t WHERE id = $1
-- ==== admin
PREPARE p AS SELECT pg_terminate_backend($1)
-- ==== read
DEALLOCATE p
-- ==== read
DEALLOCATE ALL
-- ==== read
DEALLOCATE PREPARE p
-- ==== unknown
EXECUTE p(1)
-- #### EXPLAIN
-- ==== read
EXPLAIN SELECT * FROM t
-- ==== read
EXPLAIN DELETE FROM t
-- ==== read
EXPLAIN UPDATE t SET a = 1
-- ==== read
EXPLAIN (COSTS OFF) INSERT INTO t VALUES (1)
-- ==== read
EXPLAIN SELECT pg_terminate_backend(1)
-- ==== unknown
EXPLAIN SELECT my_func(1)
-- ==== write
EXPLAIN ANALYZE DELETE FROM t
-- ==== read
EXPLAIN ANALYZE SELECT 1
-- ==== write
EXPLAIN (ANALYZE) UPDATE t SET a = 1
-- ==== write
EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t
-- ==== write
EXPLAIN (ANALYZE true) DELETE FROM t
-- ==== write
EXPLAIN (ANALYZE on) DELETE FROM t
-- ==== read
EXPLAIN (ANALYZE false) DELETE FROM t
-- ==== read
EXPLAIN (ANALYZE off, VERBOSE) DELETE FROM t
-- ==== admin
EXPLAIN ANALYZE SELECT pg_terminate_backend(1)
-- ==== ddl
EXPLAIN ANALYZE VERBOSE CREATE TABLE x AS SELECT 1
-- #### COPY
-- ==== read
COPY t TO STDOUT
-- ==== read
COPY t (a, b) TO STDOUT WITH (FORMAT csv, HEADER)
-- ==== read
COPY (SELECT * FROM t WHERE a > 1) TO STDOUT
-- ==== admin
COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT
-- ==== write
COPY (DELETE FROM t RETURNING *) TO STDOUT
