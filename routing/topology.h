// The mutable side of the topology: per-node probe results go in, an immutable
// TopologySnapshot comes out after every update, with what changed.
//
// Owns each node's NodeHealth, RTT EWMA, last role, WAL positions and identity,
// and the LagEstimator fed by the primary's probes. Pure: no I/O, no clock (each
// call carries `now_ms`, milliseconds on a monotonic clock). Owned by the
// health checker on the proxy's loop thread; the snapshots it hands out may be
// read anywhere.
//
// Decisions:
// - Startup, down and recovery follow NodeHealth (first success: up at once).
// - RTT: EWMA with alpha 0.25 (a step change is 90% visible after 8 probes, 4 s
//   at the default 500 ms interval). While a node is not up, each sample
//   replaces the average, so it comes back with its current RTT.
// - Primary: exactly one up node reporting pg_is_in_recovery() = false. Two or
//   more: kConflict, no primary (never write to a stale primary). A node that
//   goes down stops counting at once.
// - A node's cached LSN and replay state are reset (replaced, never max'ed)
//   when its system identifier, timeline or probe connection epoch changes;
//   otherwise a replica's replay LSN only moves forward (it is a lower bound).
// - A role change of a node (primary <-> replica, both known) is reported so
//   the proxy drains that node's server connections. A failover is counted when
//   the single primary becomes a different node than the last single primary.
// - A reload adds nodes at the end and retires removed ones in place: indices
//   are never reused or shifted (the proxy keys pools, metrics and its sessions'
//   caches by them). A retired node is never up again and ignores probes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "routing/lag_estimator.h"
#include "routing/lsn.h"
#include "routing/node_health.h"
#include "routing/topology_snapshot.h"

namespace pgregion::routing {

struct TopologyOptions {
  HealthPolicy health;
  double rtt_alpha = 0.25;
  size_t lag_samples = LagEstimator::kDefaultCapacity;
};

// What one successful probe read from a node.
struct ProbeResult {
  bool in_recovery = false;
  // pg_current_wal_insert_lsn() on a primary, pg_last_wal_replay_lsn() on a
  // replica (invalid when NULL).
  Lsn lsn;
  uint64_t rtt_us = 0;  // the probe's own round trip
  std::optional<int64_t> replay_timestamp_us;
  bool replay_paused = false;      // pg_get_wal_replay_pause_state() <> 'not paused'
  uint64_t system_identifier = 0;  // pg_control_system(); 0: not read
  uint32_t timeline = 0;           // 0: not read
  // The checker increments it for every new probe connection, so a reconnect
  // (the node restarted, or the network broke) resets what was cached.
  uint64_t connection_epoch = 0;
};

struct RoleChange {
  NodeRole from = NodeRole::kUnknown;
  NodeRole to = NodeRole::kUnknown;
};

// What one call changed. Each call concerns one node.
struct TopologyUpdate {
  NodeHealth::Change health = NodeHealth::Change::kNone;
  // kWentUp after being down (not the first discovery): LatencyTracker::Readmit.
  bool readmitted = false;
  std::optional<RoleChange> role_change;  // drain this node's server connections
  bool primary_changed = false;           // primary_state or primary index differs
  bool failover = false;                  // the primary became another node
  bool identity_reset = false;            // cached LSN state of the node was reset
  bool went_suspect = false;              // a probe timed out: abandon reads running there
};

class Topology {
 public:
  Topology(std::vector<NodeSpec> nodes, const TopologyOptions& options);

  TopologyUpdate OnProbeSuccess(size_t node, const ProbeResult& probe, uint64_t now_ms);
  TopologyUpdate OnProbeFailure(size_t node, NodeHealth::Failure failure, uint64_t now_ms);
  // A probe still waiting after timeout_ms (NodeHealth::MarkSuspect).
  TopologyUpdate OnProbeSuspect(size_t node, uint64_t now_ms);
  // A replay LSN learned between probes (the read-your-writes poller): raises the
  // cached lower bound of an up replica; ignored otherwise.
  TopologyUpdate OnReplayLsn(size_t node, Lsn replay, uint64_t now_ms);

  // A node added by a reload: the next index, kUnknown until its first probe.
  size_t AddNode(NodeSpec spec, uint64_t now_ms);
  // A node removed by a reload: down for good (the primary role it may have had
  // no longer counts), its index kept. Idempotent.
  TopologyUpdate RetireNode(size_t node, uint64_t now_ms);
  // A reload's new up/down thresholds, for every node; states are kept.
  void SetHealthPolicy(const HealthPolicy& policy);

  const TopologySnapshotPtr& snapshot() const { return snapshot_; }
  size_t size() const { return nodes_.size(); }

 private:
  struct Node {
    explicit Node(const HealthPolicy& policy) : health(policy) {}
    NodeHealth health;
    NodeRole role = NodeRole::kUnknown;
    bool rtt_known = false;
    double rtt_us = 0;
    Lsn lsn;
    uint64_t lsn_at_ms = 0;
    std::optional<int64_t> replay_timestamp_us;
    bool replay_paused = false;
    bool identity_known = false;
    uint64_t system_identifier = 0;
    uint32_t timeline = 0;
    uint64_t connection_epoch = 0;
    uint64_t last_success_ms = 0;
    bool retired = false;
  };

  // Recomputes the primary, feeds the lag history when `probed_node` (-1: none)
  // just answered a probe and is the primary, builds the next snapshot and fills
  // the global fields of `update`.
  void Rebuild(int probed_node, uint64_t now_ms, TopologyUpdate* update);
  void FeedLagHistory(uint64_t now_ms);

  TopologyOptions options_;
  std::shared_ptr<const std::vector<NodeSpec>> specs_;
  std::vector<Node> nodes_;
  LagEstimator lag_;
  // Whose insert LSNs `lag_` holds: a different primary or timeline starts over.
  int lag_owner_ = -1;
  uint32_t lag_owner_timeline_ = 0;
  uint64_t lag_owner_system_identifier_ = 0;

  PrimaryState primary_state_ = PrimaryState::kNone;
  int primary_ = -1;
  int last_single_primary_ = -1;
  uint64_t failovers_ = 0;
  uint64_t version_ = 0;
  TopologySnapshotPtr snapshot_;
};

}  // namespace pgregion::routing
