#include "routing/replica_selector.h"

#include <algorithm>
#include <limits>

namespace pgregion::routing {
namespace {

constexpr uint64_t kTierSlackUs = 2000;
// Probe RTTs closer than this (absolute, or relative to the smaller one) are
// the same distance: an EWMA of probes on a busy host jitters by a millisecond
// or two, and comparing that noise would send every request to whichever
// replica looked faster at the moment instead of spreading by load. Only the
// RTT is flattened: observed latencies, the slow start after a re-admission
// and requests in flight still count in full.
constexpr uint64_t kRttNoiseUs = 2000;
constexpr double kRttNoiseRatio = 0.2;
// A floor for RTTs: on a LAN they are tens of microseconds apart.
constexpr uint64_t kMinRttUs = 1000;

uint64_t RttOrMax(const NodeStatus& n) {
  return n.rtt_known ? n.rtt_us : std::numeric_limits<uint64_t>::max();
}

}  // namespace

std::string_view ReadChoiceName(ReadChoice choice) {
  switch (choice) {
    case ReadChoice::kReplica:
      return "read";
    case ReadChoice::kNoReplica:
      return "no_replica";
    case ReadChoice::kLagFallback:
      return "lag_fallback";
    case ReadChoice::kRywFallback:
      return "ryw_fallback";
  }
  return "read";
}

uint64_t ReplicaSelector::NextRandom() {
  uint64_t z = (random_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void ReplicaSelector::KeepNearestTier(const ReadRequest& request, std::vector<size_t>* candidates) {
  const auto& nodes = request.topology->nodes;
  if (request.tenant != nullptr) {
    for (const std::string& region : request.tenant->prefer_regions) {
      const bool any = std::any_of(candidates->begin(), candidates->end(),
                                   [&](size_t i) { return nodes[i].region == region; });
      if (any) {
        std::erase_if(*candidates, [&](size_t i) { return nodes[i].region != region; });
        return;
      }
    }
  }
  const bool any_local = std::any_of(candidates->begin(), candidates->end(), [&](size_t i) {
    return nodes[i].region == request.local_region;
  });
  if (any_local) {
    std::erase_if(*candidates, [&](size_t i) { return nodes[i].region != request.local_region; });
    return;
  }
  uint64_t smallest = std::numeric_limits<uint64_t>::max();
  for (size_t i : *candidates) smallest = std::min(smallest, RttOrMax(nodes[i]));
  if (smallest == std::numeric_limits<uint64_t>::max()) return;  // nothing measured: one tier
  const double limit = 1.5 * static_cast<double>(smallest) + kTierSlackUs;
  std::erase_if(*candidates,
                [&](size_t i) { return static_cast<double>(RttOrMax(nodes[i])) > limit; });
}

size_t ReplicaSelector::PickTwoChoices(const ReadRequest& request,
                                       const std::vector<size_t>& tier) {
  if (tier.size() == 1) return tier[0];
  const size_t a = static_cast<size_t>(RandomBelow(tier.size()));
  size_t b = static_cast<size_t>(RandomBelow(tier.size() - 1));
  if (b >= a) ++b;
  const auto& nodes = request.topology->nodes;
  uint64_t rtt_a = std::max(nodes[tier[a]].rtt_us, kMinRttUs);
  uint64_t rtt_b = std::max(nodes[tier[b]].rtt_us, kMinRttUs);
  const uint64_t nearer = std::min(rtt_a, rtt_b);
  const uint64_t apart = std::max(rtt_a, rtt_b) - nearer;
  if (apart <= kRttNoiseUs || static_cast<double>(apart) <= kRttNoiseRatio * nearer) {
    rtt_a = rtt_b = nearer;
  }
  auto load = [&](size_t node, uint64_t rtt) {
    const double score = request.latency != nullptr
                             ? request.latency->Score(node, request.now_ms, rtt)
                             : static_cast<double>(rtt);
    const uint32_t outstanding = node < request.outstanding.size() ? request.outstanding[node] : 0;
    return score * (static_cast<double>(outstanding) + 1);
  };
  const double load_a = load(tier[a], rtt_a);
  const double load_b = load(tier[b], rtt_b);
  if (load_a < load_b) return tier[a];
  if (load_b < load_a) return tier[b];
  return (NextRandom() & 1) != 0 ? tier[a] : tier[b];
}

ReadSelection ReplicaSelector::Select(const ReadRequest& request) {
  ReadSelection out;
  if (request.topology == nullptr) return out;
  const TopologySnapshot& topo = *request.topology;
  const uint64_t lag_limit = request.max_staleness_ms.has_value()
                                 ? std::min(request.max_replica_lag_ms, *request.max_staleness_ms)
                                 : request.max_replica_lag_ms;
  bool any_replica = false;
  bool any_within_lag = false;
  candidates_.clear();
  waitable_.clear();
  for (const NodeStatus& n : topo.nodes) {
    // A suspect replica may be hung: it serves no new read until it answers a probe.
    if (!n.up || n.suspect || !n.is_replica()) continue;
    if (n.index < 64 && ((request.avoid_nodes >> n.index) & 1) != 0) continue;
    if (n.index < request.paused.size() && request.paused[n.index] != 0) continue;
    // Outside the tenant's allowed regions a replica does not exist for this read.
    if (request.tenant != nullptr && !request.tenant->Allows(n.region)) continue;
    // A node that is not a standby of this primary's cluster is no replica of ours.
    if (topo.system_identifier != 0 && n.system_identifier != 0 &&
        n.system_identifier != topo.system_identifier) {
      continue;
    }
    any_replica = true;
    if (!n.lsn.valid() || (n.lag_known && n.lag_ms > lag_limit)) continue;
    any_within_lag = true;
    if (request.token.valid()) {
      const bool timeline_ok =
          request.token_timeline == 0 || n.timeline == 0 || n.timeline >= request.token_timeline;
      if (!timeline_ok || !ReplayCovers(n.lsn, request.token, request.wal_segment_size)) {
        // A paused replica will not get there: not worth waiting on.
        if (timeline_ok && !n.replay_paused) waitable_.push_back(n.index);
        continue;
      }
    }
    candidates_.push_back(n.index);
  }

  if (!candidates_.empty()) {
    KeepNearestTier(request, &candidates_);
    out.node = static_cast<int>(PickTwoChoices(request, candidates_));
    out.choice = ReadChoice::kReplica;
    return out;
  }
  out.node = topo.primary;
  out.choice = !any_replica      ? ReadChoice::kNoReplica
               : !any_within_lag ? ReadChoice::kLagFallback
                                 : ReadChoice::kRywFallback;
  if (out.choice == ReadChoice::kRywFallback && !waitable_.empty()) {
    // Deterministic: waiting concentrates on one replica, whose one poll serves all waiters.
    KeepNearestTier(request, &waitable_);
    out.wait_node = static_cast<int>(*std::min_element(
        waitable_.begin(), waitable_.end(),
        [&](size_t x, size_t y) { return RttOrMax(topo.nodes[x]) < RttOrMax(topo.nodes[y]); }));
  }
  return out;
}

}  // namespace pgregion::routing
