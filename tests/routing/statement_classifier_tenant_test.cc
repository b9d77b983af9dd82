// What the classifier reports for naming a tenant (issue 20): SET LOCAL of a
// custom setting carries its value, a plain set_config() of one is a tracked
// SET (or SET LOCAL) and a read, and the tenant= hint.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "routing/statement_classifier.h"

namespace pgregion::routing {
namespace {

const StatementInfo& Only(const Classification& c) {
  REQUIRE(c.statements.size() == 1);
  return c.statements[0];
}

TEST_CASE("classifier: SET LOCAL of a custom setting reports its value") {
  StatementClassifier classifier{ClassifierOptions{}};
  Classification c = classifier.ClassifyUncached("SET LOCAL app.tenant_id = '42'");
  const StatementInfo& s = Only(c);
  CHECK(s.set_local);
  CHECK_FALSE(s.write);
  REQUIRE(s.events.size() == 1);
  CHECK(s.events[0] == SessionEvent{SessionEventType::kSet, "app.tenant_id", "42"});
  c = classifier.ClassifyUncached("SET LOCAL app.tenant_id TO DEFAULT");
  REQUIRE(Only(c).events.size() == 1);
  CHECK(Only(c).events[0].type == SessionEventType::kReset);
  // Built-in settings: nothing to report (ends with the transaction).
  CHECK(Only(classifier.ClassifyUncached("SET LOCAL work_mem = '1MB'")).events.empty());
}

TEST_CASE("classifier: a plain set_config() of a custom setting is a tracked SET and a read") {
  StatementClassifier classifier{ClassifierOptions{}};
  for (auto [sql, local] : std::vector<std::pair<std::string_view, bool>>{
           {"SELECT set_config('app.tenant_id', '42', true)", true},
           {"select pg_catalog.set_config('App.Tenant_Id', '42', false)", false},
           {"SELECT set_config('app.tenant_id', '42', 'on') AS t", true},
       }) {
    CAPTURE(sql);
    Classification c = *classifier.Classify(sql);  // through the cache, as sessions do
    const StatementInfo& s = Only(c);
    CHECK_FALSE(c.write);
    CHECK_FALSE(s.untracked_session_change);
    CHECK(s.set_local == local);
    REQUIRE(s.events.size() == 1);
    CHECK(s.events[0] == SessionEvent{SessionEventType::kSet, "app.tenant_id", "42"});
  }
  // The value bound by a driver: the session reads Bind parameter 1.
  Classification bound = *classifier.Classify("SELECT set_config('app.tenant_id', $1, true)");
  CHECK_FALSE(bound.write);
  CHECK(Only(bound).value_param == 1);
  CHECK(Only(bound).set_local);
  REQUIRE(Only(bound).events.size() == 1);
  CHECK(Only(bound).events[0].name == "app.tenant_id");
  // Another literal is another value: the cache must not hand out the first one.
  Classification other = *classifier.Classify("SELECT set_config('app.tenant_id', '7', true)");
  CHECK(Only(other).events[0].value == "7");
  // Any other shape keeps the general rule: untracked, on the primary.
  for (std::string_view sql : {
           "SELECT set_config('app.tenant_id', '42', true) FROM t",
           "SELECT set_config('app.tenant_id', x, true) FROM t",
           "SELECT set_config('app.tenant_id', '42', true), 1",
           "SELECT set_config('search_path', 'x', false)",
           "SELECT set_config($1, $2, $3)",
           "SELECT my.set_config('app.tenant_id', '42', true)",
       }) {
    CAPTURE(sql);
    Classification c = classifier.ClassifyUncached(sql);
    CHECK((c.write || Only(c).untracked_session_change));
    CHECK(Only(c).events.empty());
  }
}

TEST_CASE("hints: tenant=") {
  StatementHints h;
  h.ParseList("tenant=42, consistency=eventual");
  CHECK(h.tenant == "42");
  CHECK(h.error.empty());
  StatementHints quoted;
  quoted.ParseList("tenant='acme corp'");
  CHECK(quoted.tenant == "acme corp");
  StatementHints bad;
  bad.ParseList("tenant=" + std::string(300, 'x'));
  CHECK_FALSE(bad.tenant.has_value());
  CHECK_FALSE(bad.error.empty());
}

}  // namespace
}  // namespace pgregion::routing
