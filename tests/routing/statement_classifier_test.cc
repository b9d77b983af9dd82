// Table-driven tests of the statement classifier: one row per statement with
// the expected kind and write reason (a write is exactly a reason other than
// kNone). Session-state details, options, hints and the cache are in
// statement_classifier_session_test.cc.
#include "routing/statement_classifier.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "tests/routing/classifier_test_util.h"

namespace pgregion::routing {
namespace {

using enum WriteReason;
constexpr StatementKind R = StatementKind::kRead;
constexpr StatementKind W = StatementKind::kWrite;
constexpr StatementKind T = StatementKind::kTransaction;
constexpr StatementKind S = StatementKind::kSession;
constexpr StatementKind U = StatementKind::kUtility;

struct Row {
  std::string_view sql;
  StatementKind kind;
  WriteReason reason;
};

// Single statements. Reads first, then writes by reason, then transaction
// control and session state.
constexpr Row kRows[] = {
    // Plain reads.
    {"SELECT 1", R, kNone},
    {"select 1", R, kNone},
    {"SELECT abalance FROM pgbench_accounts WHERE aid = 123;", R, kNone},
    {"SELECT abalance FROM pgbench_accounts WHERE aid = $1", R, kNone},
    {"WITH x AS (SELECT 1) SELECT * FROM x", R, kNone},
    {"WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b", R, kNone},
    {"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) "
     "SELECT * FROM r",
     R, kNone},
    {"SELECT pg_advisory_unlock(1)", R, kNone},
    {"SELECT pg_advisory_unlock_shared(1)", R, kNone},
    {"SELECT pg_advisory_unlock_all()", R, kNone},
    {"SELECT count(*) FROM t", R, kNone},
    {"SELECT now()", R, kNone},
    {"SELECT pg_catalog.now()", R, kNone},
    {"SELECT NOW()", R, kNone},
    {"SELECT lower(name), upper(name), length(name) FROM users", R, kNone},
    {"SELECT coalesce(a, 0), greatest(1, 2), least(3, 4), nullif(a, b) FROM t", R, kNone},
    {"SELECT json_build_object('a', 1), jsonb_build_array(1, 2)", R, kNone},
    {"SELECT jsonb_agg(t) FROM t", R, kNone},
    {"SELECT data->>'x' FROM t WHERE data ? 'k'", R, kNone},
    {"SELECT jsonb_path_query(doc, '$.a') FROM t", R, kNone},
    {"SELECT generate_series(1, 10)", R, kNone},
    {"SELECT * FROM generate_series(1, 10) g", R, kNone},
    {"SELECT pg_is_in_recovery(), inet_server_port()", R, kNone},
    {"SELECT current_setting('search_path')", R, kNone},
    {"SELECT version()", R, kNone},
    {"SELECT to_char(now(), 'YYYY-MM-DD')", R, kNone},
    {"SELECT date_trunc('day', now())", R, kNone},
    {"SELECT extract(epoch FROM now())", R, kNone},
    {"SELECT now() AT TIME ZONE 'UTC'", R, kNone},
    {"SELECT array_agg(x ORDER BY x) FROM t", R, kNone},
    {"SELECT string_agg(name, ',') FROM t", R, kNone},
    {"SELECT a, row_number() OVER (PARTITION BY b ORDER BY c) FROM t", R, kNone},
    {"SELECT lag(a) OVER w, lead(a) OVER w FROM t WINDOW w AS (ORDER BY b)", R, kNone},
    {"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) FROM t", R, kNone},
    {"SELECT CURRENT_DATE, CURRENT_TIMESTAMP, CURRENT_USER, LOCALTIME", R, kNone},
    {"SELECT CASE WHEN a > 0 THEN 'x' ELSE 'y' END FROM t", R, kNone},
    {"SELECT a FROM t1 JOIN t2 USING (id) LEFT JOIN t3 ON t3.id = t1.id", R, kNone},
    {"SELECT * FROM t WHERE id IN (SELECT id FROM u)", R, kNone},
    {"SELECT EXISTS (SELECT 1 FROM t)", R, kNone},
    {"SELECT 1 UNION SELECT 2", R, kNone},
    {"SELECT 1 INTERSECT SELECT 1 EXCEPT SELECT 2", R, kNone},
    {"VALUES (1), (2)", R, kNone},
    {"TABLE t", R, kNone},
    {"SELECT * FROM t LIMIT 10 OFFSET 5", R, kNone},
    {"SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b", R, kNone},
    {"SELECT a, sum(b) FROM t GROUP BY a HAVING sum(b) > 10", R, kNone},
    {"SELECT * FROM t TABLESAMPLE SYSTEM (10)", R, kNone},
    {"SELECT 'it''s', E'a\\'b', $$dollar$$, $tag$x$tag$, B'101', X'ff', U&'\\0041'", R, kNone},
    {"SELECT md5('x'), gen_random_uuid()", R, kNone},
    {"SELECT t.* FROM t WHERE t.created_at > now() - interval '1 day'", R, kNone},
    {"SELECT x::int, CAST(y AS text) FROM t", R, kNone},
    {"SELECT pg_sleep(0.1)", R, kNone},
    {"SELECT random()", R, kNone},
    {"SELECT pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp()", R, kNone},
    {"SELECT regexp_replace(a, 'x', 'y', 'g') FROM t", R, kNone},
    {"SELECT pg_get_viewdef('v'::regclass)", R, kNone},
    {"SELECT has_table_privilege('t', 'SELECT')", R, kNone},
    {"SELECT * FROM pg_stat_activity", R, kNone},
    {"SELECT relname FROM pg_class WHERE relkind = 'r'", R, kNone},
    {"SELECT unnest(ARRAY[1, 2, 3])", R, kNone},
    {"SELECT ARRAY(SELECT 1)", R, kNone},
    {"SELECT (SELECT max(a) FROM t) AS m", R, kNone},
    {"SELECT a FROM t WHERE b LIKE 'x%' ORDER BY a DESC NULLS LAST", R, kNone},
    {"SELECT to_json(t) FROM t", R, kNone},
    {"SELECT format('%s', a), concat_ws(',', a, b) FROM t", R, kNone},
    {"SELECT a FROM t WHERE a = ANY($1)", R, kNone},
    {"/* a comment */ SELECT 1", R, kNone},
    {"SELECT 1 -- pgregion: route=primary", R, kNone},
    {"SHOW search_path", R, kNone},
    {"SHOW ALL", R, kNone},
    {"SHOW TIME ZONE", R, kNone},
    {"EXPLAIN SELECT 1", R, kNone},
    {"EXPLAIN DELETE FROM t", R, kNone},
    {"EXPLAIN (COSTS OFF) UPDATE t SET a = 1", R, kNone},
    {"EXPLAIN SELECT nextval('s')", R, kNone},
    {"EXPLAIN (ANALYZE) SELECT 1", R, kNone},
    {"EXPLAIN ANALYZE SELECT * FROM t", R, kNone},
    {"EXPLAIN (ANALYZE off) DELETE FROM t", R, kNone},
    {"EXPLAIN (ANALYZE false) DELETE FROM t", R, kNone},
    {"EXPLAIN (ANALYZE 0) DELETE FROM t", R, kNone},
    {"COPY (SELECT 1) TO STDOUT", R, kNone},
    {"COPY t TO STDOUT", R, kNone},
    {"COPY t (a, b) TO STDOUT WITH (FORMAT csv)", R, kNone},
    {"FETCH 10 FROM c", R, kNone},
    {"FETCH ALL IN c", R, kNone},
    {"MOVE NEXT IN c", R, kNone},
    {"DECLARE c CURSOR FOR SELECT 1", R, kNone},
    {"DECLARE c SCROLL CURSOR WITHOUT HOLD FOR SELECT * FROM t", R, kNone},

    // DML, pgbench's TPC-B statements among them.
    {"INSERT INTO t VALUES (1)", W, kDml},
    {"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
     "VALUES (3, 1, 5, -12, CURRENT_TIMESTAMP);",
     W, kDml},
    {"UPDATE pgbench_accounts SET abalance = abalance + -12 WHERE aid = 5;", W, kDml},
    {"UPDATE pgbench_tellers SET tbalance = tbalance + -12 WHERE tid = 3;", W, kDml},
    {"UPDATE pgbench_branches SET bbalance = bbalance + -12 WHERE bid = 1;", W, kDml},
    {"DELETE FROM t WHERE a = 1", W, kDml},
    {"delete from t", W, kDml},
    {"INSERT INTO t SELECT * FROM u", W, kDml},
    {"INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b", W, kDml},
    {"INSERT INTO t (a) VALUES ($1) RETURNING id", W, kDml},
    {"UPDATE t SET a = 1 FROM u WHERE t.id = u.id", W, kDml},
    {"MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN UPDATE SET b = s.b "
     "WHEN NOT MATCHED THEN INSERT VALUES (s.a, s.b)",
     W, kDml},
    {"WITH d AS (DELETE FROM t RETURNING *) INSERT INTO log SELECT * FROM d", W, kDml},
    {"COPY (DELETE FROM t RETURNING *) TO STDOUT", W, kDml},
    {"EXPLAIN ANALYZE DELETE FROM t", W, kDml},
    {"EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", W, kDml},
    {"EXPLAIN (ANALYZE true) INSERT INTO t VALUES (1)", W, kDml},
    {"EXPLAIN (ANALYZE on, VERBOSE) DELETE FROM t", W, kDml},

    // Data-modifying CTEs at any depth.
    {"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", W, kModifyingCte},
    {"WITH a AS (WITH b AS (DELETE FROM t RETURNING *) SELECT * FROM b) SELECT * FROM a", W,
     kModifyingCte},
    {"WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u", W, kModifyingCte},
    {"WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i", W, kModifyingCte},
    {"SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) s", W, kModifyingCte},
    {"COPY (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) TO STDOUT", W, kModifyingCte},
    {"with x as (update t set a = 2 returning a) select a from x", W, kModifyingCte},

    // Locking clauses at any depth.
    {"SELECT * FROM t FOR UPDATE", W, kLockingClause},
    {"SELECT * FROM t WHERE id = 1 FOR NO KEY UPDATE", W, kLockingClause},
    {"select * from t where id = 1 for no key update", W, kLockingClause},
    {"SELECT * FROM t FOR SHARE", W, kLockingClause},
    {"SELECT * FROM t FOR KEY SHARE", W, kLockingClause},
    {"SELECT * FROM t FOR UPDATE SKIP LOCKED", W, kLockingClause},
    {"SELECT * FROM t FOR UPDATE NOWAIT", W, kLockingClause},
    {"SELECT * FROM t FOR UPDATE OF t", W, kLockingClause},
    {"SELECT * FROM (SELECT * FROM t FOR UPDATE) s", W, kLockingClause},
    {"WITH l AS (SELECT * FROM t FOR UPDATE) SELECT * FROM l", W, kLockingClause},
    {"SELECT * FROM t WHERE id IN (SELECT id FROM u FOR SHARE)", W, kLockingClause},
    {"DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", W, kLockingClause},
    {"EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", W, kLockingClause},

    // SELECT INTO.
    {"SELECT * INTO new_t FROM t", W, kSelectInto},
    {"SELECT 1 INTO TEMP tt", W, kSelectInto},
    {"SELECT 1 INTO UNLOGGED u", W, kSelectInto},

    // Functions with side effects, anywhere in the tree.
    {"SELECT nextval('s')", W, kWriteFunction},
    {"SELECT NEXTVAL('s')", W, kWriteFunction},
    {"SELECT pg_catalog.nextval('s')", W, kWriteFunction},
    {"SELECT PG_CATALOG.NEXTVAL('s')", W, kWriteFunction},
    {"SELECT \"nextval\"('s')", W, kWriteFunction},
    {"SELECT public.nextval('s')", W, kWriteFunction},
    {"SELECT (SELECT nextval('s'))", W, kWriteFunction},
    {"SELECT * FROM t WHERE id IN (SELECT setval('s', 1))", W, kWriteFunction},
    {"SELECT setval('s', 42, false)", W, kWriteFunction},
    {"SELECT currval('s')", W, kWriteFunction},
    {"SELECT lastval()", W, kWriteFunction},
    {"SELECT a FROM t WHERE b = nextval('s')", W, kWriteFunction},
    {"SELECT count(*) FROM t GROUP BY a HAVING max(b) > nextval('s')", W, kWriteFunction},
    {"SELECT CASE WHEN a THEN nextval('s') END FROM t", W, kWriteFunction},
    {"SELECT * FROM t ORDER BY nextval('s')", W, kWriteFunction},
    {"SELECT coalesce(a, nextval('s')) FROM t", W, kWriteFunction},
    {"SELECT * FROM nextval('s')", W, kWriteFunction},
    {"SELECT * FROM t JOIN LATERAL (SELECT nextval('s')) x ON true", W, kWriteFunction},
    {"VALUES (nextval('s'))", W, kWriteFunction},
    {"SELECT 1 UNION SELECT nextval('s')", W, kWriteFunction},
    {"SELECT ARRAY[nextval('s')]", W, kWriteFunction},
    {"SELECT nextval('s')::text", W, kWriteFunction},
    {"WITH x AS (SELECT nextval('s')) SELECT * FROM x", W, kWriteFunction},
    {"SELECT pg_advisory_lock(1)", W, kWriteFunction},
    {"SELECT pg_advisory_lock(1, 2)", W, kWriteFunction},
    {"SELECT pg_advisory_lock_shared(1)", W, kWriteFunction},
    {"SELECT pg_advisory_xact_lock(1)", W, kWriteFunction},
    {"SELECT pg_advisory_xact_lock_shared(1)", W, kWriteFunction},
    {"SELECT pg_try_advisory_lock(1)", W, kWriteFunction},
    {"SELECT pg_try_advisory_lock_shared(1)", W, kWriteFunction},
    {"SELECT pg_try_advisory_xact_lock(1)", W, kWriteFunction},
    {"SELECT pg_try_advisory_xact_lock_shared(1)", W, kWriteFunction},
    {"SELECT set_config('search_path', 'x', false)", W, kWriteFunction},
    {"SELECT pg_notify('ch', 'x')", W, kWriteFunction},
    {"SELECT lo_import('/tmp/x')", W, kWriteFunction},
    {"SELECT lo_create(0)", W, kWriteFunction},
    {"SELECT lo_unlink(123)", W, kWriteFunction},
    {"SELECT lo_put(1, 0, 'x')", W, kWriteFunction},
    {"SELECT lo_from_bytea(0, 'x')", W, kWriteFunction},
    {"SELECT txid_current()", W, kWriteFunction},
    {"SELECT pg_current_xact_id()", W, kWriteFunction},
    {"SELECT pg_current_wal_lsn()", W, kWriteFunction},
    {"SELECT pg_current_wal_insert_lsn()", W, kWriteFunction},
    {"SELECT pg_switch_wal()", W, kWriteFunction},
    {"SELECT pg_create_restore_point('x')", W, kWriteFunction},
    {"SELECT pg_create_physical_replication_slot('s')", W, kWriteFunction},
    {"SELECT pg_create_logical_replication_slot('s', 'pgoutput')", W, kWriteFunction},
    {"SELECT pg_drop_replication_slot('s')", W, kWriteFunction},
    {"SELECT pg_replication_slot_advance('s', '0/0')", W, kWriteFunction},
    {"SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)", W, kWriteFunction},
    {"SELECT pg_terminate_backend(123)", W, kWriteFunction},
    {"SELECT pg_cancel_backend(123)", W, kWriteFunction},
    {"SELECT pg_reload_conf()", W, kWriteFunction},
    {"SELECT pg_rotate_logfile()", W, kWriteFunction},
    {"SELECT dblink_exec('conn', 'DELETE FROM t')", W, kWriteFunction},
    {"SELECT pg_stat_reset()", W, kWriteFunction},
    {"SELECT pg_stat_reset_shared('bgwriter')", W, kWriteFunction},
    {"SELECT pg_stat_reset_single_table_counters(1)", W, kWriteFunction},
    {"EXPLAIN ANALYZE SELECT nextval('s')", W, kWriteFunction},
    {"DECLARE c CURSOR WITHOUT HOLD FOR SELECT nextval('s')", W, kWriteFunction},

    // Unknown functions go to the primary by default.
    {"SELECT my_func(1)", W, kUnknownFunction},
    {"SELECT * FROM my_srf()", W, kUnknownFunction},
    {"SELECT app.compute(a) FROM t", W, kUnknownFunction},
    {"SELECT public.lower('X')", W, kUnknownFunction},
    {"SELECT a FROM t WHERE f(a) > 0", W, kUnknownFunction},

    // DDL, GRANT/REVOKE, and statements we do not special-case.
    {"CREATE TABLE t (a int)", W, kDdl},
    {"CREATE TABLE IF NOT EXISTS t (a int PRIMARY KEY, b text DEFAULT nextval('s'))", W, kDdl},
    {"ALTER TABLE t ADD COLUMN b int", W, kDdl},
    {"ALTER TABLE t RENAME TO u", W, kDdl},
    {"DROP TABLE t", W, kDdl},
    {"DROP TABLE IF EXISTS t CASCADE", W, kDdl},
    {"TRUNCATE t", W, kDdl},
    {"CREATE INDEX i ON t (a)", W, kDdl},
    {"CREATE INDEX CONCURRENTLY i ON t (a)", W, kDdl},
    {"DROP INDEX i", W, kDdl},
    {"CREATE VIEW v AS SELECT 1", W, kDdl},
    {"CREATE OR REPLACE VIEW v AS SELECT * FROM t", W, kDdl},
    {"CREATE MATERIALIZED VIEW mv AS SELECT 1", W, kDdl},
    {"CREATE TABLE x AS SELECT 1", W, kDdl},
    {"CREATE TABLE x AS SELECT * FROM t WITH NO DATA", W, kDdl},
    {"EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", W, kDdl},
    {"CREATE SEQUENCE s", W, kDdl},
    {"ALTER SEQUENCE s RESTART", W, kDdl},
    {"CREATE SCHEMA app", W, kDdl},
    {"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$SELECT 1$$", W, kDdl},
    {"CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$", W, kDdl},
    {"DROP FUNCTION f", W, kDdl},
    {"CREATE EXTENSION pg_trgm", W, kDdl},
    {"CREATE TYPE mood AS ENUM ('sad', 'ok')", W, kDdl},
    {"CREATE DOMAIN d AS int CHECK (VALUE > 0)", W, kDdl},
    {"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", W, kDdl},
    {"CREATE ROLE r LOGIN", W, kDdl},
    {"ALTER ROLE r SET work_mem = '1MB'", W, kDdl},
    {"DROP ROLE r", W, kDdl},
    {"CREATE DATABASE d", W, kDdl},
    {"COMMENT ON TABLE t IS 'x'", W, kDdl},
    {"ALTER SYSTEM SET work_mem = '1MB'", W, kDdl},
    {"GRANT SELECT ON t TO u", W, kDdl},
    {"REVOKE ALL ON t FROM u", W, kDdl},
    {"GRANT r TO u", W, kDdl},
    {"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO u", W, kDdl},
    {"CREATE POLICY p ON t USING (true)", W, kDdl},
    {"CREATE PUBLICATION p FOR ALL TABLES", W, kDdl},
    {"CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", W, kDdl},
    {"CREATE STATISTICS st ON a, b FROM t", W, kDdl},
    {"REASSIGN OWNED BY a TO b", W, kDdl},
    {"CREATE TEMP TABLE tt (a int)", W, kDdl},
    {"CREATE TEMPORARY TABLE tt (a int)", W, kDdl},
    {"CREATE LOCAL TEMP TABLE tt (a int)", W, kDdl},
    {"CREATE TEMP VIEW tv AS SELECT 1", W, kDdl},
    {"CREATE TEMP SEQUENCE ts", W, kDdl},
    {"CREATE TABLE pg_temp.x (a int)", W, kDdl},
    {"CREATE TEMP TABLE x ON COMMIT DROP AS SELECT 1", W, kDdl},

    // Maintenance.
    {"VACUUM", U, kMaintenance},
    {"VACUUM t", U, kMaintenance},
    {"VACUUM FULL t", U, kMaintenance},
    {"VACUUM (ANALYZE) t", U, kMaintenance},
    {"ANALYZE", U, kMaintenance},
    {"ANALYZE t", U, kMaintenance},
    {"CLUSTER t USING i", U, kMaintenance},
    {"REINDEX TABLE t", U, kMaintenance},
    {"REINDEX INDEX i", U, kMaintenance},
    {"REFRESH MATERIALIZED VIEW mv", U, kMaintenance},
    {"REFRESH MATERIALIZED VIEW CONCURRENTLY mv", U, kMaintenance},
    {"CHECKPOINT", U, kMaintenance},
    {"LOAD 'auto_explain'", U, kMaintenance},

    // COPY, CALL, DO, LOCK, NOTIFY, LISTEN.
    {"COPY t FROM STDIN", W, kCopyFrom},
    {"COPY t (a, b) FROM STDIN WITH (FORMAT csv)", W, kCopyFrom},
    {"COPY t FROM '/tmp/x'", W, kCopyFrom},
    {"COPY t FROM PROGRAM 'cat /tmp/x'", W, kCopyFrom},
    {"COPY t TO '/tmp/x'", W, kCopyToFile},
    {"COPY t TO PROGRAM 'gzip > /tmp/x.gz'", W, kCopyToFile},
    {"COPY (SELECT 1) TO '/tmp/x'", W, kCopyToFile},
    {"CALL p()", W, kCall},
    {"CALL app.p(1, 2)", W, kCall},
    {"DO $$ BEGIN NULL; END $$", W, kDo},
    {"DO LANGUAGE plpgsql 'BEGIN NULL; END'", W, kDo},
    {"LOCK t", W, kLock},
    {"LOCK TABLE t IN ACCESS SHARE MODE", W, kLock},
    {"NOTIFY ch", W, kNotify},
    {"NOTIFY ch, 'payload'", W, kNotify},
    {"LISTEN ch", S, kListen},

    // Prepared statements and EXECUTE.
    {"PREPARE p AS SELECT 1", S, kNone},
    {"PREPARE p AS DELETE FROM t", S, kDml},
    {"PREPARE p(int) AS UPDATE t SET a = $1", S, kDml},
    {"PREPARE p AS SELECT nextval('s')", S, kWriteFunction},
    {"PREPARE p AS SELECT * FROM t FOR UPDATE", S, kLockingClause},
    {"EXECUTE p", U, kExecute},
    {"EXECUTE p(1, 'x')", U, kExecute},
    {"EXPLAIN ANALYZE EXECUTE p", U, kExecute},
    {"DEALLOCATE p", S, kNone},
    {"DEALLOCATE PREPARE p", S, kNone},
    {"DEALLOCATE ALL", S, kNone},

    // Transaction control.
    {"BEGIN", T, kNone},
    {"BEGIN;", T, kNone},
    {"begin", T, kNone},
    {"BEGIN TRANSACTION", T, kNone},
    {"BEGIN WORK", T, kNone},
    {"BEGIN READ ONLY", T, kNone},
    {"BEGIN READ WRITE", T, kNone},
    {"BEGIN ISOLATION LEVEL SERIALIZABLE", T, kNone},
    {"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY DEFERRABLE", T, kNone},
    {"START TRANSACTION", T, kNone},
    {"START TRANSACTION READ ONLY", T, kNone},
    {"END;", T, kNone},
    {"END", T, kNone},
    {"COMMIT", T, kNone},
    {"COMMIT AND CHAIN", T, kNone},
    {"ROLLBACK", T, kNone},
    {"ROLLBACK AND NO CHAIN", T, kNone},
    {"ABORT", T, kNone},
    {"SAVEPOINT s", T, kNone},
    {"RELEASE SAVEPOINT s", T, kNone},
    {"RELEASE s", T, kNone},
    {"ROLLBACK TO SAVEPOINT s", T, kNone},
    {"ROLLBACK TO s", T, kNone},
    {"PREPARE TRANSACTION 'gx'", T, kTwoPhase},
    {"COMMIT PREPARED 'gx'", T, kTwoPhase},
    {"ROLLBACK PREPARED 'gx'", T, kTwoPhase},
    {"SET TRANSACTION READ ONLY", T, kNone},
    {"SET TRANSACTION READ WRITE", T, kNone},
    {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", T, kNone},
    {"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", T, kNone},
    {"SET transaction_read_only = on", T, kNone},
    {"SET LOCAL transaction_isolation = 'serializable'", T, kNone},

    // Session state.
    {"SET search_path TO a, \"B c\"", S, kNone},
    {"SET x.y = 1", S, kNone},
    {"SET LOCAL statement_timeout = 0", S, kNone},
    {"SET SESSION work_mem = '64MB'", S, kNone},
    {"RESET work_mem", S, kNone},
    {"RESET ALL", S, kNone},
    {"SET TIME ZONE 'UTC'", S, kNone},
    {"SET TIME ZONE LOCAL", S, kNone},
    {"SET NAMES 'UTF8'", S, kNone},
    {"SET SCHEMA 'app'", S, kNone},
    {"SET ROLE admin", S, kNone},
    {"RESET ROLE", S, kNone},
    {"SET SESSION AUTHORIZATION bob", S, kNone},
    {"SET statement_timeout TO DEFAULT", S, kNone},
    {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", S, kNone},
    {"SET default_transaction_read_only = on", S, kNone},
    {"DISCARD ALL", S, kNone},
    {"DISCARD PLANS", S, kNone},
    {"DISCARD SEQUENCES", S, kNone},
    {"DISCARD TEMP", S, kNone},
    {"DISCARD TEMPORARY", S, kNone},
    {"SET pgregion.route = 'primary'", S, kNone},
    {"SHOW pgregion.route", S, kNone},
    {"RESET pgregion.consistency", S, kNone},
    {"UNLISTEN ch", S, kNone},
    {"UNLISTEN *", S, kNone},
    {"CLOSE c", S, kNone},
    {"CLOSE ALL", S, kNone},
    {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", S, kNone},
    {"DECLARE c CURSOR WITH HOLD FOR SELECT nextval('s')", S, kWriteFunction},

    // Unparsable text: the primary, never dropped.
    {"SELEC 1", W, kParseError},
    {"'", W, kParseError},
    {"SELECT 'unterminated", W, kParseError},
    {"SELECT * FROM", W, kParseError},
    {"SELECT (1", W, kParseError},
    {"/* unterminated comment", W, kParseError},
    {"INSERT INTO", W, kParseError},
    {"SELECT 1 +", W, kParseError},
    {")", W, kParseError},
    {"DELETE t", W, kParseError},
    {"SELECT $$x", W, kParseError},
    {"garbage !@#", W, kParseError},
    {"SELECT 1; SELEC 2", W, kParseError},
};

}  // namespace

TEST_CASE("classifier: statement table") {
  StatementClassifier classifier(ClassifierOptions{});
  size_t n = 0;
  for (const Row& row : kRows) {
    ++n;
    const std::string sql(row.sql);
    CAPTURE(sql);
    Classification c = classifier.ClassifyUncached(sql);
    CAPTURE(testing::Describe(c));
    REQUIRE(!c.statements.empty());
    const StatementInfo& s = c.statements.back();
    CHECK(StatementKindName(s.kind) == StatementKindName(row.kind));
    CHECK(WriteReasonName(s.reason) == WriteReasonName(row.reason));
    CHECK(s.write == (row.reason != kNone));
    CHECK(c.write == (row.reason != kNone));
    CHECK(c.parse_error == (row.reason == kParseError));
    // The cached path agrees, twice (miss, then hit or reparse).
    for (int round = 0; round < 2; ++round) {
      ClassifyResult cached = classifier.Classify(sql);
      CHECK(cached->write == c.write);
      CHECK(WriteReasonName(cached->statements.back().reason) == WriteReasonName(row.reason));
    }
  }
  MESSAGE("classifier table rows: " << n);
  CHECK(n >= 200);
}

TEST_CASE("classifier: empty and comment-only text is an empty read") {
  StatementClassifier classifier(ClassifierOptions{});
  for (std::string_view sql : {"", "   ", "-- only a comment", "/* only */", ";", " ; ; "}) {
    CAPTURE(sql);
    Classification c = classifier.ClassifyUncached(sql);
    CHECK(c.statements.empty());
    CHECK(!c.write);
    CHECK(!c.parse_error);
  }
}

TEST_CASE("classifier: multi-statement units") {
  struct Unit {
    std::string_view sql;
    size_t statements;
    bool write;
  };
  const Unit units[] = {
      {"SELECT 1; UPDATE t SET a=1", 2, true},
      {"SELECT 1; SELECT 2", 2, false},
      {"SELECT 1;;SELECT 2;", 2, false},
      {"SELECT 'a;b'; SELECT $$;$$; SELECT 3 -- ;", 3, false},
      {"BEGIN; SELECT 1; COMMIT;", 3, false},
      {"BEGIN; UPDATE t SET a = 1; COMMIT;", 3, true},
      {"SET x.y = 1; SELECT 1", 2, false},
      {"SELECT 1; SELECT nextval('s')", 2, true},
      {"SELECT 1; WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", 2, true},
      {"BEGIN;\nUPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 7;\n"
       "SELECT abalance FROM pgbench_accounts WHERE aid = 7;\n"
       "UPDATE pgbench_tellers SET tbalance = tbalance + 5 WHERE tid = 2;\n"
       "UPDATE pgbench_branches SET bbalance = bbalance + 5 WHERE bid = 1;\n"
       "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
       "VALUES (2, 1, 7, 5, CURRENT_TIMESTAMP);\nEND;",
       7, true},
  };
  StatementClassifier classifier(ClassifierOptions{});
  for (const Unit& u : units) {
    CAPTURE(u.sql);
    ClassifyResult r = classifier.Classify(u.sql);
    CAPTURE(testing::Describe(*r));
    CHECK(r->statements.size() == u.statements);
    CHECK(r->write == u.write);
  }
  ClassifyResult txn = classifier.Classify("BEGIN; SELECT 1; COMMIT;");
  CHECK(txn->transaction_control);
  CHECK(txn->statements.front().txn == TransactionControl::kBegin);
  CHECK(txn->statements.back().txn == TransactionControl::kCommit);

  ClassifyResult mixed = classifier.Classify("SET pgregion.route = 'primary'; SELECT 1");
  CHECK(mixed->proxy_handled);
  CHECK(mixed->mixed_proxy);
  ClassifyResult only = classifier.Classify("SHOW pgregion.route");
  CHECK(only->proxy_handled);
  CHECK(!only->mixed_proxy);

  ClassifyResult copy = classifier.Classify("COPY t FROM STDIN; SELECT 1");
  CHECK(copy->copy_in);
  CHECK(!classifier.Classify("COPY t FROM '/tmp/x'")->copy_in);
  CHECK(!classifier.Classify("COPY t TO STDOUT")->copy_in);
}

}  // namespace pgregion::routing
