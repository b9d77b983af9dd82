#include "proxy/admin/status_report.h"

#include <doctest/doctest.h>

#include <string>

#include "routing/json_tree.h"
#include "tests/admin/observability_test_util.h"

namespace pgregion::proxy {
namespace {

using routing::JsonTree;
using testing::ProbedTopology;
using testing::ThreeNodeConfig;

// The node of array `arr` at position `i`.
JsonTree::Index Element(const JsonTree& t, JsonTree::Index arr, int i) {
  JsonTree::Index e = t.FirstChild(arr);
  while (i-- > 0 && e != JsonTree::kNone) e = t.Next(e);
  return e;
}

std::string_view Text(const JsonTree& t, JsonTree::Index obj, std::string_view key) {
  JsonTree::Index m = t.Member(obj, key);
  return m == JsonTree::kNone ? "<missing>" : t.node(m).text;
}

TEST_CASE("status: every node with role, health, RTT, LSNs, lag and pools") {
  Config config = ThreeNodeConfig();
  auto topo = ProbedTopology(config);
  std::deque<TopologyEvent> events;
  events.push_back({.unix_ms = 1795305485123,
                    .event = "role_changed",
                    .node = "pg-b",
                    .from = "replica",
                    .to = "primary",
                    .failover = true});
  StatusInput in;
  in.config = &config;
  in.topology = topo->snapshot().get();
  in.readiness = ComputeReadiness(*topo->snapshot(), false);
  in.roles_discovered = true;
  in.clients = {0, 3, 1, 2};
  in.pools = {{.node = 2,
               .database = "appdb",
               .user = "app",
               .total = 4,
               .idle = 1,
               .active = 2,
               .connecting = 1,
               .waiters = 5},
              {.node = 2, .database = "other", .user = "app", .total = 1, .idle = 1}};
  in.events = &events;
  in.now_ms = 1250;
  in.unix_ms = 1795305485123;
  std::string json = RenderStatusJson(in);
  CAPTURE(json);
  JsonTree t;
  REQUIRE(t.Parse(json));
  CHECK(t.RawString(0, "region") == "eu");
  CHECK(t.RawString(0, "version") == PGREGION_VERSION);
  CHECK(t.RawString(0, "time") == "2026-11-21T23:58:05.123Z");
  CHECK(Text(t, 0, "ready") == "true");
  CHECK(Text(t, 0, "ready_reason") == "null");
  CHECK(t.RawString(0, "primary") == "pg-a");
  CHECK(t.RawString(0, "primary_state") == "one");
  CHECK(Text(t, 0, "failovers") == "0");
  JsonTree::Index clients = t.Member(0, "clients");
  CHECK(Text(t, clients, "idle") == "3");
  CHECK(Text(t, clients, "total") == "6");

  JsonTree::Index nodes = t.Member(0, "nodes");
  JsonTree::Index a = Element(t, nodes, 0);
  JsonTree::Index c = Element(t, nodes, 2);
  REQUIRE(c != JsonTree::kNone);
  CHECK(Element(t, nodes, 3) == JsonTree::kNone);
  CHECK(t.RawString(a, "name") == "pg-a");
  CHECK(t.RawString(a, "role") == "primary");
  CHECK(t.RawString(a, "health") == "up");
  CHECK(Text(t, a, "is_primary") == "true");
  CHECK(Text(t, a, "local") == "true");
  CHECK(t.RawString(a, "insert_lsn") == "0/3000100");
  CHECK(Text(t, a, "replay_lsn") == "null");
  CHECK(Text(t, a, "lag_bytes") == "null");
  CHECK(Text(t, a, "rtt_ms") == "0.500");
  CHECK(Text(t, a, "last_probe_ok_ms_ago") == "250");

  CHECK(t.RawString(c, "name") == "pg-c");
  CHECK(t.RawString(c, "region") == "us");
  CHECK(t.RawString(c, "host") == "10.0.1.1");
  CHECK(Text(t, c, "port") == "5432");
  CHECK(t.RawString(c, "role") == "replica");
  CHECK(Text(t, c, "up") == "true");
  CHECK(Text(t, c, "is_primary") == "false");
  CHECK(Text(t, c, "local") == "false");
  CHECK(Text(t, c, "rtt_ms") == "80.000");
  CHECK(Text(t, c, "insert_lsn") == "null");
  CHECK(t.RawString(c, "replay_lsn") == "0/3000000");
  CHECK(Text(t, c, "lag_bytes") == "256");
  CHECK(t.node(t.Member(c, "lag_seconds")).type == JsonTree::Type::kNumber);
  JsonTree::Index servers = t.Member(c, "servers");
  CHECK(Text(t, servers, "total") == "5");
  CHECK(Text(t, servers, "waiters") == "5");
  JsonTree::Index pools = t.Member(c, "pools");
  JsonTree::Index p0 = Element(t, pools, 0);
  CHECK(t.RawString(p0, "database") == "appdb");
  CHECK(Text(t, p0, "size") == "20");
  CHECK(Text(t, p0, "active") == "2");
  CHECK(Element(t, pools, 2) == JsonTree::kNone);
  CHECK(t.FirstChild(t.Member(a, "pools")) == JsonTree::kNone);  // no pool for pg-a yet

  JsonTree::Index changes = t.Member(0, "recent_changes");
  JsonTree::Index e0 = Element(t, changes, 0);
  CHECK(t.RawString(e0, "event") == "role_changed");
  CHECK(t.RawString(e0, "node") == "pg-b");
  CHECK(t.RawString(e0, "to") == "primary");
  CHECK(Text(t, e0, "failover") == "true");
}

TEST_CASE("status: nodes by index after a reload; retired ones left out; paused shown") {
  Config config = ThreeNodeConfig();
  auto topo = ProbedTopology(config);
  // A reload removed pg-b and added pg-d; the new file lists pg-d first.
  topo->RetireNode(1, 2000);
  topo->AddNode({"pg-d", "eu"}, 2000);
  Config next = config;
  next.nodes = {{"pg-d", "eu", "10.0.0.9", 6000}, config.nodes[0], config.nodes[2]};
  StatusInput in;
  in.config = &next;
  in.topology = topo->snapshot().get();
  in.nodes = {{.config = &config.nodes[0]},
              {.config = &config.nodes[1]},
              {.config = &config.nodes[2], .paused = true},
              {.config = &next.nodes[0]}};
  std::string json = RenderStatusJson(in);
  CAPTURE(json);
  JsonTree t;
  REQUIRE(t.Parse(json));
  JsonTree::Index nodes = t.Member(0, "nodes");
  JsonTree::Index a = Element(t, nodes, 0);
  JsonTree::Index c = Element(t, nodes, 1);
  JsonTree::Index d = Element(t, nodes, 2);
  REQUIRE(d != JsonTree::kNone);
  CHECK(Element(t, nodes, 3) == JsonTree::kNone);
  CHECK(t.RawString(a, "name") == "pg-a");
  CHECK(Text(t, a, "paused") == "false");
  CHECK(t.RawString(c, "name") == "pg-c");
  CHECK(t.RawString(c, "host") == "10.0.1.1");
  CHECK(Text(t, c, "paused") == "true");
  CHECK(t.RawString(d, "name") == "pg-d");
  CHECK(t.RawString(d, "host") == "10.0.0.9");
  CHECK(Text(t, d, "port") == "6000");
  CHECK(Text(t, d, "up") == "false");
}

TEST_CASE("status: the tenant mapping's state") {
  Config config = ThreeNodeConfig();
  auto topo = ProbedTopology(config);
  Metrics::TenantMapState m;
  StatusInput in;
  in.config = &config;
  in.topology = topo->snapshot().get();
  in.unix_ms = 1795305485123;
  // The tree points into the text: both live in the caller's scope.
  std::string json;
  auto mapping = [&](JsonTree& t) {
    json = RenderStatusJson(in);
    REQUIRE(t.Parse(json));
    return t.Member(t.Member(0, "tenants"), "mapping");
  };
  {
    JsonTree t;
    json = RenderStatusJson(in);
    REQUIRE(t.Parse(json));
    CHECK(t.Member(0, "tenants") == JsonTree::kNone);  // nothing configured: not shown
  }
  in.tenant_map = &m;
  in.tenant_config_entries = 2;
  m.configured = true;
  {
    JsonTree t;
    JsonTree::Index mp = mapping(t);
    CHECK(t.RawString(mp, "state") == "loading");
    CHECK(Text(t, mp, "loaded_at") == "null");
    CHECK(Text(t, t.Member(0, "tenants"), "config_entries") == "2");
  }
  m.loaded_unix_ms = in.unix_ms - 2500;
  m.entries = 1000;
  m.refreshes = 3;
  m.rows = 1001;
  m.skipped = 1;
  m.node = "pg-a";
  {
    JsonTree t;
    JsonTree::Index mp = mapping(t);
    CHECK(t.RawString(mp, "state") == "ok");
    CHECK(Text(t, mp, "entries") == "1000");
    CHECK(Text(t, mp, "age_s") == "2.5");
    CHECK(t.RawString(t.Member(mp, "last_refresh"), "node") == "pg-a");
    CHECK(Text(t, t.Member(mp, "last_refresh"), "skipped") == "1");
  }
  m.last_error_unix_ms = in.unix_ms - 100;
  m.last_error = "node pg-a: query: relation \"tenants\" does not exist";
  m.refresh_errors = 1;
  {
    JsonTree t;
    JsonTree::Index mp = mapping(t);
    CHECK(t.RawString(mp, "state") == "stale");  // the last good map is in use
    CHECK(Text(t, mp, "refresh_errors") == "1");
  }
  m.loaded_unix_ms = 0;
  {
    JsonTree t;
    CHECK(t.RawString(mapping(t), "state") == "failing");
  }
}

TEST_CASE("status: strings are escaped") {
  Config config = ThreeNodeConfig();
  config.proxy.region = "a\"b\\c\nd\x01";
  auto topo = ProbedTopology(config);
  StatusInput in;
  in.config = &config;
  in.topology = topo->snapshot().get();
  std::string json = RenderStatusJson(in);
  CHECK(json.find(R"("region":"a\"b\\c\nd\u0001")") != std::string::npos);
  JsonTree t;
  CHECK(t.Parse(json));
  CHECK(t.String(t.Member(0, "region")) == config.proxy.region);
}

TEST_CASE("readiness: a single primary, not shutting down") {
  Config config = ThreeNodeConfig();
  std::vector<routing::NodeSpec> specs;
  for (const NodeConfig& n : config.nodes) specs.push_back({n.name, n.region});
  routing::Topology topo(specs, routing::TopologyOptions{});
  Readiness r = ComputeReadiness(*topo.snapshot(), false);
  CHECK_FALSE(r.ready);
  CHECK(r.reason.find("not probed") != std::string::npos);
  topo.OnProbeSuccess(1, testing::Probe(true, 0x100, 100), 10);
  r = ComputeReadiness(*topo.snapshot(), false);
  CHECK_FALSE(r.ready);
  CHECK(r.reason.find("no primary") != std::string::npos);
  topo.OnProbeSuccess(0, testing::Probe(false, 0x100, 100), 10);
  CHECK(ComputeReadiness(*topo.snapshot(), false).ready);
  CHECK(ComputeReadiness(*topo.snapshot(), false).reason.empty());
  r = ComputeReadiness(*topo.snapshot(), true);
  CHECK_FALSE(r.ready);
  CHECK(r.reason == "shutting down");
  topo.OnProbeSuccess(2, testing::Probe(false, 0x100, 100), 10);  // a second claimant
  r = ComputeReadiness(*topo.snapshot(), false);
  CHECK_FALSE(r.ready);
  CHECK(r.reason.find("more than one") != std::string::npos);
}

TEST_CASE("status: time formatting") {
  CHECK(FormatUnixMs(0) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatUnixMs(1795305485123) == "2026-11-21T23:58:05.123Z");
  CHECK(FormatUnixMs(-1) == "1969-12-31T23:59:59.999Z");
}

}  // namespace
}  // namespace pgregion::proxy
