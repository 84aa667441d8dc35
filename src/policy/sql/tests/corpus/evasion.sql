-- #### Evasion attempts (comments, casing, quoting, nesting, functions in odd places) and
-- #### look-alikes that must stay read.
-- #### Format: a line "-- ==== <class>" (a note may follow), then the text up to the next
-- #### "-- ====" or "-- ####" line; "-- ####" lines are comments.
-- #### comments hiding keywords
-- ==== read
SELECT 1 -- ; DELETE FROM t
-- ==== read
SELECT /* ; DELETE FROM t */ 1
-- ==== read
SELECT /* nested /* ; DROP TABLE t */ still comment */ 1
-- ==== write
/* SELECT */ DELETE FROM t
-- ==== write
-- SELECT
DELETE FROM t
-- ==== write
SELECT 1 /* comment */; DELETE /* x */ FROM t
-- ==== unknown
DEL/**/ETE FROM t
-- ==== ddl
SELECT 1;--
DROP TABLE t
-- #### odd casing and quoted identifiers
-- ==== write
dElEtE fRoM t
-- ==== read
SeLeCt * FrOm T
-- ==== read
SELECT "DELETE" FROM "Weird Table"
-- ==== read
SELECT 1 AS "drop table x"
-- ==== admin
SELECT "pg_terminate_backend"(1)
-- ==== admin
SELECT PG_TERMINATE_BACKEND(1)
-- ==== admin
SELECT Pg_Catalog.Pg_Terminate_Backend(1)
-- ==== admin
SELECT "pg_catalog"."pg_read_file"('x')
-- ==== unknown
SELECT "NextVal"('s')
-- ==== write
SELECT NEXTVAL('s')
-- ==== write
UPDATE "T" SET "A" = 1
-- #### dollar quoting and E'' strings
-- ==== read
SELECT $$DELETE FROM t$$
-- ==== read
SELECT $tag$ ; DROP TABLE t; $tag$
-- ==== read
SELECT $a$ $b$ ; $b$ $a$
-- ==== read
SELECT E'\'; DELETE FROM t; --'
-- ==== write
SELECT E'it''s'; DELETE FROM t
-- ==== read
SELECT 'it''s; DROP TABLE t'
-- ==== read
SELECT U&'d\0061t'
-- ==== write
SELECT $$x$$; DELETE FROM t
-- ==== read
SELECT E'\x27; DROP TABLE t; --'
-- #### semicolons inside strings versus real ones
-- ==== read
SELECT 'a;b'
-- ==== read
SELECT 'a'; SELECT 'b'
-- ==== write
SELECT ';'; DELETE FROM t
-- ==== write
SELECT 1;DELETE FROM t
-- ==== write
SELECT 1;;;DELETE FROM t;;
-- ==== read
SELECT "a;b" FROM t
-- #### nested parentheses and CTEs
-- ==== read
SELECT ((((((1))))))
-- ==== read
SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT 1) a) b) c
-- ==== write
SELECT * FROM (SELECT nextval('s')) x
-- ==== admin
SELECT (SELECT (SELECT pg_terminate_backend(1)))
-- ==== write
WITH a AS (WITH b AS (DELETE FROM t RETURNING 1) SELECT * FROM b) SELECT * FROM a
-- ==== write
WITH a AS (SELECT 1) SELECT * FROM a WHERE EXISTS (WITH b AS (UPDATE t SET x = 1 RETURNING 1) SELECT 1 FROM b)
-- ==== admin
SELECT 1 UNION ALL (SELECT 2 UNION ALL (SELECT pg_reload_conf()::int))
-- #### functions in unusual positions
-- ==== admin
SELECT * FROM t ORDER BY pg_terminate_backend(1)
-- ==== write
SELECT * FROM t GROUP BY nextval('s')
-- ==== admin
SELECT * FROM t WHERE id = (SELECT lo_import('/etc/shadow'))
-- ==== admin
SELECT * FROM t HAVING count(*) > pg_cancel_backend(1)::int
-- ==== write
SELECT * FROM t LIMIT (SELECT setval('s', 1))
-- ==== admin
SELECT * FROM t OFFSET pg_reload_conf()::int
-- ==== admin
VALUES (pg_terminate_backend(1))
-- ==== admin
INSERT INTO t VALUES (pg_read_file('/etc/passwd'))
-- ==== admin
SELECT * FROM t JOIN u ON pg_terminate_backend(u.pid)
-- ==== admin
SELECT CASE WHEN false THEN pg_reload_conf() END
-- ==== admin
SELECT coalesce(null, pg_terminate_backend(1))
-- ==== admin
SELECT ARRAY[pg_terminate_backend(1)]
-- ==== admin
SELECT (pg_terminate_backend(1))::text COLLATE "C"
-- ==== admin
SELECT count(*) FILTER (WHERE pg_terminate_backend(1)) FROM t
-- ==== admin
SELECT row_number() OVER (ORDER BY pg_reload_conf()) FROM t
-- ==== write
SELECT string_agg(x, ',' ORDER BY nextval('s')) FROM t
-- ==== admin
SELECT * FROM LATERAL pg_ls_dir('/')
-- ==== admin
SELECT * FROM pg_catalog.pg_read_file('/etc/passwd') AS f
-- ==== admin
SELECT * FROM t WHERE x IN (1, 2, set_config('a.b', 'c', false))
-- ==== admin
SELECT 1 WHERE 1 = ANY (SELECT pg_terminate_backend(1)::int)
-- ==== unknown
SELECT my_func(1) FROM t
-- ==== unknown
SELECT (SELECT my_func(1))
-- ==== admin
CREATE VIEW v AS SELECT pg_read_file('x')
-- ==== admin
CREATE TABLE t (v text DEFAULT pg_read_file('/etc/passwd'))
-- ==== code
UPDATE t SET a = dblink_exec('x')
-- ==== unknown
DELETE FROM t WHERE id = my_func()
-- ==== read
SELECT EXTRACT(epoch FROM pg_postmaster_start_time())
-- ==== admin
SELECT 1 FROM t WHERE (a, b) = (SELECT 1, pg_terminate_backend(2))
-- #### look-alikes that must stay read
-- ==== read
SELECT 'DELETE FROM t'
-- ==== read
SELECT 'pg_terminate_backend(1)'
-- ==== read
SELECT * FROM t WHERE note = 'DROP TABLE users; --'
-- ==== read
SELECT * FROM deleted_rows
-- ==== read
SELECT update_count, insert_ts FROM audit_log
-- ==== read
SELECT * FROM t WHERE name LIKE '%GRANT%'
-- ==== read
SELECT 'set role admin'
-- ==== read
SELECT droplet FROM drops
-- ==== read
SELECT "nextval" FROM t
-- ==== read
SELECT t."lo_import" FROM t
-- ==== read
SELECT 1 -- pg_terminate_backend(1)
-- ==== read
SELECT /* VACUUM FULL */ 1
-- ==== read
SELECT $$COPY t TO PROGRAM 'x'$$
-- ==== read
SELECT 'EXECUTE p'
-- ==== read
WITH delete_me AS (SELECT 1) SELECT * FROM delete_me
