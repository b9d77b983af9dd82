#include "proxy/app/config_reload.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

namespace pgregion::proxy {
namespace {

Config Base() {
  Config c;
  UserConfig u;
  u.name = "app";
  u.password = "pw";
  u.server_user = "app";
  u.server_password = "pw";
  c.users.push_back(u);
  c.nodes = {{"pg1", "eu", "10.0.0.1", 5432}, {"pg2", "us", "10.0.1.1", 5432}};
  return c;
}

bool Has(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST_CASE("reload: nothing changed") {
  ReloadPlan plan = PlanReload(Base(), Base());
  CHECK(plan.empty());
  CHECK(plan.applicable());
  CHECK_FALSE(plan.users_changed);
  CHECK_FALSE(plan.health_changed);
}

TEST_CASE("reload: live settings") {
  Config next = Base();
  next.pool.size = 50;
  next.routing.max_replica_lag_ms = 100;
  next.routing.read_deadline_ms = 500;
  next.log.level = "debug";
  next.admin.bearer_token = "new";
  next.proxy.max_client_connections = 10;
  ReloadPlan plan = PlanReload(Base(), next);
  CHECK(plan.applicable());
  CHECK(Has(plan.changed, "pool.size"));
  CHECK(Has(plan.changed, "routing.max_replica_lag_ms"));
  CHECK(Has(plan.changed, "routing.read_deadline_ms"));
  CHECK(Has(plan.changed, "admin.bearer_token"));
  CHECK(Has(plan.changed, "proxy.max_client_connections"));
  CHECK(plan.log_changed);
  CHECK_FALSE(plan.classifier_changed);  // lag limits and the read deadline are read per unit
  CHECK_FALSE(plan.users_changed);
  CHECK_FALSE(plan.health_changed);
}

TEST_CASE("reload: users, passwords and the probes' login") {
  Config next = Base();
  next.users[0].password = "new";
  next.users[0].server_password = "new";
  ReloadPlan plan = PlanReload(Base(), next);
  CHECK(plan.applicable());
  CHECK(plan.users_changed);
  CHECK(plan.health_changed);  // the first user's login is the probes' too
  CHECK(Has(plan.changed, "users.app.password"));
  // Names only: the values never appear in the plan (it goes to the log).
  for (const std::string& k : plan.changed) CHECK(k.find("new") == std::string::npos);

  Config added = Base();
  UserConfig ops;
  ops.name = "ops";
  ops.admin = true;
  added.users.push_back(ops);
  plan = PlanReload(Base(), added);
  CHECK(plan.applicable());
  CHECK(plan.users_changed);
  CHECK_FALSE(plan.health_changed);
  CHECK(Has(plan.changed, "users.ops"));
}

TEST_CASE("reload: classifier and health checker rebuilds") {
  Config next = Base();
  next.routing.write_functions = {"f"};
  CHECK(PlanReload(Base(), next).classifier_changed);
  next = Base();
  next.routing.statement_cache_size = 5;
  CHECK(PlanReload(Base(), next).classifier_changed);
  next = Base();
  next.health.interval_ms = 100;
  ReloadPlan plan = PlanReload(Base(), next);
  CHECK(plan.applicable());
  CHECK(plan.health_changed);
}

TEST_CASE("reload: what needs a restart is named and refused") {
  auto refused = [](void (*change)(Config*), std::string_view key) {
    Config next = Base();
    change(&next);
    ReloadPlan plan = PlanReload(Base(), next);
    CAPTURE(key);
    CHECK_FALSE(plan.applicable());
    CHECK(Has(plan.need_restart, key));
  };
  refused([](Config* c) { c->proxy.listen.port = 7000; }, "proxy.listen");
  refused([](Config* c) { c->admin.enabled = true; }, "admin.listen");
  refused([](Config* c) { c->tls.mode = TlsMode::kAllow; }, "tls.mode");
  refused([](Config* c) { c->server_tls.mode = ServerTlsMode::kRequire; }, "server_tls.mode");
}

TEST_CASE("reload: the region and the health thresholds apply live") {
  Config next = Base();
  next.proxy.region = "us";
  next.health.failures_to_down = 9;
  ReloadPlan plan = PlanReload(Base(), next);
  CHECK(plan.applicable());
  CHECK(Has(plan.changed, "proxy.region"));
  CHECK(plan.health_policy_changed);
  CHECK_FALSE(plan.health_changed);  // the probes themselves are unchanged
  CHECK_FALSE(plan.nodes_changed());
  next = Base();
  next.health.recover_hold_s = 1;
  CHECK(PlanReload(Base(), next).health_policy_changed);
  next = Base();
  next.health.successes_to_up = 1;
  CHECK(PlanReload(Base(), next).health_policy_changed);
}

TEST_CASE("reload: nodes are added and removed by name") {
  Config next = Base();
  next.nodes.push_back({"pg3", "ap", "10.0.2.1", 5432});
  ReloadPlan plan = PlanReload(Base(), next);
  CHECK(plan.applicable());
  CHECK(plan.nodes_added == std::vector<std::string>{"pg3"});
  CHECK(plan.nodes_removed.empty());
  CHECK(Has(plan.changed, "nodes.pg3"));

  next = Base();
  next.nodes.erase(next.nodes.begin());
  plan = PlanReload(Base(), next);
  CHECK(plan.applicable());
  CHECK(plan.nodes_removed == std::vector<std::string>{"pg1"});
  CHECK(plan.nodes_added.empty());

  // A new address or region: the same name is removed and added again.
  for (auto change :
       {+[](NodeConfig* n) { n->port = 6000; }, +[](NodeConfig* n) { n->host = "10.0.9.9"; },
        +[](NodeConfig* n) { n->region = "ap"; }}) {
    next = Base();
    change(&next.nodes[1]);
    plan = PlanReload(Base(), next);
    CHECK(plan.applicable());
    CHECK(plan.nodes_removed == std::vector<std::string>{"pg2"});
    CHECK(plan.nodes_added == std::vector<std::string>{"pg2"});
  }

  // Order means nothing once running.
  next = Base();
  std::swap(next.nodes[0], next.nodes[1]);
  plan = PlanReload(Base(), next);
  CHECK(plan.empty());
  CHECK_FALSE(plan.nodes_changed());
}

}  // namespace
}  // namespace pgregion::proxy
