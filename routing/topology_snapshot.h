// An immutable picture of every configured node: health, role, RTT, WAL
// positions and replication lag. Topology builds a new one after each update and
// hands it out as std::shared_ptr<const TopologySnapshot>; readers (routing,
// metrics, /status) hold the pointer as long as they need it and take no locks.
// Outstanding requests are not part of it: they change per statement and belong
// to the proxy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "routing/lsn.h"
#include "routing/node_health.h"

namespace pgregion::routing {

// A configured node, as `[[nodes]]` names it. No role: roles are discovered.
struct NodeSpec {
  std::string name;
  std::string region;
};

enum class NodeRole : uint8_t {
  kUnknown,  // never probed successfully
  kPrimary,  // pg_is_in_recovery() = false
  kReplica,  // pg_is_in_recovery() = true
};
std::string_view NodeRoleName(NodeRole role);

enum class PrimaryState : uint8_t {
  kNone,      // no up node reports not-in-recovery: writes wait, then fail
  kOne,       // exactly one: TopologySnapshot::primary
  kConflict,  // two or more claim it: writes are refused until one remains
};
std::string_view PrimaryStateName(PrimaryState state);

struct NodeStatus {
  // Views into the snapshot's own copy of the node list: valid while the
  // snapshot lives.
  std::string_view name;
  std::string_view region;
  size_t index = 0;  // position in the configuration (nodes added by reloads come last)
  // Removed from the configuration by a reload: never up, never routed to;
  // listed only so that indices stay stable. Reports skip it.
  bool retired = false;

  NodeHealth::State health = NodeHealth::State::kUnknown;
  bool up = false;
  // A probe timed out since the last successful one (NodeHealth): no new reads.
  bool suspect = false;
  // Last role reported; kept while the node is down.
  NodeRole role = NodeRole::kUnknown;

  bool rtt_known = false;
  uint64_t rtt_us = 0;  // EWMA of the probes' round trips

  // Insert LSN on a primary, replay LSN on a replica (a lower bound: reset when
  // the node reconnects, restarts or changes timeline), and when it was measured.
  Lsn lsn;
  uint64_t lsn_at_ms = 0;

  // Replicas only. Bytes: the primary's insert LSN minus this replay LSN (0 when
  // ahead). Time: see LagEstimator. Both 0 and lag_known false when there is no
  // single primary to compare with (reads go on during a failover).
  bool lag_known = false;
  uint64_t lag_bytes = 0;
  uint64_t lag_ms = 0;

  // pg_last_xact_replay_timestamp() in Unix microseconds; unset when NULL.
  std::optional<int64_t> replay_timestamp_us;
  bool replay_paused = false;

  uint64_t system_identifier = 0;  // 0: unknown
  uint32_t timeline = 0;           // 0: unknown
  uint64_t last_success_ms = 0;    // last successful probe (0: never)

  bool is_replica() const { return role == NodeRole::kReplica; }
  bool is_primary() const { return role == NodeRole::kPrimary; }
};

struct TopologySnapshot {
  std::shared_ptr<const std::vector<NodeSpec>> specs;  // keeps the name views alive
  std::vector<NodeStatus> nodes;                       // configuration order

  PrimaryState primary_state = PrimaryState::kNone;
  int primary = -1;  // index of the primary when primary_state is kOne, else -1
  // The primary's identity (for read-your-writes tokens); 0 when none.
  uint64_t system_identifier = 0;
  uint32_t timeline = 0;

  uint64_t failovers = 0;  // times the primary became another node (first discovery excluded)
  uint64_t version = 0;    // increases with every snapshot built
  uint64_t built_at_ms = 0;

  const NodeStatus* PrimaryNode() const {
    return primary >= 0 ? &nodes[static_cast<size_t>(primary)] : nullptr;
  }
};

using TopologySnapshotPtr = std::shared_ptr<const TopologySnapshot>;

}  // namespace pgregion::routing
