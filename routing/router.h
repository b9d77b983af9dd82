// The routing decision for one unit of work (a simple Query, or extended-protocol
// messages up to Sync): data in, decision out. Pure; the session owns the
// context, the router owns nothing mutable. One Router per proxy instance, used
// on the loop thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace pgregion::routing {

enum class RouteReason : uint8_t {
  kWrite,
  kRead,
  kTransaction,
  kHint,
  kPinned,
  kSession,  // session pooling: the client keeps its server
  kNoReplica,
  kParseError,
};

std::string_view RouteReasonName(RouteReason reason);

// What the router knows of one node (from the topology snapshot).
struct NodeView {
  bool up = true;
  bool primary = false;
};

struct RouteContext {
  // Nodes in configuration order. Until role discovery exists, the first
  // configured node is the primary.
  const std::vector<NodeView>* nodes = nullptr;
};

struct Route {
  int node = -1;  // index into RouteContext::nodes; -1: no node can serve this
  RouteReason reason = RouteReason::kWrite;
};

class Router {
 public:
  Route Decide(const RouteContext& ctx) const;
};

}  // namespace pgregion::routing
