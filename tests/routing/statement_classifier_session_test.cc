// Classifier details beyond read/write: SET values for replay, transaction
// access modes, pins, pgregion.* statements, options, hints and the cache.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "routing/statement_classifier.h"
#include "tests/routing/classifier_test_util.h"

namespace pgregion::routing {
namespace {

using enum SessionEventType;

Classification Classify(std::string_view sql, ClassifierOptions options = {}) {
  StatementClassifier classifier(std::move(options));
  return classifier.ClassifyUncached(sql);
}

// The events of a one-statement text.
std::vector<SessionEvent> Events(std::string_view sql) {
  Classification c = Classify(sql);
  REQUIRE(c.statements.size() == 1);
  return c.statements[0].events;
}

SessionEvent Ev(SessionEventType type, std::string name = {}, std::string value = {}) {
  return SessionEvent{type, std::move(name), std::move(value)};
}

}  // namespace

TEST_CASE("classifier: SET values as set_config would store them") {
  struct Row {
    std::string_view sql;
    std::string_view name;
    std::string_view value;
  };
  const Row rows[] = {
      {"SET search_path TO a, \"B c\"", "search_path", "a, \"B c\""},
      {"SET search_path = 'a', 'B c'", "search_path", "a, \"B c\""},
      {"SET search_path TO \"$user\", public", "search_path", "\"$user\", public"},
      {"SET search_path = a,b", "search_path", "a, b"},
      {"SET search_path TO 'we\"ird'", "search_path", "\"we\"\"ird\""},
      {"SET application_name = 'my app'", "application_name", "my app"},
      {"SET application_name TO 'it''s'", "application_name", "it's"},
      {"SET application_name = E'a\\nb'", "application_name", "a\nb"},
      {"SET application_name = '\xc3\x84rger'", "application_name", "\xc3\x84rger"},
      {"SET application_name = ''", "application_name", ""},
      {"SET statement_timeout = 5000", "statement_timeout", "5000"},
      {"SET statement_timeout = '5s'", "statement_timeout", "5s"},
      {"SET extra_float_digits = -3", "extra_float_digits", "-3"},
      {"SET extra_float_digits = 0", "extra_float_digits", "0"},
      {"SET extra_float_digits = - 2", "extra_float_digits", "-2"},
      {"SET extra_float_digits = +2", "extra_float_digits", "2"},
      {"SET random_page_cost = 1.5", "random_page_cost", "1.5"},
      {"SET random_page_cost = -1.5", "random_page_cost", "-1.5"},
      {"SET enable_seqscan = off", "enable_seqscan", "off"},
      {"SET enable_seqscan TO false", "enable_seqscan", "false"},
      {"SET enable_seqscan = true", "enable_seqscan", "true"},
      {"SET TIME ZONE 'Europe/Berlin'", "timezone", "Europe/Berlin"},
      {"SET TIME ZONE -7", "timezone", "-7"},
      {"SET TimeZone = 'UTC'", "timezone", "UTC"},
      {"SET NAMES 'UTF8'", "client_encoding", "UTF8"},
      {"SET SCHEMA 'app'", "search_path", "app"},
      {"SET SCHEMA 'App'", "search_path", "\"App\""},
      {"SET ROLE admin", "role", "admin"},
      {"SET SESSION AUTHORIZATION bob", "session_authorization", "bob"},
      {"SET XML OPTION DOCUMENT", "xmloption", "DOCUMENT"},
      {"SET DateStyle TO ISO, DMY", "datestyle", "iso, dmy"},
      {"SET \"MyApp.Setting\" = 'x'", "MyApp.Setting", "x"},
      {"SET myapp.user_id = 42", "myapp.user_id", "42"},
      {"SET SESSION work_mem = '64MB'", "work_mem", "64MB"},
      {"set work_mem to '1GB';", "work_mem", "1GB"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.sql);
    Classification c = Classify(row.sql);
    CAPTURE(testing::Describe(c));
    REQUIRE(c.statements.size() == 1);
    const StatementInfo& s = c.statements[0];
    CHECK(s.kind == StatementKind::kSession);
    CHECK(!s.write);
    CHECK(!c.cacheable);  // the value comes from the text: reparsed every time
    REQUIRE(s.events.size() == 1);
    CHECK(s.events[0].type == kSet);
    CHECK(s.events[0].name == row.name);
    CHECK(s.events[0].value == row.value);
  }
}

TEST_CASE("classifier: RESET, SET LOCAL, DEFAULT, FROM CURRENT") {
  CHECK(Events("RESET work_mem") == std::vector{Ev(kReset, "work_mem")});
  CHECK(Events("SET work_mem TO DEFAULT") == std::vector{Ev(kReset, "work_mem")});
  CHECK(Events("SET TIME ZONE LOCAL") == std::vector{Ev(kReset, "timezone")});
  CHECK(Events("RESET ROLE") == std::vector{Ev(kReset, "role")});
  CHECK(Events("RESET SESSION AUTHORIZATION") == std::vector{Ev(kReset, "session_authorization")});
  CHECK(Events("RESET ALL") == std::vector{Ev(kResetAll)});
  CHECK(Events("SET x.y FROM CURRENT").empty());

  Classification local = Classify("SET LOCAL work_mem = '1MB'");
  CHECK(local.statements[0].set_local);
  CHECK(local.statements[0].events.empty());
  CHECK(local.statements[0].kind == StatementKind::kSession);

  // Only expressible by re-running the statement: reported, not guessed.
  CHECK(Events("SET TIME ZONE INTERVAL '-08:00' HOUR TO MINUTE") ==
        std::vector{Ev(kSetUnreplayable, "timezone")});
  // RESET has no literal: cacheable.
  CHECK(Classify("RESET work_mem").cacheable);
}

TEST_CASE("classifier: transaction access modes") {
  struct Row {
    std::string_view sql;
    TransactionControl txn;
    AccessMode access;
  };
  using TC = TransactionControl;
  const Row rows[] = {
      {"BEGIN", TC::kBegin, AccessMode::kUnspecified},
      {"BEGIN READ ONLY", TC::kBegin, AccessMode::kReadOnly},
      {"BEGIN READ WRITE", TC::kBegin, AccessMode::kReadWrite},
      {"START TRANSACTION READ ONLY", TC::kBegin, AccessMode::kReadOnly},
      {"START TRANSACTION READ WRITE", TC::kBegin, AccessMode::kReadWrite},
      {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", TC::kBegin,
       AccessMode::kReadOnly},
      {"BEGIN ISOLATION LEVEL REPEATABLE READ", TC::kBegin, AccessMode::kUnspecified},
      {"SET TRANSACTION READ ONLY", TC::kSetTransaction, AccessMode::kReadOnly},
      {"SET TRANSACTION READ WRITE", TC::kSetTransaction, AccessMode::kReadWrite},
      {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY", TC::kSetTransaction,
       AccessMode::kReadOnly},
      {"SET transaction_read_only = on", TC::kSetTransaction, AccessMode::kReadOnly},
      {"SET transaction_read_only TO 'true'", TC::kSetTransaction, AccessMode::kReadOnly},
      {"SET LOCAL transaction_read_only TO off", TC::kSetTransaction, AccessMode::kReadWrite},
      {"SET transaction_isolation = 'serializable'", TC::kSetTransaction, AccessMode::kUnspecified},
      {"COMMIT", TC::kCommit, AccessMode::kUnspecified},
      {"END", TC::kCommit, AccessMode::kUnspecified},
      {"ABORT", TC::kRollback, AccessMode::kUnspecified},
      {"SAVEPOINT a", TC::kSavepoint, AccessMode::kUnspecified},
      {"RELEASE a", TC::kRelease, AccessMode::kUnspecified},
      {"ROLLBACK TO a", TC::kRollbackTo, AccessMode::kUnspecified},
      {"PREPARE TRANSACTION 'g'", TC::kPrepareTransaction, AccessMode::kUnspecified},
      {"COMMIT PREPARED 'g'", TC::kCommitPrepared, AccessMode::kUnspecified},
      {"ROLLBACK PREPARED 'g'", TC::kRollbackPrepared, AccessMode::kUnspecified},
  };
  for (const Row& row : rows) {
    CAPTURE(row.sql);
    Classification c = Classify(row.sql);
    CAPTURE(testing::Describe(c));
    REQUIRE(c.statements.size() == 1);
    CHECK(c.transaction_control);
    CHECK(TransactionControlName(c.statements[0].txn) == TransactionControlName(row.txn));
    CHECK(static_cast<int>(c.statements[0].access) == static_cast<int>(row.access));
    CHECK(c.statements[0].events.empty());
  }
  CHECK(Classify("COMMIT AND CHAIN").statements[0].chain);
  CHECK(!Classify("COMMIT").statements[0].chain);
  CHECK(Classify("BEGIN READ ONLY").cacheable);
  CHECK(Classify("SET TRANSACTION READ ONLY").cacheable);
}

TEST_CASE("classifier: session default access mode") {
  struct Row {
    std::string_view sql;
    DefaultAccessChange change;
    std::vector<SessionEvent> events;
  };
  using D = DefaultAccessChange;
  const Row rows[] = {
      {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
       D::kReadOnly,
       {Ev(kSet, "default_transaction_read_only", "on")}},
      {"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
       D::kReadWrite,
       {Ev(kSet, "default_transaction_read_only", "off")}},
      {"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
       D::kReadWrite,
       {Ev(kSet, "default_transaction_isolation", "serializable"),
        Ev(kSet, "default_transaction_read_only", "off")}},
      {"SET SESSION CHARACTERISTICS AS TRANSACTION DEFERRABLE",
       D::kNone,
       {Ev(kSet, "default_transaction_deferrable", "on")}},
      {"SET default_transaction_read_only = on",
       D::kReadOnly,
       {Ev(kSet, "default_transaction_read_only", "on")}},
      {"SET default_transaction_read_only TO off",
       D::kReadWrite,
       {Ev(kSet, "default_transaction_read_only", "off")}},
      {"SET default_transaction_read_only = 'true'",
       D::kReadOnly,
       {Ev(kSet, "default_transaction_read_only", "true")}},
      {"SET default_transaction_read_only = 1",
       D::kReadOnly,
       {Ev(kSet, "default_transaction_read_only", "1")}},
      {"RESET default_transaction_read_only",
       D::kReset,
       {Ev(kReset, "default_transaction_read_only")}},
      {"RESET ALL", D::kReset, {Ev(kResetAll)}},
      {"SET work_mem = '1MB'", D::kNone, {Ev(kSet, "work_mem", "1MB")}},
  };
  for (const Row& row : rows) {
    CAPTURE(row.sql);
    Classification c = Classify(row.sql);
    CAPTURE(testing::Describe(c));
    REQUIRE(c.statements.size() == 1);
    CHECK(static_cast<int>(c.statements[0].default_access) == static_cast<int>(row.change));
    CHECK(c.statements[0].events == row.events);
    CHECK(c.statements[0].kind == StatementKind::kSession);
  }
}

TEST_CASE("classifier: pgregion settings are the proxy's") {
  struct Row {
    std::string_view sql;
    SessionEvent event;
  };
  const Row rows[] = {
      {"SET pgregion.route = 'primary'", Ev(kProxySet, "pgregion.route", "primary")},
      {"SET pgregion.route TO replica", Ev(kProxySet, "pgregion.route", "replica")},
      {"SET PGREGION.ROUTE = 'auto'", Ev(kProxySet, "pgregion.route", "auto")},
      {"SET pgregion.consistency TO strong", Ev(kProxySet, "pgregion.consistency", "strong")},
      {"SET pgregion.ryw_token = 'r1.7291.1.0/16B3748'",
       Ev(kProxySet, "pgregion.ryw_token", "r1.7291.1.0/16B3748")},
      {"SET pgregion.max_staleness = '2s'", Ev(kProxySet, "pgregion.max_staleness", "2s")},
      {"SET pgregion.max_staleness = 500", Ev(kProxySet, "pgregion.max_staleness", "500")},
      {"SHOW pgregion.route", Ev(kProxyShow, "pgregion.route")},
      {"SHOW pgregion.ryw_token", Ev(kProxyShow, "pgregion.ryw_token")},
      {"RESET pgregion.route", Ev(kProxyReset, "pgregion.route")},
      {"SET pgregion.consistency TO DEFAULT", Ev(kProxyReset, "pgregion.consistency")},
  };
  for (const Row& row : rows) {
    CAPTURE(row.sql);
    Classification c = Classify(row.sql);
    CAPTURE(testing::Describe(c));
    REQUIRE(c.statements.size() == 1);
    CHECK(c.proxy_handled);
    CHECK(!c.mixed_proxy);
    CHECK(!c.write);
    CHECK(c.statements[0].proxy_handled);
    CHECK(c.statements[0].events == std::vector{row.event});
  }
  // Ordinary settings with a similar name are not the proxy's.
  CHECK(!Classify("SET pgregionx.route = 'a'").proxy_handled);
  CHECK(!Classify("SHOW search_path").proxy_handled);
}

TEST_CASE("classifier: pins and unpins") {
  struct Row {
    std::string_view sql;
    std::vector<SessionEvent> events;
  };
  const Row rows[] = {
      {"CREATE TEMP TABLE tt (a int)", {Ev(kTempObject)}},
      {"CREATE TEMPORARY TABLE tt (a int)", {Ev(kTempObject)}},
      {"CREATE TEMP VIEW tv AS SELECT 1", {Ev(kTempObject)}},
      {"CREATE TEMP SEQUENCE ts", {Ev(kTempObject)}},
      {"CREATE TABLE pg_temp.x (a int)", {Ev(kTempObject)}},
      {"SELECT 1 INTO TEMP tt", {Ev(kTempObject)}},
      {"CREATE TEMP TABLE x AS SELECT 1", {Ev(kTempObject)}},
      {"CREATE TABLE t (a int)", {}},
      {"CREATE UNLOGGED TABLE t (a int)", {}},
      {"SELECT 1 INTO t", {}},
      {"LISTEN ch", {Ev(kListen, "ch")}},
      {"LISTEN \"Mixed\"", {Ev(kListen, "Mixed")}},
      {"UNLISTEN ch", {Ev(kUnlisten, "ch")}},
      {"UNLISTEN *", {Ev(kUnlistenAll)}},
      {"SELECT pg_advisory_lock(1)", {Ev(kAdvisoryLock)}},
      {"SELECT pg_catalog.pg_try_advisory_lock_shared(1)", {Ev(kAdvisoryLock)}},
      {"SELECT pg_try_advisory_lock(1), pg_advisory_lock(2)",
       {Ev(kAdvisoryLock), Ev(kAdvisoryLock)}},
      {"SELECT pg_advisory_xact_lock(1)", {}},
      {"SELECT pg_try_advisory_xact_lock_shared(1)", {}},
      {"SELECT pg_advisory_unlock(1)", {Ev(kAdvisoryUnlock)}},
      {"SELECT pg_advisory_unlock_shared(1)", {Ev(kAdvisoryUnlock)}},
      {"SELECT pg_advisory_unlock_all()", {Ev(kAdvisoryUnlockAll)}},
      {"SELECT * FROM t WHERE pg_try_advisory_lock(t.id)", {Ev(kAdvisoryLock)}},
      {"PREPARE p AS SELECT 1", {Ev(kPrepare, "p")}},
      {"PREPARE p AS SELECT pg_advisory_lock(1)", {Ev(kPrepare, "p")}},
      {"DEALLOCATE p", {Ev(kDeallocate, "p")}},
      {"DEALLOCATE PREPARE p", {Ev(kDeallocate, "p")}},
      {"DEALLOCATE ALL", {Ev(kDeallocateAll)}},
      {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", {Ev(kDeclareWithHold, "c")}},
      {"DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT * FROM t", {Ev(kDeclareWithHold, "c")}},
      {"DECLARE c CURSOR FOR SELECT 1", {}},
      {"CLOSE c", {Ev(kClose, "c")}},
      {"CLOSE ALL", {Ev(kCloseAll)}},
      {"DISCARD ALL", {Ev(kDiscardAll)}},
      {"DISCARD PLANS", {Ev(kDiscardPlans)}},
      {"DISCARD SEQUENCES", {Ev(kDiscardSequences)}},
      {"DISCARD TEMP", {Ev(kDiscardTemp)}},
  };
  for (const Row& row : rows) {
    CAPTURE(row.sql);
    Classification c = Classify(row.sql);
    CAPTURE(testing::Describe(c));
    REQUIRE(c.statements.size() == 1);
    CHECK(c.statements[0].events == row.events);
    CHECK(c.session_events == !row.events.empty());
  }
}

TEST_CASE("classifier: EXECUTE, set_config, LOAD, function names") {
  Classification exec = Classify("EXECUTE fetch_user(1)");
  CHECK(exec.statements[0].execute_name == "fetch_user");
  CHECK(exec.write);
  CHECK(Classify("SELECT set_config('work_mem', '1MB', false)")
            .statements[0]
            .untracked_session_change);
  CHECK(Classify("LOAD 'auto_explain'").statements[0].untracked_session_change);
  CHECK(!Classify("SELECT 1").statements[0].untracked_session_change);
  CHECK(Classify("SELECT pg_catalog.nextval('s')").statements[0].function == "pg_catalog.nextval");
  CHECK(Classify("SELECT 1 + f(x) FROM t").statements[0].function == "f");
  CHECK(Classify("SELECT 1").statements[0].node == "SelectStmt");
  CHECK(Classify("EXPLAIN ANALYZE DELETE FROM t").statements[0].node == "ExplainStmt");
}

TEST_CASE("classifier: function options") {
  ClassifierOptions replica;
  replica.unknown_functions = UnknownFunctionPolicy::kReplica;
  CHECK(!Classify("SELECT my_func(1)", replica).write);
  CHECK(!Classify("SELECT app.f(1)", replica).write);
  CHECK(Classify("SELECT my_func(1)").write);  // default: primary
  // Built-in writes stay writes under unknown_functions = replica.
  CHECK(Classify("SELECT nextval('s'), my_func(1)", replica).write);

  ClassifierOptions read_only;
  read_only.read_only_functions = {"my_func", "App.Compute"};
  CHECK(!Classify("SELECT my_func(1)", read_only).write);
  CHECK(!Classify("SELECT other.my_func(1)", read_only).write);  // bare name: any schema
  CHECK(!Classify("SELECT app.compute(1)", read_only).write);
  CHECK(!Classify("SELECT APP.COMPUTE(1)", read_only).write);
  CHECK(Classify("SELECT compute(1)", read_only).write);  // qualified entry only
  CHECK(Classify("SELECT other.compute(1)", read_only).write);
  CHECK(Classify("SELECT my_func(nextval('s'))", read_only).write);

  ClassifierOptions writes;
  writes.unknown_functions = UnknownFunctionPolicy::kReplica;
  writes.write_functions = {"MY_WRITER", "audit.log_access"};
  CHECK(Classify("SELECT my_writer()", writes).write);
  CHECK(Classify("SELECT My_Writer()", writes).write);
  CHECK(Classify("SELECT audit.log_access(1)", writes).write);
  CHECK(!Classify("SELECT log_access(1)", writes).write);  // replica policy for the rest
  CHECK(Classify("SELECT my_writer()", writes).statements[0].reason == WriteReason::kWriteFunction);

  // Configured lists override the built-in ones.
  ClassifierOptions override_builtin;
  override_builtin.write_functions = {"now"};
  override_builtin.read_only_functions = {"currval"};
  CHECK(Classify("SELECT now()", override_builtin).write);
  CHECK(!Classify("SELECT currval('s')", override_builtin).write);
  ClassifierOptions both;
  both.write_functions = {"f"};
  both.read_only_functions = {"f"};
  CHECK(Classify("SELECT f()", both).write);  // write wins
}

TEST_CASE("classifier: hints come from comments on every call") {
  StatementClassifier classifier(ClassifierOptions{});
  ClassifyResult a = classifier.Classify("/* pgregion: route=primary */ SELECT 1");
  CHECK(!a->write);
  REQUIRE(a.hints.route.has_value());
  CHECK(*a.hints.route == StatementHints::Route::kPrimary);
  CHECK(!a.cache_hit);

  ClassifyResult b =
      classifier.Classify("SELECT 2 /* pgregion: route=replica, consistency=eventual */");
  CHECK(b.cache_hit);  // same key as SELECT 1
  REQUIRE(b.hints.route.has_value());
  CHECK(*b.hints.route == StatementHints::Route::kReplica);
  CHECK(*b.hints.consistency == StatementHints::Consistency::kEventual);

  ClassifyResult c = classifier.Classify("SELECT 3");
  CHECK(c.cache_hit);
  CHECK(c.hints.empty());

  ClassifyResult d = classifier.Classify(
      "-- pgregion: consistency=bounded max_staleness=500ms ryw_token=r1.99.1.0/3000148\n"
      "SELECT * FROM t WHERE id = 5");
  CHECK(*d.hints.consistency == StatementHints::Consistency::kBounded);
  CHECK(*d.hints.max_staleness_ms == 500);
  CHECK(*d.hints.ryw_token == "r1.99.1.0/3000148");
}

TEST_CASE("classifier: cache keyed by normalized text") {
  StatementClassifier classifier(ClassifierOptions{});
  CHECK(!classifier.Classify("SELECT abalance FROM pgbench_accounts WHERE aid = 1").cache_hit);
  CHECK(classifier.Classify("SELECT abalance FROM pgbench_accounts WHERE aid = 2").cache_hit);
  CHECK(
      classifier.Classify("SELECT abalance  FROM pgbench_accounts\nWHERE aid = 99 -- x").cache_hit);
  CHECK(!classifier.Classify("SELECT abalance FROM pgbench_tellers WHERE aid = 2").cache_hit);
  CHECK(classifier.stats().hits == 2);
  CHECK(classifier.stats().misses == 2);
  CHECK(classifier.stats().entries == 2);

  // Values from literals are never served from the cache.
  ClassifyResult s1 = classifier.Classify("SET application_name = 'a'");
  ClassifyResult s2 = classifier.Classify("SET application_name = 'b'");
  CHECK(!s2.cache_hit);
  CHECK(s1->statements[0].events[0].value == "a");
  CHECK(s2->statements[0].events[0].value == "b");
  CHECK(classifier.stats().uncacheable == 2);
  ClassifyResult p1 = classifier.Classify("SET pgregion.route = 'primary'");
  ClassifyResult p2 = classifier.Classify("SET pgregion.route = 'replica'");
  CHECK(p2->statements[0].events[0].value == "replica");
  CHECK(classifier.Classify("EXPLAIN (ANALYZE 1) DELETE FROM t")->write);
  CHECK(!classifier.Classify("EXPLAIN (ANALYZE 0) DELETE FROM t")->write);
  CHECK(classifier.Classify("EXPLAIN (ANALYZE 1) DELETE FROM t")->write);

  // Names are identifiers, part of the key: cached safely.
  CHECK(classifier.Classify("LISTEN a")->statements[0].events[0].name == "a");
  CHECK(classifier.Classify("LISTEN b")->statements[0].events[0].name == "b");
  CHECK(classifier.Classify("LISTEN a").cache_hit);

  // Ambiguous lexing is never cached.
  CHECK(!classifier.Classify("SELECT 'a\\'").cache_hit);
  CHECK(!classifier.Classify("SELECT 'a\\'").cache_hit);

  // Parse errors are not cached (they may depend on a literal's content),
  // and are still parse errors.
  CHECK(classifier.Classify("SELEC 1")->parse_error);
  ClassifyResult again = classifier.Classify("SELEC 2");
  CHECK(!again.cache_hit);
  CHECK(again->parse_error);
  CHECK(again->write);

  // The extended-protocol entry point shares the cache.
  ClassifyResult parse =
      classifier.ClassifyParse("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
  CHECK(!parse->write);
  CHECK(classifier.ClassifyParse("SELECT abalance FROM pgbench_accounts WHERE aid = $1").cache_hit);
  CHECK(classifier.ClassifyParse("SELECT 1; SELECT 2")->statements.size() == 2);
}

TEST_CASE("classifier: LRU bound and disabled cache") {
  ClassifierOptions small;
  small.cache_capacity = 2;
  StatementClassifier classifier(small);
  // Comments keep these texts out of the shape memo, so each call is a cache lookup.
  classifier.Classify("SELECT a FROM t /**/");
  classifier.Classify("SELECT b FROM t /**/");
  CHECK(classifier.Classify("SELECT a FROM t /**/").cache_hit);  // a is now most recent
  classifier.Classify("SELECT c FROM t /**/");                   // evicts b
  CHECK(classifier.stats().entries == 2);
  CHECK(classifier.stats().evictions == 1);
  CHECK(classifier.Classify("SELECT a FROM t /**/").cache_hit);
  CHECK(!classifier.Classify("SELECT b FROM t /**/").cache_hit);
  // The shape memo answers a text that differs only in numbers.
  classifier.Classify("SELECT d FROM t WHERE x = 1");
  CHECK(classifier.Classify("SELECT d FROM t WHERE x = 2").cache_hit);

  ClassifierOptions off;
  off.cache_capacity = 0;
  StatementClassifier uncached(off);
  CHECK(!uncached.Classify("SELECT 1").cache_hit);
  CHECK(!uncached.Classify("SELECT 1").cache_hit);
  CHECK(uncached.stats().entries == 0);
  CHECK(uncached.stats().misses == 2);
}

TEST_CASE("classifier: text after a NUL byte is ignored") {
  StatementClassifier classifier(ClassifierOptions{});
  std::string sql("SELECT 1\0DELETE FROM t", 22);
  ClassifyResult r = classifier.Classify(sql);
  CHECK(r->statements.size() == 1);
  CHECK(!r->write);
}

TEST_CASE("classifier: budget routes deep and huge texts to the primary unparsed") {
  StatementClassifier classifier(ClassifierOptions{});
  std::string deep = "SELECT 1";
  for (int i = 0; i < 100000; ++i) deep += "+1";
  ClassifyResult r = classifier.Classify(deep);
  CHECK(r->too_complex);
  CHECK(r->write);
  CHECK(r->statements[0].reason == WriteReason::kTooComplex);
  CHECK(classifier.ClassifyUncached(deep).too_complex);
  std::string in = "SELECT * FROM t WHERE id IN (1";
  for (int i = 0; i < 3000; ++i) in += ", " + std::to_string(100000 + i);
  in += ")";
  CHECK(!classifier.Classify(in)->write);  // ORM-sized IN lists still go to replicas
  std::string many;
  for (int i = 0; i < 100000; ++i) many += "SELECT 1;";
  CHECK(classifier.Classify(many)->too_complex);
  CHECK(!classifier.Classify("SELECT 1")->too_complex);
}

TEST_CASE("classifier: X'' and B'' end at the first quote (no cache poisoning)") {
  StatementClassifier classifier(ClassifierOptions{});
  CHECK(classifier.Classify("SELECT X'ab''cd' FROM t")->parse_error);
  CHECK(!classifier.Classify("SELECT X'ab' FROM t")->write);
  CHECK(classifier.Classify("SELECT B'01''1' FROM t")->parse_error);
  CHECK(!classifier.Classify("SELECT B'01' FROM t")->write);
  CHECK(!classifier.Classify("SELECT 'a'\r'b' FROM t")->write);
  CHECK(!classifier.Classify("SELECT 'a' -- c\n'b' FROM t")->write);
}

}  // namespace pgregion::routing

namespace pgregion::routing {
namespace {

bool HasTempEvent(const ClassifyResult& r) {
  for (const StatementInfo& s : r->statements) {
    for (const SessionEvent& e : s.events) {
      if (e.type == SessionEventType::kTempObject) return true;
    }
  }
  return false;
}

TEST_CASE("classifier: DO that may change the session is untracked, judged by its body") {
  StatementClassifier classifier(ClassifierOptions{});
  ClassifyResult set = classifier.Classify("DO $$BEGIN SET enable_bitmapscan = 0; END$$");
  CHECK(set->statements[0].untracked_session_change);
  ClassifyResult plain = classifier.Classify("DO $$BEGIN INSERT INTO t VALUES (1); END$$");
  CHECK(!plain.cache_hit);  // the body is a literal: never from the cache
  CHECK(!plain->statements[0].untracked_session_change);
  CHECK(plain->write);
}

TEST_CASE("classifier: objects created in pg_temp are temporary") {
  StatementClassifier classifier(ClassifierOptions{});
  CHECK(HasTempEvent(classifier.Classify("CREATE STATISTICS pg_temp.s ON a, b FROM t")));
  CHECK(HasTempEvent(
      classifier.Classify("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'")));
  CHECK(HasTempEvent(classifier.Classify("CREATE DOMAIN pg_temp.d AS int")));
  CHECK(HasTempEvent(classifier.Classify("CREATE TYPE pg_temp.c AS (a int)")));
  CHECK(HasTempEvent(classifier.Classify("CREATE TYPE pg_temp.e AS ENUM ('a')")));
  CHECK(!HasTempEvent(classifier.Classify("CREATE STATISTICS public.s ON a, b FROM t")));
  CHECK(!HasTempEvent(
      classifier.Classify("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'")));
}

TEST_CASE("classifier: statements that may lower synchronous_commit for their transaction") {
  // What the proxy cannot see after the commit (the read-your-writes token is
  // then the insert position, routing::TokenLsnAfterCommit).
  for (std::string_view sql : {
           "SET LOCAL synchronous_commit = off",
           "SET LOCAL synchronous_commit TO 'local'",
           "SET LOCAL \"SYNCHRONOUS_COMMIT\" = off",
           "SELECT set_config('synchronous_commit', 'off', true)",
           "SELECT set_config($1, $2, $3)",
           "INSERT INTO t VALUES (my_func(1))",
           "UPDATE t SET a = app.audit(a)",
           "SELECT app.create_order(1)",
           "CALL app.place_order(1)",
           "DO $$ BEGIN PERFORM 1; END $$",
           "EXECUTE insert_order(1)",
       }) {
    CAPTURE(sql);
    Classification c = Classify(sql);
    REQUIRE(c.statements.size() == 1);
    CHECK(c.statements[0].durability_unknown);
  }
  // What leaves the commit as the session's setting says (read after the commit).
  for (std::string_view sql : {
           "SET synchronous_commit = off",  // session-wide: the probe reads it
           "SET LOCAL work_mem = '1MB'",
           "INSERT INTO t VALUES (1)",
           "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 3",
           "SELECT nextval('s')",
           "INSERT INTO t VALUES (now(), lower('x'), gen_random_uuid())",
           "DELETE FROM t WHERE id = ANY($1)",
           "COMMIT",
           "SELECT 1",
       }) {
    CAPTURE(sql);
    Classification c = Classify(sql);
    REQUIRE(c.statements.size() == 1);
    CHECK_FALSE(c.statements[0].durability_unknown);
  }
  // A configured function is user code too, whatever the list.
  ClassifierOptions options;
  options.read_only_functions = {"app.lookup"};
  options.write_functions = {"app.bump"};
  CHECK(Classify("SELECT app.lookup(1)", options).statements[0].durability_unknown);
  CHECK(Classify("SELECT app.bump(1)", options).statements[0].durability_unknown);
  // A user function shadowing a built-in name in another schema is not the built-in.
  CHECK(Classify("SELECT app.nextval('s')").statements[0].durability_unknown);
}

}  // namespace
}  // namespace pgregion::routing
