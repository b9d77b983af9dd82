// The /status document: this instance's region and readiness, every node with
// its role, health, RTT, WAL positions, lag and pools, and the recent topology
// changes, as JSON. Pure: the caller gathers the inputs (on the loop thread)
// and this renders them, so the shape is tested without a proxy.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/admin/metrics.h"
#include "proxy/config/config.h"
#include "routing/topology_snapshot.h"

namespace pgregion::proxy {

struct PoolStatus {
  int node = 0;
  std::string database;
  std::string user;
  uint64_t total = 0;  // open or opening server connections
  uint64_t idle = 0;
  uint64_t active = 0;
  uint64_t connecting = 0;
  uint64_t waiters = 0;  // clients queued for a connection
};

struct Readiness {
  bool ready = false;
  std::string reason;  // why not ready; empty when ready
};

// Ready when the proxy is not shutting down and the topology has exactly one
// primary (so writes have somewhere to go).
Readiness ComputeReadiness(const routing::TopologySnapshot& snap, bool shutting_down);

struct StatusInput {
  const Config* config = nullptr;
  const routing::TopologySnapshot* topology = nullptr;
  // By node index (the topology's): a reload appends nodes, so the config's
  // [[nodes]] order is not the index order. Missing entries: the config's
  // nodes[index], not paused.
  struct Node {
    const NodeConfig* config = nullptr;
    bool paused = false;  // PAUSE in the admin console
  };
  std::vector<Node> nodes;
  Readiness readiness;
  bool roles_discovered = false;
  std::array<uint64_t, kClientGaugeStates> clients{};
  std::vector<PoolStatus> pools;
  const std::deque<TopologyEvent>* events = nullptr;
  // The tenant mapping ([tenancy] query); shown when configured.
  const Metrics::TenantMapState* tenant_map = nullptr;
  uint64_t tenant_config_entries = 0;  // [[tenants]]
  uint64_t now_ms = 0;                 // the loop's clock, as the snapshot's *_ms fields
  int64_t unix_ms = 0;
};

std::string RenderStatusJson(const StatusInput& in);

// "2026-11-21T23:58:05.123Z".
std::string FormatUnixMs(int64_t unix_ms);

}  // namespace pgregion::proxy
