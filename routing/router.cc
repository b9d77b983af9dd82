#include "routing/router.h"

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
  // Fail closed: anything that writes, might write, or holds state goes to the primary.
  if (ctx.parse_error) return on_primary(RouteReason::kParseError);
  if (ctx.session_pooling) return on_primary(RouteReason::kSession);
  if (ctx.pinned) return on_primary(RouteReason::kPinned);
  if (ctx.write) return on_primary(RouteReason::kWrite);
  if (ctx.preference == RoutePreference::kPrimary) return on_primary(RouteReason::kHint);
  if (ctx.begins_transaction && !ctx.read_only_transaction) {
    return on_primary(RouteReason::kTransaction);
  }

  // A read. Before roles are known there is no replica to speak of.
  if (topo == nullptr) return on_primary(RouteReason::kNoReplica);
  ReadRequest req;
  req.topology = topo;
  req.local_region = cluster.local_region;
  req.max_replica_lag_ms = cluster.max_replica_lag_ms;
  req.outstanding = cluster.outstanding;
  req.latency = cluster.latency;
  req.now_ms = ctx.now_ms;
  req.avoid_nodes = ctx.avoid_nodes;
  req.paused = cluster.paused;
  const ReadSelection sel = selector_.Select(req);
  if (sel.choice == ReadChoice::kReplica) {
    route.node = sel.node;
    route.reason = ctx.preference == RoutePreference::kReplica && ctx.preference_from_hint
                       ? RouteReason::kHint
                       : RouteReason::kRead;
    return route;
  }
  return on_primary(FallbackReason(sel.choice));
}

}  // namespace pgregion::routing
