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
  kWrite,        // the unit writes (or may: unknown functions, parse errors)
  kRead,         // an autocommit read, or a read-only transaction, on a replica
  kTransaction,  // a read-write transaction starts here
  kHint,         // a comment hint or pgregion.route chose the node
  kPinned,       // session state (temp tables, LISTEN, ...) keeps the client on the primary
  kSession,      // session pooling: the client keeps one server, on the primary
  kNoReplica,    // a read, but no replica can serve it
  kParseError,   // the text does not parse: fail closed to the primary
};

std::string_view RouteReasonName(RouteReason reason);

// What the router knows of one node (from the topology snapshot).
struct NodeView {
  bool up = true;
  bool primary = false;
};

enum class RoutePreference : uint8_t { kAuto, kPrimary, kReplica };

struct RouteContext {
  // Nodes in configuration order.
  const std::vector<NodeView>* nodes = nullptr;
  // What the unit does (from the statement classifier).
  bool write = false;
  bool parse_error = false;
  bool read_only_transaction = false;  // BEGIN READ ONLY / default_transaction_read_only
  bool begins_transaction = false;     // a read-write BEGIN
  bool pinned = false;                 // session state that must stay on the primary
  bool session_pooling = false;
  RoutePreference preference = RoutePreference::kAuto;  // hint or pgregion.route
  bool preference_from_hint = false;
  // Spreads reads over replicas (round robin until the regions issue).
  uint64_t spread = 0;
  // Nodes a read must not use (bit i = node i): a retried read avoids the
  // replicas it already failed on. Nodes past 63 cannot be avoided.
  uint64_t avoid_nodes = 0;
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
