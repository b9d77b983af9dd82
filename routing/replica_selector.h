// Chooses the node that serves one read: the nearest healthy replica that is
// fresh enough, else the primary with the reason recorded. Data in, decision
// out; the only state is the random generator for power-of-two-choices (seeded
// by the caller, so tests are deterministic). One per proxy, used on the loop
// thread.
//
// Rules (DESIGN.md "Topology and replica choice"):
// - Candidates: up, not suspect replicas of this cluster (same system identifier as the
//   primary when both are known) not paused and not in avoid_nodes, with a known replay LSN,
//   lag_ms within the limit (when lag is known), and covering the token if one
//   is required.
// - A tenant (ReadRequest::tenant, issue 20): replicas outside its
//   allow_regions are no candidates at all (not even to wait on), and the
//   candidates of its first preferred region that has any form the tier, then
//   of the next; past its preferences the usual tiers apply.
// - Tier: the local region's candidates; if none, the candidates whose RTT is
//   within 1.5 x the smallest + 2 ms. Regions further away are reached by the
//   same rule once every nearer candidate is gone (a tier is never empty).
// - Inside the tier: two distinct candidates drawn at random; the lower
//   latency score x (outstanding + 1) wins, a tie is broken at random. The
//   score is the LatencyTracker's (or the probe RTT); the two probe RTTs
//   (at least 1 ms) count as equal when within 2 ms or 20% of each other:
//   that is measurement noise, so equally near replicas share reads by load.
// - No candidate: the primary (-1 if there is no single primary) with
//   kNoReplica (no up replica), kLagFallback (all too far behind, including a
//   `bounded` staleness limit), or kRywFallback (only the token excluded them;
//   `wait_node` then names the nearest one worth waiting on).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "routing/latency_tracker.h"
#include "routing/lsn.h"
#include "routing/tenant_policy.h"
#include "routing/topology_snapshot.h"

namespace pgregion::routing {

enum class ReadChoice : uint8_t {
  kReplica,      // `node` is a replica
  kNoReplica,    // no up replica at all
  kLagFallback,  // replicas are up but all too far behind
  kRywFallback,  // replicas are close enough but none has replayed the token
};
// "read", "no_replica", "lag_fallback", "ryw_fallback": RouteReason names.
std::string_view ReadChoiceName(ReadChoice choice);

inline constexpr uint64_t kNoLagLimit = UINT64_MAX;

struct ReadRequest {
  const TopologySnapshot* topology = nullptr;
  std::string_view local_region;
  // routing.max_replica_lag_ms; kNoLagLimit for `eventual`.
  uint64_t max_replica_lag_ms = 5000;
  // `bounded`: routing.max_staleness_ms. The tighter of the two limits applies.
  std::optional<uint64_t> max_staleness_ms;
  // `causal`: the replica's replay LSN must cover this token (ReplayCovers).
  // Invalid (0): no token.
  Lsn token;
  // Nonzero: a replica on an older timeline than the token's cannot serve it.
  uint32_t token_timeline = 0;
  uint64_t wal_segment_size = kDefaultWalSegmentSize;
  // Nodes that must not serve this read (bit i = node i; a retried read avoids
  // the replicas it failed on). Nodes past 63 cannot be avoided.
  uint64_t avoid_nodes = 0;
  // Per node index, nonzero: paused (ClusterView::paused); missing entries: not.
  std::span<const uint8_t> paused;
  // Requests in flight per node index; missing entries count as 0.
  std::span<const uint32_t> outstanding;
  // Null: each node scores its probe RTT.
  const LatencyTracker* latency = nullptr;
  uint64_t now_ms = 0;
  // The unit's tenant (null: none, today's routing).
  const TenantPolicy* tenant = nullptr;
};

struct ReadSelection {
  int node = -1;  // -1: nothing can serve the read
  ReadChoice choice = ReadChoice::kNoReplica;
  // kRywFallback only: the nearest replica that is within the lag limit, not
  // paused and not yet at the token: the one to wait on (ryw_wait) before
  // going to the primary. -1: none.
  int wait_node = -1;
};

class ReplicaSelector {
 public:
  explicit ReplicaSelector(uint64_t seed) : random_state_(seed) {}

  ReadSelection Select(const ReadRequest& request);

 private:
  uint64_t NextRandom();  // SplitMix64
  uint64_t RandomBelow(uint64_t bound) { return NextRandom() % bound; }
  // Narrows `candidates` to its locality tier, in place: the tenant's first
  // preferred region that has any, else the nearest tier.
  static void KeepNearestTier(const ReadRequest& request, std::vector<size_t>* candidates);
  size_t PickTwoChoices(const ReadRequest& request, const std::vector<size_t>& tier);

  uint64_t random_state_;
  // Scratch space reused across calls: no allocation per read once warm.
  std::vector<size_t> candidates_;
  std::vector<size_t> waitable_;
};

}  // namespace pgregion::routing
