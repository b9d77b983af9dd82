#include "routing/router.h"

#include <algorithm>

namespace pgregion::routing {

std::string_view RouteReasonName(RouteReason reason) {
  switch (reason) {
    case RouteReason::kWrite:
      return "write";
    case RouteReason::kRead:
      return "read";
    case RouteReason::kTransaction:
      return "transaction";
    case RouteReason::kHint:
      return "hint";
    case RouteReason::kPinned:
      return "pinned";
    case RouteReason::kSession:
      return "session";
    case RouteReason::kNoReplica:
      return "no_replica";
    case RouteReason::kLagFallback:
      return "lag_fallback";
    case RouteReason::kRywFallback:
      return "ryw_fallback";
    case RouteReason::kParseError:
      return "parse_error";
    case RouteReason::kConsistency:
      return "consistency";
    case RouteReason::kTooComplex:
      return "too_complex";
    case RouteReason::kSerializable:
      return "serializable";
    case RouteReason::kPrimaryState:
      return "primary_state";
  }
  return "unknown";
}

std::string_view RouteBlockName(RouteBlock block) {
  switch (block) {
    case RouteBlock::kNone:
      return "none";
    case RouteBlock::kNoPrimary:
      return "no_primary";
    case RouteBlock::kPrimaryConflict:
      return "primary_conflict";
    case RouteBlock::kNoNode:
      return "no_node";
    case RouteBlock::kPaused:
      return "paused";
    case RouteBlock::kResidency:
      return "residency";
  }
  return "none";
}

namespace {

RouteReason FallbackReason(ReadChoice choice) {
  switch (choice) {
    case ReadChoice::kLagFallback:
      return RouteReason::kLagFallback;
    case ReadChoice::kRywFallback:
      return RouteReason::kRywFallback;
    case ReadChoice::kReplica:
    case ReadChoice::kNoReplica:
      return RouteReason::kNoReplica;
  }
  return RouteReason::kNoReplica;
}

}  // namespace

uint64_t RywWaitBudgetMs(const TopologySnapshot& topology, int wait_node, uint64_t ryw_wait_ms) {
  if (wait_node < 0 || static_cast<size_t>(wait_node) >= topology.nodes.size()) return 0;
  const NodeStatus& replica = topology.nodes[static_cast<size_t>(wait_node)];
  if (replica.replay_paused || !replica.rtt_known) return 0;
  const NodeStatus* primary = topology.PrimaryNode();
  if (primary == nullptr) return ryw_wait_ms;
  if (!primary->rtt_known || primary->rtt_us <= replica.rtt_us) return 0;
  return std::min(ryw_wait_ms, (primary->rtt_us - replica.rtt_us) / 1000);
}

Route Router::Decide(const RouteContext& ctx) {
  Route route;
  if (ctx.cluster == nullptr || ctx.cluster->node_count == 0) {
    route.blocked = RouteBlock::kNoNode;
    return route;
  }
  const ClusterView& cluster = *ctx.cluster;
  const TopologySnapshot* topo = cluster.roles_discovered ? cluster.topology : nullptr;

  // The primary, or why there is none.
  auto on_primary = [&](RouteReason reason) {
    route.reason = reason;
    const int primary = topo == nullptr ? 0  // static rule until roles are discovered
                        : topo->primary_state == PrimaryState::kOne ? topo->primary
                                                                    : -1;
    if (primary >= 0 && cluster.IsPaused(static_cast<size_t>(primary))) {
      route.node = -1;
      route.blocked = RouteBlock::kPaused;
    } else if (primary >= 0) {
      route.node = primary;
    } else {
      route.node = -1;
      route.blocked = topo->primary_state == PrimaryState::kConflict ? RouteBlock::kPrimaryConflict
                                                                     : RouteBlock::kNoPrimary;
    }
    return route;
  };
  // A read the primary would serve: not for a tenant that may not be served in
  // the primary's region (the wait for a replica, if any, still comes first).
  auto read_on_primary = [&](RouteReason reason) {
    on_primary(reason);
    if (route.node >= 0 && ctx.tenant != nullptr && ctx.tenant->restricted() &&
        cluster.topology != nullptr &&
        static_cast<size_t>(route.node) < cluster.topology->nodes.size() &&
        !ctx.tenant->Allows(cluster.topology->nodes[static_cast<size_t>(route.node)].region)) {
      route.node = -1;
      route.blocked = RouteBlock::kResidency;
    }
    return route;
  };
  // Fail closed: anything that writes, might write, or holds state goes to the primary.
  if (ctx.too_complex) return on_primary(RouteReason::kTooComplex);
  if (ctx.parse_error) return on_primary(RouteReason::kParseError);
  if (ctx.session_pooling) return on_primary(RouteReason::kSession);
  if (ctx.pinned) return on_primary(RouteReason::kPinned);
  if (ctx.write) return on_primary(RouteReason::kWrite);
  if (ctx.preference == RoutePreference::kPrimary) return on_primary(RouteReason::kHint);
  // What a standby refuses, whatever the hint.
  if (ctx.serializable) return on_primary(RouteReason::kSerializable);
  if (ctx.read_write_requested) return on_primary(RouteReason::kTransaction);
  if (ctx.begins_transaction && !ctx.read_only_transaction && !ctx.optimistic) {
    return on_primary(RouteReason::kTransaction);
  }
  if (ctx.primary_state &&
      !(ctx.preference == RoutePreference::kReplica && ctx.preference_from_hint)) {
    return on_primary(RouteReason::kPrimaryState);
  }

  // A read: its consistency level says which replicas may serve it.
  if (ctx.consistency == Consistency::kStrong) return read_on_primary(RouteReason::kConsistency);
  // Before roles are known there is no replica to speak of.
  if (topo == nullptr) return read_on_primary(RouteReason::kNoReplica);
  ReadRequest req;
  req.topology = topo;
  req.local_region = cluster.local_region;
  req.max_replica_lag_ms = cluster.max_replica_lag_ms;
  req.outstanding = cluster.outstanding;
  req.latency = cluster.latency;
  req.now_ms = ctx.now_ms;
  req.avoid_nodes = ctx.avoid_nodes;
  req.paused = cluster.paused;
  req.tenant = ctx.tenant;
  switch (ctx.consistency) {
    case Consistency::kCausal: {
      // Only the primary surely has a write whose position is not known yet
      // (with a single node configured it is never probed: nothing to fall
      // back from).
      if (ctx.write_pending) {
        return read_on_primary(topo->nodes.size() < 2 ? RouteReason::kNoReplica
                                                      : RouteReason::kRywFallback);
      }
      for (const RywToken* t : {&ctx.session_token, &ctx.hint_token}) {
        // A token of another cluster cannot be compared with these replicas.
        if (t->valid() && topo->system_identifier != 0 &&
            t->system_identifier != topo->system_identifier) {
          return read_on_primary(RouteReason::kConsistency);
        }
      }
      const RywToken token = RywToken::Max(ctx.session_token, ctx.hint_token);
      req.token = token.lsn;
      req.token_timeline = token.timeline;
      break;
    }
    case Consistency::kBounded:
      req.max_staleness_ms = ctx.max_staleness_ms;
      break;
    case Consistency::kEventual:
      req.max_replica_lag_ms = kNoLagLimit;
      break;
    case Consistency::kStrong:
      break;
  }
  const ReadSelection sel = selector_.Select(req);
  if (sel.choice == ReadChoice::kReplica) {
    route.node = sel.node;
    route.reason = ctx.preference == RoutePreference::kReplica && ctx.preference_from_hint
                       ? RouteReason::kHint
                       : RouteReason::kRead;
    return route;
  }
  read_on_primary(FallbackReason(sel.choice));
  if (sel.choice == ReadChoice::kRywFallback) {
    route.wait_node = sel.wait_node;
    if (!ctx.ryw_wait_over) {
      route.wait_ms = RywWaitBudgetMs(*topo, sel.wait_node, cluster.ryw_wait_ms);
    }
  }
  return route;
}

}  // namespace pgregion::routing
