// A config and a topology of three nodes in two regions for the metrics and
// /status tests: pg-a (eu, primary), pg-b (eu, replica), pg-c (us, replica).
#pragma once

#include <memory>
#include <vector>

#include "proxy/config/config.h"
#include "routing/topology.h"

namespace pgregion::proxy::testing {

inline Config ThreeNodeConfig() {
  Config c;
  c.proxy.region = "eu";
  c.admin.enabled = true;
  c.nodes = {{"pg-a", "eu", "10.0.0.1", 5432},
             {"pg-b", "eu", "10.0.0.2", 5433},
             {"pg-c", "us", "10.0.1.1", 5432}};
  return c;
}

inline routing::ProbeResult Probe(bool replica, uint64_t lsn, uint64_t rtt_us) {
  routing::ProbeResult p;
  p.in_recovery = replica;
  p.lsn = routing::Lsn(lsn);
  p.rtt_us = rtt_us;
  p.system_identifier = 7'300'000'000'000'000'001ull;
  p.timeline = 1;
  p.connection_epoch = 1;
  return p;
}

// One probe round: pg-a primary at 0x3000100, pg-b replayed all of it, pg-c is
// 0x100 bytes behind; pg-c's RTT is 80 ms.
inline std::unique_ptr<routing::Topology> ProbedTopology(const Config& c) {
  std::vector<routing::NodeSpec> specs;
  for (const NodeConfig& n : c.nodes) specs.push_back({n.name, n.region});
  auto topo = std::make_unique<routing::Topology>(std::move(specs), routing::TopologyOptions{});
  topo->OnProbeSuccess(0, Probe(false, 0x3000100, 500), 1000);
  topo->OnProbeSuccess(1, Probe(true, 0x3000100, 700), 1000);
  topo->OnProbeSuccess(2, Probe(true, 0x3000000, 80'000), 1000);
  return topo;
}

}  // namespace pgregion::proxy::testing
