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
    case RouteReason::kParseError:
      return "parse_error";
  }
  return "unknown";
}

Route Router::Decide(const RouteContext& ctx) const {
  Route route;
  if (ctx.nodes == nullptr) return route;
  const std::vector<NodeView>& nodes = *ctx.nodes;
  int primary = -1;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].primary) primary = static_cast<int>(i);
  }
  auto on_primary = [&](RouteReason reason) {
    route.node = primary;
    route.reason = reason;
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
  // A read: any healthy replica, round robin (counted, then picked: no
  // allocation on the hot path).
  auto usable = [&](size_t i) {
    bool avoided = i < 64 && (ctx.avoid_nodes >> i & 1) != 0;
    return nodes[i].up && !nodes[i].primary && !avoided;
  };
  size_t replicas = 0;
  for (size_t i = 0; i < nodes.size(); ++i) replicas += usable(i) ? 1 : 0;
  if (replicas == 0) return on_primary(RouteReason::kNoReplica);
  size_t pick = ctx.spread % replicas;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!usable(i)) continue;
    if (pick-- == 0) {
      route.node = static_cast<int>(i);
      break;
    }
  }
  route.reason = ctx.preference == RoutePreference::kReplica && ctx.preference_from_hint
                     ? RouteReason::kHint
                     : RouteReason::kRead;
  return route;
}

}  // namespace pgregion::routing
