#include "routing/topology.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace pgregion::routing {

using Change = NodeHealth::Change;

std::string_view NodeRoleName(NodeRole role) {
  switch (role) {
    case NodeRole::kUnknown:
      return "unknown";
    case NodeRole::kPrimary:
      return "primary";
    case NodeRole::kReplica:
      return "replica";
  }
  return "unknown";
}

std::string_view PrimaryStateName(PrimaryState state) {
  switch (state) {
    case PrimaryState::kNone:
      return "none";
    case PrimaryState::kOne:
      return "one";
    case PrimaryState::kConflict:
      return "conflict";
  }
  return "none";
}

Topology::Topology(std::vector<NodeSpec> nodes, const TopologyOptions& options)
    : options_(options),
      specs_(std::make_shared<const std::vector<NodeSpec>>(std::move(nodes))),
      lag_(options.lag_samples) {
  if (!(options_.rtt_alpha > 0 && options_.rtt_alpha <= 1)) options_.rtt_alpha = 0.25;
  nodes_.reserve(specs_->size());
  for (size_t i = 0; i < specs_->size(); ++i) nodes_.emplace_back(options_.health);
  TopologyUpdate ignored;
  Rebuild(-1, 0, &ignored);
}

TopologyUpdate Topology::OnProbeSuccess(size_t index, const ProbeResult& probe, uint64_t now_ms) {
  TopologyUpdate update;
  if (index >= nodes_.size() || nodes_[index].retired) return update;
  Node& n = nodes_[index];
  const bool was_up = n.health.up();
  const bool was_down = n.health.state() == NodeHealth::State::kDown;
  update.health = n.health.OnSuccess(now_ms);
  update.readmitted = was_down && update.health == Change::kWentUp;

  const NodeRole role = probe.in_recovery ? NodeRole::kReplica : NodeRole::kPrimary;
  if (n.role != NodeRole::kUnknown && n.role != role) update.role_change = RoleChange{n.role, role};

  const bool identity_changed =
      !n.identity_known || n.system_identifier != probe.system_identifier ||
      n.timeline != probe.timeline || n.connection_epoch != probe.connection_epoch;
  // The first identity is no reset: there was nothing cached to throw away.
  update.identity_reset = n.identity_known && identity_changed;
  if (role == NodeRole::kPrimary || identity_changed || update.role_change || probe.lsn >= n.lsn) {
    n.lsn = probe.lsn;
    n.lsn_at_ms = now_ms;
  } else if (role == NodeRole::kReplica) {
    // An older replay LSN on the same connection: keep the lower bound we had
    // (the poller may have seen a newer one), but it is still current as of now.
    n.lsn_at_ms = now_ms;
  }
  n.role = role;
  n.identity_known = true;
  n.system_identifier = probe.system_identifier;
  n.timeline = probe.timeline;
  n.connection_epoch = probe.connection_epoch;
  n.replay_timestamp_us = probe.replay_timestamp_us;
  n.replay_paused = probe.in_recovery && probe.replay_paused;
  n.last_success_ms = now_ms;

  const double rtt = static_cast<double>(probe.rtt_us);
  if (!n.rtt_known || !was_up) {
    n.rtt_us = rtt;
    n.rtt_known = true;
  } else {
    n.rtt_us += options_.rtt_alpha * (rtt - n.rtt_us);
  }
  Rebuild(static_cast<int>(index), now_ms, &update);
  return update;
}

TopologyUpdate Topology::OnProbeFailure(size_t index, NodeHealth::Failure failure,
                                        uint64_t now_ms) {
  TopologyUpdate update;
  if (index >= nodes_.size() || nodes_[index].retired) return update;
  const bool was_suspect = nodes_[index].health.suspect();
  update.health = nodes_[index].health.OnFailure(failure, now_ms);
  update.went_suspect = !was_suspect && nodes_[index].health.suspect();
  Rebuild(-1, now_ms, &update);
  return update;
}

TopologyUpdate Topology::OnProbeSuspect(size_t index, uint64_t now_ms) {
  TopologyUpdate update;
  if (index >= nodes_.size() || nodes_[index].retired) return update;
  update.went_suspect = nodes_[index].health.MarkSuspect();
  if (update.went_suspect) Rebuild(-1, now_ms, &update);
  return update;
}

TopologyUpdate Topology::OnReplayLsn(size_t index, Lsn replay, uint64_t now_ms) {
  TopologyUpdate update;
  if (index >= nodes_.size()) return update;
  Node& n = nodes_[index];
  if (n.retired || !n.health.up() || n.role != NodeRole::kReplica || replay < n.lsn) return update;
  n.lsn = replay;
  n.lsn_at_ms = std::max(n.lsn_at_ms, now_ms);
  Rebuild(-1, now_ms, &update);
  return update;
}

size_t Topology::AddNode(NodeSpec spec, uint64_t now_ms) {
  // Snapshots already handed out keep the list their name views point into.
  auto specs = std::make_shared<std::vector<NodeSpec>>(*specs_);
  specs->push_back(std::move(spec));
  specs_ = std::move(specs);
  nodes_.emplace_back(options_.health);
  TopologyUpdate ignored;
  Rebuild(-1, now_ms, &ignored);
  return nodes_.size() - 1;
}

TopologyUpdate Topology::RetireNode(size_t index, uint64_t now_ms) {
  TopologyUpdate update;
  if (index >= nodes_.size() || nodes_[index].retired) return update;
  Node& n = nodes_[index];
  const NodeRole role = n.role;  // kept for the record
  n = Node(options_.health);
  n.role = role;
  n.retired = true;
  Rebuild(-1, now_ms, &update);
  return update;
}

void Topology::SetHealthPolicy(const HealthPolicy& policy) {
  options_.health = policy;
  for (Node& n : nodes_) n.health.SetPolicy(policy);
}

void Topology::FeedLagHistory(uint64_t now_ms) {
  if (primary_ < 0) return;
  const Node& p = nodes_[static_cast<size_t>(primary_)];
  if (lag_owner_ != primary_ || lag_owner_timeline_ != p.timeline ||
      lag_owner_system_identifier_ != p.system_identifier) {
    lag_.Clear();
    lag_owner_ = primary_;
    lag_owner_timeline_ = p.timeline;
    lag_owner_system_identifier_ = p.system_identifier;
  }
  lag_.AddPrimarySample(now_ms, p.lsn);
}

void Topology::Rebuild(int probed_node, uint64_t now_ms, TopologyUpdate* update) {
  int primary = -1;
  int claimants = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].health.up() && nodes_[i].role == NodeRole::kPrimary) {
      ++claimants;
      primary = static_cast<int>(i);
    }
  }
  const PrimaryState state = claimants == 0   ? PrimaryState::kNone
                             : claimants == 1 ? PrimaryState::kOne
                                              : PrimaryState::kConflict;
  if (state != PrimaryState::kOne) primary = -1;
  update->primary_changed = state != primary_state_ || primary != primary_;
  primary_state_ = state;
  primary_ = primary;
  if (primary >= 0) {
    if (last_single_primary_ >= 0 && last_single_primary_ != primary) {
      ++failovers_;
      update->failover = true;
    }
    last_single_primary_ = primary;
  }
  // Only the primary's own successful probe adds a sample.
  if (primary >= 0 && primary == probed_node) FeedLagHistory(now_ms);

  auto snap = std::make_shared<TopologySnapshot>();
  snap->specs = specs_;
  snap->nodes.resize(nodes_.size());
  snap->primary_state = state;
  snap->primary = primary;
  snap->failovers = failovers_;
  snap->version = ++version_;
  snap->built_at_ms = now_ms;
  const Node* p = primary >= 0 ? &nodes_[static_cast<size_t>(primary)] : nullptr;
  if (p != nullptr) {
    snap->system_identifier = p->system_identifier;
    snap->timeline = p->timeline;
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    NodeStatus& s = snap->nodes[i];
    s.name = (*specs_)[i].name;
    s.region = (*specs_)[i].region;
    s.index = i;
    s.retired = n.retired;
    s.health = n.health.state();
    s.up = n.health.up();
    s.suspect = n.health.suspect();
    s.role = n.role;
    s.rtt_known = n.rtt_known;
    s.rtt_us = n.rtt_known ? static_cast<uint64_t>(std::llround(n.rtt_us)) : 0;
    s.lsn = n.lsn;
    s.lsn_at_ms = n.lsn_at_ms;
    s.replay_timestamp_us = n.replay_timestamp_us;
    s.replay_paused = n.replay_paused;
    s.system_identifier = n.system_identifier;
    s.timeline = n.timeline;
    s.last_success_ms = n.last_success_ms;
    if (n.role == NodeRole::kReplica && p != nullptr && !n.retired) {
      s.lag_known = true;
      // Caught up across a page boundary counts as caught up (LagEstimator).
      s.lag_bytes = ReplayCovers(n.lsn, p->lsn) ? 0 : Lsn::BytesBetween(n.lsn, p->lsn);
      s.lag_ms = s.lag_bytes == 0 ? 0 : lag_.LagMs(n.lsn, n.lsn_at_ms);
    }
  }
  snapshot_ = std::move(snap);
}

}  // namespace pgregion::routing
