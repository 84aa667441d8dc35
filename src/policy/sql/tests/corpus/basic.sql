-- #### Statement kinds, one or two of each, with the class each must get.
-- #### Format: a line "-- ==== <class>" (a note may follow), then the text up to the next
-- #### "-- ====" or "-- ####" line; "-- ####" lines are comments.
-- #### reads
-- ==== read
SELECT 1
-- ==== read
select * from accounts
-- ==== read
SELECT a, b FROM t WHERE a = 1 ORDER BY b DESC LIMIT 10 OFFSET 5
-- ==== read
SELECT count(*) FROM t GROUP BY x HAVING count(*) > 1
-- ==== read
SELECT * FROM a JOIN b ON a.id = b.a_id LEFT JOIN c USING (id)
-- ==== read
SELECT * FROM t1 NATURAL JOIN t2 CROSS JOIN t3
-- ==== read
SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b
-- ==== read
VALUES (1, 'a'), (2, 'b')
-- ==== read
SELECT 1 UNION SELECT 2 EXCEPT SELECT 3 INTERSECT SELECT 4
-- ==== read
SELECT 1 UNION TABLE t
-- ==== read
WITH x AS (SELECT 1) SELECT * FROM x
-- ==== read
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 5) SELECT * FROM r
-- ==== read
SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE EXISTS (SELECT 1 FROM v))
-- ==== read
SELECT * FROM t WHERE x = ANY($1) AND y = ANY (ARRAY[1,2])
-- ==== read
SELECT $1::int, $2::text
-- ==== read
SELECT * FROM t TABLESAMPLE SYSTEM (10)
-- ==== read
SELECT * FROM ONLY t
-- ==== read
SELECT * FROM generate_series(1, 10) AS g(i)
-- ==== read
SELECT * FROM unnest(ARRAY[1,2,3]) WITH ORDINALITY AS u(x, n)
-- ==== read
SELECT x FROM t, LATERAL (SELECT 1) s
-- ==== read
SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t
-- ==== read
SELECT count(*) FILTER (WHERE a > 1) FROM t
-- ==== read
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) FROM t
-- ==== read
SELECT x FROM t GROUP BY GROUPING SETS ((a), (b), ())
-- ==== read
SELECT CASE WHEN a THEN 1 WHEN b THEN 2 ELSE 3 END FROM t
-- ==== read
SELECT '{1,2}'::int[], a[1], a[1:2], (a).b, (t.*)::text FROM t
-- ==== read
SELECT interval '1 day', date '2020-01-01', timestamp with time zone '2020-01-01'
-- ==== read
SELECT current_user, session_user, current_date, current_timestamp, localtime
-- ==== read
SELECT EXTRACT(year FROM now()), SUBSTRING('abc' FROM 2), TRIM(' x '), POSITION('a' IN 'b')
-- ==== read
SELECT OVERLAY('abc' PLACING 'x' FROM 2), CAST(1 AS text), 1::numeric(10,2)
-- ==== read
SELECT a @> b, a <@ b, a && b, a ~* 'x', a !~ 'y', j -> 'k', j ->> 'k', j #> '{a}', j ? 'k'
-- ==== read
SELECT a ~~ 'x%', a !~~ 'y%', a ILIKE 'z' ESCAPE '!', a SIMILAR TO 'q'
-- ==== read
SELECT x IS DISTINCT FROM y, x IS NOT NULL, x IS TRUE, x BETWEEN 1 AND 2 FROM t
-- ==== read
SELECT ROW(1, 2), ARRAY(SELECT 1), EXISTS(SELECT 1)
-- ==== read
SELECT coalesce(a, b), nullif(a, 0), greatest(1, 2), least(3, 4) FROM t
-- ==== read
SELECT json_build_object('a', 1), jsonb_agg(x), to_jsonb(t) FROM t
-- ==== read
SELECT md5(x), sha256(x::bytea), encode(x, 'hex'), gen_random_uuid() FROM t
-- ==== read
SELECT currval('s'), lastval()
-- ==== read
SELECT pg_catalog.lower('X'), pg_catalog.now()
-- ==== read
SELECT random(), pg_sleep(0.1)
-- ==== read
SELECT my_trusted_fn(1)
-- ==== read
SELECT app.safe_fn(1)
-- ==== unknown
SELECT public.my_trusted_fn(1)
-- ==== read

-- ==== read
   
-- ==== read
;;
-- ==== read
-- just a comment
-- ==== read
/* only a comment */ ;
-- #### writes
-- ==== write
INSERT INTO t VALUES (1)
-- ==== write
insert into t (a, b) select a, b from u
-- ==== write
INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v
-- ==== write
INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING RETURNING *
-- ==== write
UPDATE t SET a = 1 WHERE id = 2
-- ==== write
UPDATE t SET a = u.a FROM u WHERE t.id = u.id
-- ==== write
DELETE FROM t WHERE id = 1
-- ==== write
DELETE FROM t USING u WHERE t.id = u.id RETURNING t.*
-- ==== write
MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE
-- ==== write
MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)
-- ==== write
COPY t FROM STDIN
-- ==== write
COPY t (a, b) FROM STDIN WITH (FORMAT csv)
-- ==== write
SELECT * INTO new_t FROM t
-- ==== write
SELECT * FROM t FOR UPDATE
-- ==== write
SELECT * FROM t FOR SHARE SKIP LOCKED
-- ==== write
SELECT 1 FROM t FOR UPDATE OF t NOWAIT
-- ==== unknown  sqlparser 0.64 cannot parse it: fails closed
SELECT 1 FROM t FOR NO KEY UPDATE
-- ==== write
WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d
-- ==== write
WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u
-- ==== write
WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i
-- ==== write
WITH d AS (SELECT 1) DELETE FROM t USING d
-- ==== write
WITH x AS (SELECT 1), y AS (DELETE FROM t RETURNING 1) SELECT * FROM x
-- ==== write
SELECT nextval('seq')
-- ==== write
SELECT txid_current()
-- ==== write
SELECT pg_current_xact_id()
-- ==== read
SELECT txid_current_if_assigned(), pg_current_xact_id_if_assigned()
-- ==== write
SELECT setval('seq', 42)
-- ==== write
SELECT pg_notify('ch', 'x')
-- ==== write
NOTIFY ch, 'payload'
-- ==== write
LOCK TABLE t IN ACCESS EXCLUSIVE MODE
-- ==== write
LOCK t
-- ==== write
SELECT pg_advisory_lock(1)
-- ==== write
SELECT pg_try_advisory_xact_lock(1)
-- ==== write
REFRESH MATERIALIZED VIEW v
-- ==== write
REFRESH MATERIALIZED VIEW CONCURRENTLY v
-- #### ddl
-- ==== ddl
CREATE TABLE t (id int PRIMARY KEY, v text)
-- ==== ddl
CREATE TEMP TABLE tt AS SELECT 1
-- ==== unknown  not parsed by sqlparser 0.64
CREATE TABLE t2 (LIKE t INCLUDING ALL)
-- ==== ddl
CREATE UNLOGGED TABLE IF NOT EXISTS u (a int)
-- ==== ddl
CREATE TABLE t (id serial, c int DEFAULT nextval('s'))
-- ==== ddl
ALTER TABLE t ADD COLUMN c int
-- ==== ddl
ALTER TABLE t DROP COLUMN c
-- ==== ddl
ALTER TABLE t RENAME TO u
-- ==== ddl
ALTER TABLE t OWNER TO bob
-- ==== ddl
ALTER TABLE t ADD COLUMN c int DEFAULT nextval('s')
-- ==== ddl
DROP TABLE t
-- ==== ddl
DROP TABLE IF EXISTS a, s.b CASCADE
-- ==== ddl
DROP VIEW v
-- ==== ddl
DROP INDEX i
-- ==== ddl
DROP SCHEMA s CASCADE
-- ==== ddl
CREATE INDEX CONCURRENTLY i ON t (a)
-- ==== ddl
CREATE UNIQUE INDEX i ON t (lower(a))
-- ==== ddl
CREATE VIEW v AS SELECT 1
-- ==== ddl
CREATE MATERIALIZED VIEW mv AS SELECT * FROM t
-- ==== ddl
CREATE SCHEMA s
-- ==== ddl
CREATE DATABASE d
-- ==== ddl
CREATE SEQUENCE s START 1
-- ==== ddl
CREATE TYPE mood AS ENUM ('sad', 'ok')
-- ==== ddl
CREATE DOMAIN posint AS int CHECK (VALUE > 0)
-- ==== ddl
CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()
-- ==== ddl
TRUNCATE t
-- ==== ddl
TRUNCATE TABLE a, b RESTART IDENTITY CASCADE
-- ==== ddl
COMMENT ON TABLE t IS 'x'
-- ==== ddl
COMMENT ON COLUMN t.c IS 'x'
-- ==== ddl
DROP FUNCTION f(int)
-- ==== ddl
DROP TRIGGER tr ON t
-- ==== ddl
DROP EXTENSION hstore
-- #### privilege
-- ==== privilege
GRANT SELECT ON t TO bob
-- ==== privilege
GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO bob
-- ==== privilege
REVOKE SELECT ON t FROM bob
-- ==== privilege
GRANT admin TO bob
-- ==== privilege
REVOKE admin FROM bob
-- ==== privilege
CREATE ROLE bob LOGIN PASSWORD 'x'
-- ==== privilege
CREATE USER bob
-- ==== privilege
ALTER ROLE bob SUPERUSER
-- ==== privilege
ALTER USER bob WITH PASSWORD 'y'
-- ==== privilege
DROP ROLE bob
-- ==== privilege
DROP USER IF EXISTS bob
-- ==== privilege
SET ROLE admin
-- ==== privilege
SET role = 'admin'
-- ==== privilege
SET LOCAL ROLE admin
-- ==== privilege
RESET ROLE
-- ==== privilege
SET SESSION AUTHORIZATION bob
-- ==== privilege
RESET SESSION AUTHORIZATION
-- ==== privilege
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob
-- ==== privilege
CREATE POLICY p ON t USING (true)
-- ==== privilege
DROP POLICY p ON t
-- #### admin
-- ==== admin
VACUUM t
-- ==== admin
VACUUM
-- ==== admin
VACUUM FULL t
-- ==== admin
ANALYZE t
-- ==== admin
ANALYZE
-- ==== admin
SELECT pg_terminate_backend(123)
-- ==== admin
SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE state = 'idle'
-- ==== admin
SELECT pg_reload_conf()
-- ==== admin
SELECT pg_rotate_logfile()
-- ==== admin
SELECT pg_read_file('/etc/passwd')
-- ==== admin
SELECT pg_read_binary_file('/etc/passwd')
-- ==== admin
SELECT * FROM pg_ls_dir('.')
-- ==== admin
SELECT lo_import('/etc/passwd')
-- ==== admin
SELECT lo_export(123, '/tmp/x')
-- ==== admin
SELECT lo_unlink(123)
-- ==== admin
SELECT set_config('search_path', 'public', false)
-- ==== admin
SELECT pg_catalog.set_config('log_statement', 'none', false)
-- ==== admin
SELECT pg_stat_reset()
-- ==== admin
SELECT pg_create_logical_replication_slot('s', 'pgoutput')
-- ==== admin
SELECT pg_switch_wal()
-- ==== admin
COPY t FROM '/etc/passwd'
-- ==== admin
COPY t TO '/tmp/out.csv'
-- ==== admin
COPY (SELECT 1) TO '/tmp/x'
-- ==== admin
SET log_statement = 'none'
-- ==== admin
SET session_replication_role = replica
-- ==== admin
SET app.tenant_id = '42'
-- ==== admin
RESET log_min_duration_statement
-- ==== admin
CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw
-- #### code
-- ==== code
CALL p(1)
-- ==== code
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$
-- ==== code
CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$
-- ==== code
CREATE EXTENSION dblink
-- ==== code
LOAD 'auto_explain'
-- ==== code
COPY t TO PROGRAM 'rm -rf /'
-- ==== code
COPY t FROM PROGRAM 'curl http://x'
-- ==== code
SELECT dblink('host=x', 'DELETE FROM t')
-- ==== code
SELECT * FROM dblink('dbname=x', 'select 1') AS t(a int)
-- ==== code
SELECT dblink_exec('DROP TABLE t')
-- ==== code
SELECT query_to_xml('DELETE FROM t RETURNING 1', true, false, '')
-- ==== code
SELECT ts_stat('SELECT v FROM t')
-- ==== code
CREATE RULE r AS ON SELECT TO t DO INSTEAD DELETE FROM u
-- #### unknown: unparseable or unrecognised
-- ==== unknown
DO $$ BEGIN PERFORM 1; END $$
-- ==== unknown
ALTER SYSTEM SET work_mem = '1MB'
-- ==== unknown
CHECKPOINT
-- ==== unknown
REINDEX TABLE t
-- ==== unknown
CLUSTER t
-- ==== unknown
MOVE NEXT FROM c
-- ==== unknown
SECURITY LABEL ON TABLE t IS 'x'
-- ==== unknown
IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y
-- ==== unknown
SELEC 1
-- ==== unknown
SELECT * FROM
-- ==== unknown
SELECT 'unterminated
-- ==== unknown
SELECT $$unterminated
-- ==== unknown
SELECT 1; garbage here
-- ==== unknown
SELECT my_func(1)
-- ==== unknown
SELECT public.lower('x')
-- ==== unknown
SELECT myschema.now()
-- ==== unknown
SELECT "LOWER"('x')
-- ==== unknown
SELECT a ||| b
-- ==== unknown
SELECT a OPERATOR(public.+) b
-- ==== unknown
SELECT * FROM my_srf(1)
-- ==== unknown
USE db
-- ==== unknown
SHOW TABLES
-- ==== unknown
DESCRIBE t
-- ==== unknown
EXECUTE p
-- ==== unknown
PREPARE TRANSACTION 'x'
-- ==== unknown
VACUUM (FULL, ANALYZE) t
-- ==== unknown
SELECT * FROM t; DO $$ BEGIN END $$
-- ==== unknown
TABLE t
