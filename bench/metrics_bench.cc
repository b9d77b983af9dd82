// Microbenchmark of the metrics work one unit of work adds on the hot path:
// UnitTimer::Routed (routed_total and the clock), Assigned (pool_wait_seconds)
// and Done (query_duration_seconds), with the admin endpoint on (clocks read)
// and off (counting only); and the cost of rendering /metrics. Prints a
// Markdown table. Single-threaded, about a second.
//
//   ./build/bench/metrics_bench
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "proxy/admin/metrics.h"
#include "routing/topology.h"

namespace {

using pgregion::proxy::Config;
using pgregion::proxy::ConnectionCounts;
using pgregion::proxy::Metrics;
using pgregion::proxy::UnitTimer;
using pgregion::routing::NodeView;
using pgregion::routing::Route;
using pgregion::routing::RouteReason;
using Clock = std::chrono::steady_clock;

Config ThreeNodes(bool admin) {
  Config c;
  c.admin.enabled = admin;
  c.nodes = {{"pg-a", "eu", "10.0.0.1", 5432},
             {"pg-b", "eu", "10.0.0.2", 5432},
             {"pg-c", "us", "10.0.1.1", 5432}};
  return c;
}

double NsPerUnit(bool admin, int units) {
  Config config = ThreeNodes(admin);
  Metrics m(config);
  std::vector<NodeView> views(3);
  views[0].primary = true;
  UnitTimer t;
  auto start = Clock::now();
  for (int i = 0; i < units; ++i) {
    int node = 1 + (i & 1);
    t.Routed(m, Route{node, RouteReason::kRead}, views);
    t.Assigned();
    t.Done();
  }
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  if (m.routed_count(1, false, RouteReason::kRead) == 0) std::printf("(unexpected)\n");
  return static_cast<double>(ns) / units;
}

double UsPerScrape(int scrapes) {
  Config config = ThreeNodes(true);
  Metrics m(config);
  std::vector<pgregion::routing::NodeSpec> specs;
  for (const auto& n : config.nodes) specs.push_back({n.name, n.region});
  pgregion::routing::Topology topo(specs, pgregion::routing::TopologyOptions{});
  ConnectionCounts conns;
  conns.servers.resize(3);
  size_t bytes = 0;
  auto start = Clock::now();
  for (int i = 0; i < scrapes; ++i) bytes += m.RenderText(*topo.snapshot(), conns).size();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  std::printf("| render /metrics (3 nodes, %zu bytes) | %.1f µs |\n", bytes / scrapes,
              static_cast<double>(ns) / scrapes / 1000);
  return 0;
}

}  // namespace

int main() {
  constexpr int kUnits = 5'000'000;
  NsPerUnit(true, kUnits / 10);  // warm up
  std::printf("| work | time |\n|---|---|\n");
  std::printf("| per unit, admin endpoint on (count + 3 clock reads + 2 histograms) | %.1f ns |\n",
              NsPerUnit(true, kUnits));
  std::printf("| per unit, admin endpoint off (count only) | %.1f ns |\n",
              NsPerUnit(false, kUnits));
  UsPerScrape(2000);
  return 0;
}
