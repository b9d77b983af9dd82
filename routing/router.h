// The routing decision for one unit of work (a simple Query, or extended-protocol
// messages up to Sync): data in, decision out. No I/O, no clock (time comes in
// the context). The only state is the ReplicaSelector's random generator and
// scratch space, so Decide() is not const. One Router per proxy instance, used
// on the loop thread.
//
// Rules (DESIGN.md "Data flow" and "Topology and replica choice"):
// - Anything that writes, may write, or holds server state goes to the primary:
//   parse errors, session pooling, pins, writes, the primary hint, read-write
//   transactions (also SET TRANSACTION READ WRITE), SERIALIZABLE (reason
//   serializable: a standby refuses it, reads included).
// - Reads of state only the primary has, or that a standby shows differently
//   (RouteContext::primary_state: pg_locks, pg_stat_*, pg_is_in_recovery(),
//   sequences, ...) go to the primary with reason primary_state, unless the
//   unit's own comment hint asks for a replica (route=replica: the client
//   wants that replica's view, e.g. its replay position).
// - Reads (autocommit, read-only transactions, the replica hint) go where
//   their consistency level allows (DESIGN.md "Consistency levels and
//   read-your-writes tokens"): `strong` to the primary (reason consistency);
//   `causal` to a replica that has replayed the read's token, `bounded` to one
//   within max_staleness_ms, `eventual` to any up replica, each picked by the
//   ReplicaSelector; with no usable replica, to the primary with reason
//   no_replica, lag_fallback or ryw_fallback.
// - A causal read no replica has replayed may first wait on the nearest one
//   that is getting there (Route::wait_node), for Route::wait_ms =
//   RywWaitBudgetMs(): the proxy polls that replica and decides again. A token
//   from a newer timeline than every replica, or of another cluster, goes to
//   the primary at once: such a read never waits for what may never come.
// - Until roles are discovered (ClusterView::roles_discovered false), the
//   first configured node is the primary and serves everything.
// - A unit that needs the primary when there is none gets node -1 and
//   RouteBlock::kNoPrimary (the proxy waits for the topology up to
//   failover.write_wait_ms); when two nodes claim it, RouteBlock::kPrimaryConflict
//   (the proxy refuses at once: never write to a stale primary).
// - A paused node (ClusterView::paused: the admin console's PAUSE, or a node a
//   reload removed) gets no new unit: reads go elsewhere; a unit that needs a
//   paused primary gets node -1 and RouteBlock::kPaused (it waits as for kNoPrimary).
// - A tenant (RouteContext::tenant, issue 20) steers reads: its preferred
//   regions first, replicas outside its allowed regions never
//   (ReplicaSelector). A read that would fall back to a primary outside the
//   allowed regions (no allowed replica can serve it, or `strong`) gets node
//   -1 and RouteBlock::kResidency: refused, never served elsewhere. Units that
//   must run on the primary (writes, read-write transactions, pins, session
//   pooling, unparsed text, primary-only state) still do: a single-primary
//   database processes every write in the primary's region.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "routing/latency_tracker.h"
#include "routing/replica_selector.h"
#include "routing/ryw_token.h"
#include "routing/statement_hints.h"
#include "routing/tenant_policy.h"
#include "routing/topology_snapshot.h"

namespace pgregion::routing {

enum class RouteReason : uint8_t {
  kWrite,         // the unit writes (or may: unknown functions, parse errors)
  kRead,          // an autocommit read, or a read-only transaction, on a replica
  kTransaction,   // a read-write transaction starts here
  kHint,          // a comment hint or pgregion.route chose the node
  kPinned,        // session state (temp tables, LISTEN, ...) keeps the client on the primary
  kSession,       // session pooling: the client keeps one server, on the primary
  kNoReplica,     // a read, but no replica is up (or roles are not discovered yet)
  kLagFallback,   // a read, replicas are up but all beyond routing.max_replica_lag_ms
  kRywFallback,   // a read, no replica has replayed the session's token
  kParseError,    // the text does not parse: fail closed to the primary
  kConsistency,   // a read under `strong` consistency (or with a token that cannot be judged)
  kTooComplex,    // over the classifier's size/depth budget, not parsed: fail closed
  kSerializable,  // SERIALIZABLE isolation (asked, or the session default): a standby refuses it
  kPrimaryState,  // reads state only the primary has (pg_locks, pg_stat_*, sequences, ...)
};

std::string_view RouteReasonName(RouteReason reason);

// Why no node can serve a unit (Route::node == -1).
enum class RouteBlock : uint8_t {
  kNone,
  kNoPrimary,        // no node is known as the primary: wait for the topology, then fail
  kPrimaryConflict,  // two or more nodes claim to be the primary: refuse at once
  kNoNode,           // nothing is configured
  kPaused,           // the primary is paused (PAUSE): wait for RESUME, as for kNoPrimary
  kResidency,        // a read of a tenant whose allowed regions have no node able to serve it
};

std::string_view RouteBlockName(RouteBlock block);

// What the router knows of the cluster. Owned by the proxy and updated in place
// whenever the topology changes, so a context that waits (a parked write during
// a failover) sees the current state when it is decided again.
struct ClusterView {
  // The latest snapshot; never null once the proxy has started.
  const TopologySnapshot* topology = nullptr;
  // False until the topology has had exactly one primary once: the static rule
  // "the first configured node is the primary" applies until then.
  bool roles_discovered = false;
  size_t node_count = 0;
  std::string_view local_region;       // [proxy] region
  uint64_t max_replica_lag_ms = 5000;  // [routing] max_replica_lag_ms
  // Requests in flight per node (bound server connections and queued clients).
  std::span<const uint32_t> outstanding;
  // Null: each replica scores its probe RTT.
  const LatencyTracker* latency = nullptr;
  // Per node, nonzero: no new units go there (PAUSEd, or removed by a reload).
  // Missing entries: not paused.
  std::span<const uint8_t> paused;
  uint64_t ryw_wait_ms = 50;  // [routing] ryw_wait_ms

  bool IsPaused(size_t node) const { return node < paused.size() && paused[node] != 0; }
};

// The proxy's one-line summary of a node, for the session's own checks (may a
// failed read be retried, may a read stay on the bound replica). The router
// itself reads the ClusterView. Before roles are discovered: the first node is
// the primary and every node counts as up.
struct NodeView {
  bool up = true;
  bool primary = false;
};

enum class RoutePreference : uint8_t { kAuto, kPrimary, kReplica };

using Consistency = StatementHints::Consistency;

struct RouteContext {
  const ClusterView* cluster = nullptr;
  uint64_t now_ms = 0;  // monotonic, for the latency scores
  // What the unit does (from the statement classifier).
  bool write = false;
  bool parse_error = false;
  bool too_complex = false;            // not parsed (classifier budget): fail closed
  bool read_only_transaction = false;  // BEGIN READ ONLY / default_transaction_read_only
  bool begins_transaction = false;     // a read-write BEGIN
  // The transaction may start on a replica: an optimistic read transaction
  // (the session moves it to the primary at its first write). It is then
  // routed as a read of its consistency level.
  bool optimistic = false;
  // TransactionMode::serializable(): the unit runs under SERIALIZABLE (its
  // transaction's level, SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, or
  // the session's default_transaction_isolation), which a standby refuses.
  bool serializable = false;
  // TransactionMode::read_write_requested(): SET TRANSACTION READ WRITE or
  // transaction_read_only = off, which a standby refuses.
  bool read_write_requested = false;
  // Classification::primary_state, or PrimaryRelations::Reads(): the unit
  // reads state only the primary has.
  bool primary_state = false;
  // The unit calls currval() or lastval(): the proxy makes sure the server
  // connection holds no other client's sequence state (not used for routing).
  bool reads_sequence_state = false;
  bool pinned = false;  // session state that must stay on the primary
  bool session_pooling = false;
  RoutePreference preference = RoutePreference::kAuto;  // hint or pgregion.route
  bool preference_from_hint = false;
  // Nodes a read must not use (bit i = node i): a retried read avoids the
  // replicas it already failed on. Nodes past 63 cannot be avoided.
  uint64_t avoid_nodes = 0;

  // What a read must see (the session's level, or the unit's hint).
  Consistency consistency = Consistency::kCausal;
  // causal: the read sees the later of the two tokens (the session's own and
  // presented ones, refreshed at each decision; the unit's comment hint).
  RywToken session_token;
  RywToken hint_token;
  // causal: a write reached the primary and its token is not known yet (the
  // LSN probe has not answered, or failed): only the primary has it for sure.
  bool write_pending = false;
  // bounded: how far behind the primary a replica may be.
  uint64_t max_staleness_ms = 1000;
  // causal: the read already waited for a replica; no second wait.
  bool ryw_wait_over = false;
  // The unit's tenant's policy (null: no tenant, or one without preferences),
  // the directory it lives in (kept alive with the context: a parked or
  // retried unit may outlive a reload that replaces it) and the tenant's id.
  const TenantPolicy* tenant = nullptr;
  std::shared_ptr<const TenantDirectory> tenant_directory;
  std::string tenant_id;
  // The tenant has an entry (config or mapping): SHOW TENANTS counts its reads.
  bool tenant_known = false;
};

struct Route {
  int node = -1;  // configuration index; -1: no node can serve this (see `blocked`)
  RouteReason reason = RouteReason::kWrite;
  RouteBlock blocked = RouteBlock::kNone;
  // kRywFallback: the nearest replica still replaying towards the token (-1:
  // none worth waiting on), and how long the read may wait for it before it
  // goes to `node` (0: do not wait; too far, or the wait is over).
  int wait_node = -1;
  uint64_t wait_ms = 0;
};

// How long a causal read may wait for `wait_node` to replay its token:
// min(ryw_wait_ms, RTT(primary) - RTT(wait_node)), so the wait never costs
// more than the detour to the primary. 0 (do not wait) when that is not
// positive, when either RTT is unknown, or when replay on the node is paused.
// With no primary (a failover) the detour is unbounded: ryw_wait_ms.
uint64_t RywWaitBudgetMs(const TopologySnapshot& topology, int wait_node, uint64_t ryw_wait_ms);

class Router {
 public:
  // `seed` feeds the replica selector's power-of-two-choices.
  explicit Router(uint64_t seed = 0x5eed) : selector_(seed) {}

  Route Decide(const RouteContext& ctx);

 private:
  ReplicaSelector selector_;
};

}  // namespace pgregion::routing
