// Property test of the classification cache (issue 16, the deterministic
// sibling of fuzz/classifier_fuzz.cc): over a fixed corpus of tricky
// statements and bounded literal-changed variants of each
// (fuzz/literal_variant.h), a cached classifier's result, miss or hit, equals
// ClassifyUncached on a fresh classifier in every routing-relevant field,
// whenever the variant has the same normalized key as the original.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "fuzz/literal_variant.h"
#include "routing/statement_classifier.h"
#include "tests/routing/classifier_test_util.h"

namespace pgregion::routing {
namespace {

// The routing-relevant part of a Classification (no error text, node names
// or cacheable flag).
std::string Routing(const Classification& c) {
  std::string out = std::to_string(c.write) + std::to_string(c.parse_error) +
                    std::to_string(c.too_complex) + std::to_string(c.transaction_control) +
                    std::to_string(c.session_events) + std::to_string(c.proxy_handled) +
                    std::to_string(c.mixed_proxy) + std::to_string(c.copy_in);
  for (const StatementInfo& s : c.statements) {
    out += "|" + std::string(StatementKindName(s.kind)) + "," + std::to_string(s.write) + "," +
           std::string(WriteReasonName(s.reason)) + "," + std::to_string(s.parse_error) + "," +
           std::to_string(s.proxy_handled) + std::to_string(s.set_local) +
           std::to_string(s.copy_in) + std::to_string(s.untracked_session_change) + "," +
           std::string(TransactionControlName(s.txn)) + "," +
           std::to_string(static_cast<int>(s.access)) + std::to_string(s.chain) +
           std::to_string(static_cast<int>(s.default_access)) + "," + s.function + "," +
           s.execute_name;
    for (const SessionEvent& e : s.events) {
      out += "{" + std::string(SessionEventTypeName(e.type)) + " " + e.name + "=" + e.value + "}";
    }
  }
  return out;
}

Classification Fresh(std::string_view sql) {
  StatementClassifier fresh(ClassifierOptions{});
  return fresh.ClassifyUncached(sql);
}

constexpr std::string_view kCorpus[] = {
    "SELECT 1",
    "SELECT * FROM t WHERE id = 42 AND name = 'bob'",
    "SELECT * FROM t WHERE id IN (1, 2, 3) LIMIT 10 OFFSET 5",
    "INSERT INTO t (a, b) VALUES (1, 'x'), (2.5e3, 'it''s') RETURNING id",
    "UPDATE t SET a = 7 WHERE b = 'q'",
    "DELETE FROM t WHERE id = 9",
    "SELECT X'1F2a', B'0101', E'a\\'b\\n', U&'d\\0061t!0061' UESCAPE '!'",
    "SELECT $tag$ body 'x' $tag$, $$ 1 $$ FROM \"quoted\"\"ident\" WHERE $1 = 3",
    "/* outer /* nested 1 */ still */ SELECT 1 -- tail\n; UPDATE t SET a = 7",
    "SELECT 'a'\n'b', 'c' -- x\n'd'",
    "SELECT a::varchar(10), numeric '1.5', interval '1 day' FROM t",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t WHERE a = 1 FOR SHARE SKIP LOCKED",
    "WITH x AS (DELETE FROM t WHERE a = 1 RETURNING *) SELECT * FROM x",
    "WITH x AS (SELECT 1 AS a) SELECT * FROM x WHERE a > 0",
    "SELECT 1 INTO TEMP t2",
    "CREATE TEMP TABLE tt (a int DEFAULT 5)",
    "CREATE TABLE t (a numeric(10, 2) DEFAULT 1.5)",
    "BEGIN READ ONLY",
    "BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE",
    "START TRANSACTION READ ONLY; SELECT 1; COMMIT",
    "COMMIT AND CHAIN",
    "SAVEPOINT s1; ROLLBACK TO SAVEPOINT s1; RELEASE s1",
    "PREPARE TRANSACTION 'gid1'",
    "COMMIT PREPARED 'gid1'",
    "SET work_mem = '64MB'",
    "SET LOCAL statement_timeout = 5000",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "SET default_transaction_read_only = on",
    "RESET ALL",
    "SET pgregion.route = 'primary'",
    "SHOW pgregion.consistency",
    "SELECT pg_advisory_lock(12)",
    "SELECT pg_advisory_unlock(12), pg_advisory_xact_lock(3)",
    "SELECT set_config('a.b', 'c', false)",
    "SELECT nextval('seq1')",
    "SELECT now(), lower('ABC'), coalesce(NULL, 1)",
    "SELECT unknown_fn(1, 'x')",
    "COPY t FROM STDIN",
    "COPY t TO STDOUT",
    "COPY (SELECT 1) TO '/tmp/x'",
    "EXPLAIN SELECT * FROM t WHERE a = 1",
    "EXPLAIN (ANALYZE true) DELETE FROM t",
    "EXPLAIN ANALYZE SELECT 1",
    "PREPARE p1 AS SELECT $1::int + 1",
    "EXECUTE p1(5)",
    "DEALLOCATE p1",
    "DECLARE c1 CURSOR WITH HOLD FOR SELECT 1",
    "LISTEN chan1; NOTIFY chan1, 'payload 1'",
    "LOCK TABLE t IN SHARE MODE",
    "DO $$ BEGIN PERFORM 1; END $$",
    "CALL proc1(1, 'a')",
    "VACUUM t",
    "SELECT a ?| array['x'], b @> '{\"k\": 1}' FROM t",
    "SELECT U&'\\00e4', U&'\\zz'",
    "SELECT 1 FROM t LIMIT 1,2",
    "SELECT '1' FROM",
    "SELECT 'unterminated",
    "VALUES (1, 'a'), (2, 'b')",
    "TABLE t",
    "SELECT 99999999999999999999, 2147483647, 2147483648, .5, 1e-3",
    "SELECT 1; SELECT 2; INSERT INTO t VALUES (3)",
};

}  // namespace

TEST_CASE("classifier property: cached results equal uncached ones") {
  int variants = 0;
  for (std::string_view sql : kCorpus) {
    CAPTURE(sql);
    StatementClassifier cached(ClassifierOptions{});
    const Classification fresh = Fresh(sql);
    const std::string want = Routing(fresh);
    CHECK(Routing(*cached.Classify(sql)) == want);
    const ClassifyResult hit = cached.Classify(sql);
    CHECK_MESSAGE(Routing(*hit) == want, testing::Describe(*hit), "\nvs\n", testing::Describe(fresh));
    if (fresh.parse_error || fresh.too_complex) CHECK_FALSE(hit.cache_hit);
    const std::string key = SqlNormalizer::Key(sql);
    for (unsigned rot = 0; rot < 9; ++rot) {
      const std::string variant = fuzz::LiteralVariant(sql, rot);
      CAPTURE(variant);
      CHECK(variant.size() == sql.size());
      if (SqlNormalizer::Key(variant) != key) continue;
      ++variants;
      const ClassifyResult got = cached.Classify(variant);
      const Classification want_variant = Fresh(variant);
      CHECK_MESSAGE(Routing(*got) == Routing(want_variant), testing::Describe(*got), "\nvs\n",
                    testing::Describe(want_variant));
    }
  }
  CHECK(variants > 100);
}

TEST_CASE("classifier property: literal-changed variants keep the key") {
  for (std::string_view sql : kCorpus) {
    CAPTURE(sql);
    for (unsigned rot = 0; rot < 9; ++rot) {
      const std::string variant = fuzz::LiteralVariant(sql, rot);
      CAPTURE(variant);
      CHECK(SqlNormalizer::Key(variant) == SqlNormalizer::Key(sql));
    }
  }
}

}  // namespace pgregion::routing
