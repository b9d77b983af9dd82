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
  for (size_t i = 0; i < ctx.nodes->size(); ++i) {
    if ((*ctx.nodes)[i].primary) {
      route.node = static_cast<int>(i);
      return route;
    }
  }
  return route;
}

}  // namespace pgregion::routing
