#include "proxy/admin/metrics.h"

#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "tests/admin/observability_test_util.h"

namespace pgregion::proxy {
namespace {

using routing::RouteReason;
using testing::ProbedTopology;
using testing::ThreeNodeConfig;

bool Has(const std::string& text, std::string_view line) {
  return text.find(std::string(line) + "\n") != std::string::npos;
}

TEST_CASE("LoopHistogram: buckets are cumulative, +Inf last") {
  LoopHistogram h;
  h.Observe(0.00001);  // 10 µs: first bucket
  h.Observe(0.00003);  // 30 µs: second
  h.Observe(0.2);      // 200 ms
  h.Observe(100);      // above every bound
  prometheus::ClientMetric m;
  h.CollectInto(&m);
  CHECK(m.histogram.sample_count == 4);
  CHECK(m.histogram.sample_sum == doctest::Approx(100.20004));
  REQUIRE(m.histogram.bucket.size() == kLatencyBuckets.size() + 1);
  CHECK(m.histogram.bucket[0].upper_bound == doctest::Approx(0.000025));
  CHECK(m.histogram.bucket[0].cumulative_count == 1);
  CHECK(m.histogram.bucket[1].cumulative_count == 2);
  CHECK(m.histogram.bucket[11].upper_bound == doctest::Approx(0.1));
  CHECK(m.histogram.bucket[11].cumulative_count == 2);
  CHECK(m.histogram.bucket[12].cumulative_count == 3);  // 0.25
  CHECK(m.histogram.bucket[kLatencyBuckets.size() - 1].cumulative_count == 3);
  CHECK(std::isinf(m.histogram.bucket.back().upper_bound));
  CHECK(m.histogram.bucket.back().cumulative_count == 4);
  // A value exactly on a bound belongs to that bucket (le = less or equal).
  LoopHistogram edge;
  edge.Observe(0.001);
  edge.CollectInto(&m);
  CHECK(m.histogram.bucket[4].cumulative_count == 0);
  CHECK(m.histogram.bucket[5].cumulative_count == 1);
}

TEST_CASE("Metrics: routing decisions by node, role and reason") {
  Config config = ThreeNodeConfig();
  Metrics m(config);
  m.Routed(0, true, RouteReason::kWrite);
  m.Routed(0, true, RouteReason::kWrite);
  m.Routed(2, false, RouteReason::kRead);
  m.Routed(-1, true, RouteReason::kWrite);            // no node: ignored
  m.Routed(7, true, RouteReason::kWrite);             // not configured: ignored
  m.Routed(1, false, static_cast<RouteReason>(200));  // out of range: ignored
  CHECK(m.routed_count(0, true, RouteReason::kWrite) == 2);
  CHECK(m.routed_count(0, false, RouteReason::kWrite) == 0);
  CHECK(m.routed_count(2, false, RouteReason::kRead) == 1);

  auto topo = ProbedTopology(config);
  std::string text = m.RenderText(*topo->snapshot(), ConnectionCounts{});
  CHECK(Has(text, "# TYPE pgregion_routed_total counter"));
  CHECK(Has(text,
            R"(pgregion_routed_total{node="pg-a",region="eu",role="primary",reason="write"} 2)"));
  CHECK(Has(text,
            R"(pgregion_routed_total{node="pg-c",region="us",role="replica",reason="read"} 1)"));
  // Every (node, role, known reason) exists from the start, at 0.
  CHECK(Has(text, R"(pgregion_routed_total{node="pg-b",region="eu",role="replica",)"
                  R"(reason="no_replica"} 0)"));
  CHECK(text.find("reason=\"unknown\"") == std::string::npos);
}

TEST_CASE("Metrics: histograms by region and role, pool waits by node") {
  Config config = ThreeNodeConfig();
  Metrics m(config);
  REQUIRE(m.timing());
  // pg-a and pg-b share the region eu: one series per (region, role).
  CHECK(m.QueryHistogram(0, false) == m.QueryHistogram(1, false));
  CHECK(m.QueryHistogram(0, true) != m.QueryHistogram(0, false));
  CHECK(m.QueryHistogram(2, false) != m.QueryHistogram(1, false));
  CHECK(m.QueryHistogram(3, false) == nullptr);
  CHECK(m.QueryHistogram(-1, false) == nullptr);
  CHECK(m.PoolWaitHistogram(3) == nullptr);
  m.QueryHistogram(1, false)->Observe(0.0004);
  m.PoolWaitHistogram(2)->Observe(0.0);

  auto topo = ProbedTopology(config);
  std::string text = m.RenderText(*topo->snapshot(), ConnectionCounts{});
  CHECK(Has(text, "# TYPE pgregion_query_duration_seconds histogram"));
  CHECK(Has(text, R"(pgregion_query_duration_seconds_count{region="eu",role="replica"} 1)"));
  CHECK(Has(text,
            R"(pgregion_query_duration_seconds_bucket{region="eu",role="replica",le="0.0005"} 1)"));
  CHECK(
      Has(text,
          R"(pgregion_query_duration_seconds_bucket{region="eu",role="replica",le="0.00025"} 0)"));
  CHECK(Has(text, R"(pgregion_query_duration_seconds_count{region="us",role="primary"} 0)"));
  CHECK(Has(text, R"(pgregion_pool_wait_seconds_count{node="pg-c"} 1)"));
  CHECK(Has(text, R"(pgregion_pool_wait_seconds_bucket{node="pg-c",le="+Inf"} 1)"));
  CHECK(Has(text, "# TYPE pgregion_ryw_wait_seconds histogram"));
}

TEST_CASE("Metrics: without the admin endpoint nothing reads the clock") {
  Config config = ThreeNodeConfig();
  config.admin.enabled = false;
  Metrics m(config);
  CHECK_FALSE(m.timing());
  UnitTimer t;
  std::vector<routing::NodeView> views(3);
  views[0].primary = true;
  t.Routed(m, routing::Route{0, RouteReason::kWrite}, views);
  t.Assigned();
  t.Done();
  CHECK(m.routed_count(0, true, RouteReason::kWrite) == 1);  // counting goes on
  auto topo = ProbedTopology(config);
  std::string text = m.RenderText(*topo->snapshot(), ConnectionCounts{});
  CHECK(Has(text, R"(pgregion_query_duration_seconds_count{region="eu",role="primary"} 0)"));
}

TEST_CASE("UnitTimer: a unit is timed from its routing decision to its end") {
  Config config = ThreeNodeConfig();
  Metrics m(config);
  UnitTimer t;
  std::vector<routing::NodeView> views(3);
  views[0].primary = true;
  t.Routed(m, routing::Route{1, RouteReason::kRead}, views);
  t.Assigned();
  t.Assigned();  // once per decision
  t.Done();
  t.Done();  // once per unit
  CHECK(m.PoolWaitHistogram(1)->count() == 1);
  CHECK(m.QueryHistogram(1, false)->count() == 1);
  // The next unit on the bound server: from its first message.
  t.Continue();
  t.Continue();
  t.Done();
  CHECK(m.QueryHistogram(1, false)->count() == 2);
  CHECK(m.PoolWaitHistogram(1)->count() == 1);
  // Pipelined behind it on the same server: counted, timed with the running one.
  t.Continue();
  t.RoutedWhileBound(m, routing::Route{1, RouteReason::kRead}, views);
  t.Done();
  CHECK(m.routed_count(1, false, RouteReason::kRead) == 2);
  CHECK(m.QueryHistogram(1, false)->count() == 3);
  // Nothing routed to a node: nothing timed.
  UnitTimer idle;
  idle.Continue();
  idle.Done();
  idle.Routed(m, routing::Route{-1, RouteReason::kWrite}, views);
  idle.Done();
  CHECK(m.QueryHistogram(0, true)->count() == 0);
}

TEST_CASE("Metrics: node gauges come from the topology snapshot") {
  Config config = ThreeNodeConfig();
  Metrics m(config);
  auto topo = ProbedTopology(config);
  ConnectionCounts conns;
  conns.clients = {1, 2, 3, 4};
  conns.servers.resize(3);
  conns.servers[1] = {.idle = 5, .active = 6, .connecting = 7, .waiters = 8};
  std::string text = m.RenderText(*topo->snapshot(), conns);
  CHECK(Has(text, R"(pgregion_build_info{version=")" PGREGION_VERSION R"("} 1)"));
  CHECK(Has(text, R"(pgregion_node_up{node="pg-a",region="eu"} 1)"));
  CHECK(Has(text, R"(pgregion_node_is_primary{node="pg-a",region="eu"} 1)"));
  CHECK(Has(text, R"(pgregion_node_is_primary{node="pg-c",region="us"} 0)"));
  CHECK(text.find(R"(pgregion_node_rtt_seconds{node="pg-c",region="us"} 0.08)") !=
        std::string::npos);
  CHECK(Has(text, R"(pgregion_replica_lag_bytes{node="pg-b",region="eu"} 0)"));
  CHECK(Has(text, R"(pgregion_replica_lag_bytes{node="pg-c",region="us"} 256)"));
  CHECK(text.find(R"(pgregion_replica_lag_bytes{node="pg-a")") == std::string::npos);
  CHECK(text.find(R"(pgregion_replica_lag_seconds{node="pg-c",region="us"} )") !=
        std::string::npos);
  CHECK(Has(text, "pgregion_failovers_total 0"));
  CHECK(Has(text, R"(pgregion_client_connections{state="login"} 1)"));
  CHECK(Has(text, R"(pgregion_client_connections{state="active"} 4)"));
  CHECK(Has(text, R"(pgregion_server_connections{node="pg-b",region="eu",state="idle"} 5)"));
  CHECK(Has(text, R"(pgregion_server_connections{node="pg-b",region="eu",state="active"} 6)"));
  CHECK(Has(text, R"(pgregion_server_connections{node="pg-b",region="eu",state="connecting"} 7)"));
  CHECK(Has(text, R"(pgregion_server_connections{node="pg-c",region="us",state="idle"} 0)"));
}

TEST_CASE("Metrics: a reload adds and retires nodes; histograms never move") {
  Config config = ThreeNodeConfig();
  Metrics m(config);
  LoopHistogram* eu_replica = m.QueryHistogram(1, false);
  LoopHistogram* wait_c = m.PoolWaitHistogram(2);
  m.Routed(1, false, RouteReason::kRead);
  // A node in a new region, then one in a known region.
  m.AddNode("pg-d", "ap");
  m.AddNode("pg-e", "eu");
  CHECK(m.QueryHistogram(1, false) == eu_replica);
  CHECK(m.PoolWaitHistogram(2) == wait_c);
  CHECK(m.QueryHistogram(4, false) == eu_replica);
  REQUIRE(m.QueryHistogram(3, true) != nullptr);
  CHECK(m.QueryHistogram(3, true) != m.QueryHistogram(0, true));
  REQUIRE(m.PoolWaitHistogram(4) != nullptr);
  m.Routed(3, false, RouteReason::kRead);
  CHECK(m.routed_count(3, false, RouteReason::kRead) == 1);
  CHECK(m.routed_count(1, false, RouteReason::kRead) == 1);

  // pg-b removed, then added back under index 5: only the new one is exported.
  auto topo = ProbedTopology(config);
  topo->AddNode({"pg-d", "ap"}, 2000);
  topo->AddNode({"pg-e", "eu"}, 2000);
  topo->RetireNode(1, 2000);
  m.RetireNode(1);
  m.AddNode("pg-b", "eu");
  topo->AddNode({"pg-b", "eu"}, 2000);
  ConnectionCounts conns;
  conns.servers.resize(6);
  std::string text = m.RenderText(*topo->snapshot(), conns);
  CHECK(Has(text,
            R"(pgregion_routed_total{node="pg-d",region="ap",role="replica",reason="read"} 1)"));
  CHECK(Has(text,
            R"(pgregion_routed_total{node="pg-b",region="eu",role="replica",reason="read"} 0)"));
  CHECK(Has(text, R"(pgregion_query_duration_seconds_count{region="ap",role="primary"} 0)"));
  CHECK(Has(text, R"(pgregion_node_up{node="pg-b",region="eu"} 0)"));
  CHECK(Has(text, R"(pgregion_node_up{node="pg-a",region="eu"} 1)"));
  // One series per label set: the retired pg-b is gone from every family.
  auto count = [&](std::string_view needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
      ++n;
    }
    return n;
  };
  CHECK(count(R"(pgregion_node_up{node="pg-b")") == 1);
  CHECK(count(R"(pgregion_pool_wait_seconds_count{node="pg-b"})") == 1);
  CHECK(count(R"(pgregion_server_connections{node="pg-b",region="eu",state="idle"})") == 1);
  CHECK(count(R"(pgregion_routed_total{node="pg-b",region="eu",role="replica",reason="read"})") ==
        1);
}

TEST_CASE("Metrics: errors, read retries and read-your-writes fallbacks by kind") {
  Config config = ThreeNodeConfig();
  Metrics m(config);
  m.Error(ErrorKind::kAuthFailed);
  m.Error(ErrorKind::kAuthFailed);
  m.Error(ErrorKind::kServerLoginFailed);
  m.RywFallback(RywFallbackReason::kTooFar);
  m.RywWait(0.003);
  m.ReadRetry(ReadRetryReason::kDeadline);
  CHECK(m.error_count(ErrorKind::kAuthFailed) == 2);
  CHECK(m.read_retry_count(ReadRetryReason::kDeadline) == 1);
  auto topo = ProbedTopology(config);
  std::string text = m.RenderText(*topo->snapshot(), ConnectionCounts{});
  CHECK(Has(text, R"(pgregion_errors_total{kind="auth_failed"} 2)"));
  CHECK(Has(text, R"(pgregion_errors_total{kind="server_login_failed"} 1)"));
  CHECK(Has(text, R"(pgregion_errors_total{kind="pool_timeout"} 0)"));
  CHECK(Has(text, R"(pgregion_ryw_fallbacks_total{reason="too_far"} 1)"));
  CHECK(Has(text, "pgregion_ryw_wait_seconds_count 1"));
  CHECK(Has(text, R"(pgregion_read_retries_total{reason="deadline"} 1)"));
  CHECK(Has(text, R"(pgregion_read_retries_total{reason="node_suspect"} 0)"));
  for (size_t k = 0; k < kErrorKinds; ++k) {
    CHECK(ErrorKindName(static_cast<ErrorKind>(k)) != "unknown");
  }
  for (size_t r = 0; r < kRywFallbackReasons; ++r) {
    CHECK(RywFallbackReasonName(static_cast<RywFallbackReason>(r)) != "unknown");
  }
  for (size_t r = 0; r < kReadRetryReasons; ++r) {
    CHECK(ReadRetryReasonName(static_cast<ReadRetryReason>(r)) != "unknown");
  }
}

TEST_CASE("Metrics: role changes and failovers are remembered, bounded") {
  Config config = ThreeNodeConfig();
  Metrics m(config);
  auto topo = ProbedTopology(config);
  routing::TopologyUpdate update;
  update.role_change =
      routing::RoleChange{routing::NodeRole::kReplica, routing::NodeRole::kPrimary};
  update.primary_changed = true;
  update.failover = true;
  m.OnTopologyUpdate(1, update, *topo->snapshot(), 1795305485123);
  REQUIRE(m.recent_events().size() == 2);
  CHECK(m.recent_events()[0].event == "role_changed");
  CHECK(m.recent_events()[0].node == "pg-b");
  CHECK(m.recent_events()[0].from == "replica");
  CHECK(m.recent_events()[0].to == "primary");
  CHECK(m.recent_events()[0].failover);
  CHECK(m.recent_events()[1].event == "primary_changed");
  CHECK(m.recent_events()[1].node == "pg-a");  // the snapshot's primary
  for (int i = 0; i < 100; ++i) m.OnTopologyUpdate(1, update, *topo->snapshot(), i);
  CHECK(m.recent_events().size() == Metrics::kMaxEvents);
  CHECK(m.recent_events().back().unix_ms == 99);
  // Nothing changed: nothing recorded.
  m.OnTopologyUpdate(1, routing::TopologyUpdate{}, *topo->snapshot(), 1000);
  CHECK(m.recent_events().back().unix_ms == 99);
}

}  // namespace
}  // namespace pgregion::proxy
