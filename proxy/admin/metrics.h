// The proxy's Prometheus metrics (DESIGN.md "Metrics") and the recent topology
// changes /status shows. One Metrics object per ProxyApp, on the loop thread.
//
// Everything that is counted per unit of work (routing decisions, query and
// pool-wait durations, errors) lives in plain integers indexed by numbers the
// caller already has (node index, role, reason): the hot path is an index and
// an increment, with no label lookup, no allocation, no lock and no atomic. The
// admin HTTP server runs on the same loop, so a scrape never races an update.
// Labels are built once, at construction, from config values and fixed enums.
//
// What describes the present (node health, roles, RTT, lag, connection counts)
// is not stored here: Collect() reads it from the topology snapshot and from
// the connection counts the caller passes in, at scrape time.
//
// prometheus-cpp provides the data model and the text format. Its own metric
// types are thread-safe (an atomic compare-and-swap per counter increment, a
// mutex per histogram observation in 1.0); nothing here needs that.
#pragma once

#include <uv.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "prometheus/metric_family.h"
#include "proxy/config/config.h"
#include "routing/router.h"
#include "routing/topology.h"
#include "routing/topology_snapshot.h"

namespace pgregion::proxy {

// Wall-clock time for event timestamps (not for durations).
inline int64_t UnixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Seconds. Resolves loopback (tens of µs) and cross-region (100+ ms) latency.
inline constexpr std::array<double, 19> kLatencyBuckets = {
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,     0.1,     0.25,   0.5,     1,      2.5,   5,      10,    30};

// A histogram over kLatencyBuckets for one thread (no lock, no atomic).
class LoopHistogram {
 public:
  void Observe(double seconds);
  // Cumulative buckets, +Inf last, as Prometheus wants them.
  void CollectInto(prometheus::ClientMetric* metric) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::array<uint64_t, kLatencyBuckets.size() + 1> counts_{};  // last: above every bound
  uint64_t count_ = 0;
  double sum_ = 0;
};

// errors_total{kind}.
enum class ErrorKind : uint8_t {
  kAuthFailed,         // a client failed authentication
  kProtocol,           // a client broke the protocol (includes login timeouts)
  kClientLimit,        // max_client_connections reached
  kPoolTimeout,        // no server connection within pool.acquire_timeout_ms
  kNoPrimary,          // no node could serve a unit within failover.write_wait_ms
  kServerLost,         // a bound server connection broke
  kServerLoginFailed,  // a new server connection could not log in
};
inline constexpr size_t kErrorKinds = 7;
std::string_view ErrorKindName(ErrorKind kind);

// tenant_reads_total{outcome}: where a tenant's read went. Preferred: one of
// its preferred regions; elsewhere: another replica; primary; refused.
enum class TenantReadOutcome : uint8_t { kPreferred, kElsewhere, kPrimary, kRefused };
inline constexpr size_t kTenantReadOutcomes = 4;
std::string_view TenantReadOutcomeName(TenantReadOutcome outcome);

// ryw_fallbacks_total{reason}: why a causal read went to the primary.
enum class RywFallbackReason : uint8_t {
  kWaitTimeout,   // waited on a replica; it did not replay the token in time
  kNoCandidate,   // no replica fresh enough to wait on (lagging, paused, down)
  kTooFar,        // waiting would cost more than the detour to the primary
  kWritePending,  // the session's last write has no token yet (its LSN probe failed)
};
inline constexpr size_t kRywFallbackReasons = 4;
std::string_view RywFallbackReasonName(RywFallbackReason reason);

// ryw_tokens_total{position}: which WAL position a session's token took after
// a writing transaction ended (routing::TokenLsnAfterCommit).
enum class RywTokenPosition : uint8_t {
  kFlush,   // the commit was synchronous: the flush position covers it
  kInsert,  // asynchronous or not known to be synchronous: the insert position
};
inline constexpr size_t kRywTokenPositions = 2;
std::string_view RywTokenPositionName(RywTokenPosition position);

// reads_after_write_total{served}: where the first causal read after each of
// a session's writing transactions ran (the read its token is for).
enum class ReadAfterWriteServed : uint8_t {
  kLocalReplica,   // a replica in this instance's region ([proxy] region)
  kRemoteReplica,  // a replica in another region
  kPrimary,
};
inline constexpr size_t kReadAfterWriteServed = 3;
std::string_view ReadAfterWriteServedName(ReadAfterWriteServed served);

// read_retries_total{reason}: why an autocommit read was sent again elsewhere
// (client_session_retry.cc); one count per retry, so a read retried on a
// second replica and then on the primary counts twice.
enum class ReadRetryReason : uint8_t {
  kConnection,    // its server connection was lost, or a new one could not be made
  kError,         // a retryable error (57P01/57P02/57P03, a recovery conflict 40001)
  kLoginRefused,  // the replica does not have the session's database or role yet
  kNodeSuspect,   // a health probe of its node timed out
  kDeadline,      // it ran routing.read_deadline_ms on a replica with nothing delivered
};
inline constexpr size_t kReadRetryReasons = 5;
std::string_view ReadRetryReasonName(ReadRetryReason reason);

// optimistic_transactions_total{outcome}: transactions that started on a
// replica (client_session_optimistic.cc), and how each one ended.
enum class OptimisticOutcome : uint8_t {
  kStarted,             // began on a replica
  kCommittedOnReplica,  // ended (COMMIT or ROLLBACK) on the replica
  kMoved,               // moved to the primary: the replay returned what the client had seen
  kMismatch,            // the replay returned something else: the client got 40001
  kFailed,              // the move could not be completed (the connection was lost)
};
inline constexpr size_t kOptimisticOutcomes = 5;
std::string_view OptimisticOutcomeName(OptimisticOutcome outcome);

// optimistic_moves_total{reason}: why a transaction left its replica.
enum class OptimisticMoveReason : uint8_t {
  kWrite,    // DML, DDL, a write function, COPY FROM, ...
  kLocking,  // SELECT ... FOR UPDATE/SHARE
  kUnknown,  // a function or statement the classifier cannot prove read-only
  kState,    // what only the primary runs or shows (pins, SERIALIZABLE, READ WRITE, ...)
  kHint,     // route=primary on a statement of the transaction
  kCap,      // over routing.optimistic_max_statements / optimistic_max_bytes
};
inline constexpr size_t kOptimisticMoveReasons = 6;
std::string_view OptimisticMoveReasonName(OptimisticMoveReason reason);

// client_connections{state}.
enum class ClientGaugeState : uint8_t { kLogin, kIdle, kWaiting, kActive };
inline constexpr size_t kClientGaugeStates = 4;
std::string_view ClientGaugeStateName(ClientGaugeState state);

// What the ProxyApp counts at scrape time.
struct ConnectionCounts {
  std::array<uint64_t, kClientGaugeStates> clients{};
  struct Servers {
    uint64_t idle = 0;
    uint64_t active = 0;  // bound to a client, or resetting
    uint64_t connecting = 0;
    uint64_t waiters = 0;  // clients queued for a connection of this node
  };
  std::vector<Servers> servers;  // by node index
};

// A change /status lists under "recent_changes".
struct TopologyEvent {
  int64_t unix_ms = 0;
  std::string event;  // role_changed | primary_changed | no_primary | primary_conflict
  std::string node;   // empty for no_primary / primary_conflict
  std::string from;   // role_changed: old role
  std::string to;     // role_changed: new role
  bool failover = false;
};

class Metrics {
 public:
  // RouteReason values are small integers; one slot per possible value keeps
  // reasons added later countable without touching this file.
  static constexpr size_t kReasonSlots = 32;
  static constexpr size_t kMaxEvents = 32;

  explicit Metrics(const Config& config);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // A node a reload added: the next index. Histograms never move (sessions
  // hold pointers to them), so adding one invalidates nothing.
  void AddNode(std::string_view name, std::string_view region);
  // A node a reload removed: its series are no longer exported (its name may
  // come back under a new index, whose series start from zero).
  void RetireNode(size_t node);

  // Timing (clock reads) happens only when the admin endpoint is on.
  bool timing() const { return timing_; }

  // ---- hot path
  void Routed(int node, bool primary, routing::RouteReason reason) {
    size_t r = static_cast<size_t>(reason);
    size_t i = (static_cast<size_t>(node) * 2 + (primary ? 1 : 0)) * kReasonSlots + r;
    if (node >= 0 && r < kReasonSlots && i < routed_.size()) ++routed_[i];
  }
  // The histogram of query_duration_seconds{region,role} for a unit on `node`.
  LoopHistogram* QueryHistogram(int node, bool primary) {
    size_t i = static_cast<size_t>(node) * 2 + (primary ? 1 : 0);
    return node >= 0 && i < query_by_node_.size() ? query_by_node_[i] : nullptr;
  }
  LoopHistogram* PoolWaitHistogram(int node) {
    return node >= 0 && static_cast<size_t>(node) < pool_wait_.size()
               ? &pool_wait_[static_cast<size_t>(node)]
               : nullptr;
  }
  void Error(ErrorKind kind) { ++errors_[static_cast<size_t>(kind)]; }
  void RywWait(double seconds) { ryw_wait_.Observe(seconds); }
  void RywFallback(RywFallbackReason reason) { ++ryw_fallbacks_[static_cast<size_t>(reason)]; }
  void RywToken(RywTokenPosition position) { ++ryw_tokens_[static_cast<size_t>(position)]; }
  void ReadAfterWrite(ReadAfterWriteServed served) {
    ++reads_after_write_[static_cast<size_t>(served)];
  }
  void ReadRetry(ReadRetryReason reason) { ++read_retries_[static_cast<size_t>(reason)]; }
  // tenant_reads_total{tenant_region, served_region, outcome}: a read of a unit
  // with a tenant (issue 20). Regions only, never tenant ids: a region that is
  // not a node's counts as "other", none as "none". `served_node` -1: refused.
  // Per unit: a scan of the few regions and one integer-keyed increment.
  void TenantRead(std::string_view tenant_region, int served_node, TenantReadOutcome outcome);
  // The tenant mapping read from the application's table ([tenancy] query):
  // set by the proxy after each refresh (not per unit). tenant_map_entries,
  // tenant_map_refresh_errors_total and tenant_map_age_seconds come from it,
  // and /status shows it whole.
  struct TenantMapState {
    bool configured = false;  // a [tenancy] query is set
    uint64_t entries = 0;     // rows of the map in use
    uint64_t policies = 0;    // distinct policies among them
    uint64_t refreshes = 0;   // successful
    uint64_t refresh_errors = 0;
    int64_t loaded_unix_ms = 0;  // the map in use was read then; 0: never
    int64_t last_error_unix_ms = 0;
    std::string last_error;  // of the last failed refresh (kept after a success)
    // The last successful refresh.
    uint64_t rows = 0;
    uint64_t skipped = 0;
    uint64_t unknown_regions = 0;
    uint64_t duration_ms = 0;
    std::string node;
  };
  TenantMapState& tenant_map() { return tenant_map_; }
  const TenantMapState& tenant_map() const { return tenant_map_; }
  void Optimistic(OptimisticOutcome outcome) { ++optimistic_[static_cast<size_t>(outcome)]; }
  void OptimisticMove(OptimisticMoveReason reason) {
    ++optimistic_moves_[static_cast<size_t>(reason)];
  }
  // The time a move added to the unit that caused it (rollback, new
  // connection, replay), until the replay's digest was known.
  void OptimisticMoveTime(double seconds) { optimistic_move_.Observe(seconds); }

  // ---- topology (once per health probe, not per unit)
  void OnTopologyUpdate(size_t node, const routing::TopologyUpdate& update,
                        const routing::TopologySnapshot& snap, int64_t unix_ms);
  const std::deque<TopologyEvent>& recent_events() const { return events_; }

  // ---- scrape
  std::vector<prometheus::MetricFamily> Collect(const routing::TopologySnapshot& snap,
                                                const ConnectionCounts& conns) const;
  // Prometheus text exposition format 0.0.4.
  std::string RenderText(const routing::TopologySnapshot& snap,
                         const ConnectionCounts& conns) const;

  // For tests and the admin console.
  uint64_t routed_count(int node, bool primary, routing::RouteReason reason) const;
  uint64_t error_count(ErrorKind kind) const { return errors_[static_cast<size_t>(kind)]; }
  uint64_t read_retry_count(ReadRetryReason r) const {
    return read_retries_[static_cast<size_t>(r)];
  }
  uint64_t optimistic_count(OptimisticOutcome o) const {
    return optimistic_[static_cast<size_t>(o)];
  }
  uint64_t optimistic_move_count(OptimisticMoveReason r) const {
    return optimistic_moves_[static_cast<size_t>(r)];
  }

 private:
  struct NodeLabels {
    std::string name;
    std::string region;
    bool retired = false;
  };
  void AddEvent(TopologyEvent event);
  // The index of `region` in regions_, added (with its histograms) if new.
  size_t RegionIndex(std::string_view region);

  bool timing_;
  std::vector<NodeLabels> nodes_;
  std::vector<std::string> regions_;  // distinct node regions, config order
  std::vector<uint64_t> routed_;      // [node][primary][reason slot]
  // Deques: growing them (a reload adds a node or region) moves no histogram.
  std::deque<LoopHistogram> query_;            // [region][primary]
  std::vector<LoopHistogram*> query_by_node_;  // [node][primary] -> into query_
  std::deque<LoopHistogram> pool_wait_;        // [node]
  LoopHistogram ryw_wait_;
  std::array<uint64_t, kErrorKinds> errors_{};
  std::array<uint64_t, kRywFallbackReasons> ryw_fallbacks_{};
  std::array<uint64_t, kRywTokenPositions> ryw_tokens_{};
  std::array<uint64_t, kReadAfterWriteServed> reads_after_write_{};
  std::array<uint64_t, kReadRetryReasons> read_retries_{};
  // TenantReadKey(tenant region slot, served region slot, outcome) -> count;
  // slots are regions_ indices, kOtherRegion or kNoRegion: at most
  // (regions + 2)^2 x 4 keys.
  static constexpr uint32_t kOtherRegion = 0xfe;
  static constexpr uint32_t kNoRegion = 0xff;
  uint32_t RegionSlot(std::string_view region) const;
  absl::flat_hash_map<uint32_t, uint64_t> tenant_reads_;
  TenantMapState tenant_map_;
  std::array<uint64_t, kOptimisticOutcomes> optimistic_{};
  std::array<uint64_t, kOptimisticMoveReasons> optimistic_moves_{};
  LoopHistogram optimistic_move_;
  std::deque<TopologyEvent> events_;
};

// Times one client session's units of work for query_duration_seconds (from
// the routing decision to ReadyForQuery) and pool_wait_seconds (from the
// routing decision to a server connection). A unit that runs on an already
// bound server (inside a transaction, session pooling) starts at its first
// message and counts for the node of the decision that bound it. Pipelined
// units are timed as one; a retried unit from its last routing decision.
// Clocks are read only when Metrics::timing().
class UnitTimer {
 public:
  void Routed(Metrics& m, const routing::Route& route,
              const std::vector<routing::NodeView>& nodes) {
    bool primary = route.node >= 0 && static_cast<size_t>(route.node) < nodes.size() &&
                   nodes[static_cast<size_t>(route.node)].primary;
    m.Routed(route.node, primary, route.reason);
    if (!m.timing()) return;
    query_ = m.QueryHistogram(route.node, primary);
    wait_ = m.PoolWaitHistogram(route.node);
    start_ns_ = uv_hrtime();
  }
  // A unit routed to the server already bound (pipelined behind another one):
  // counted; timed from here unless a unit is already being timed.
  void RoutedWhileBound(Metrics& m, const routing::Route& route,
                        const std::vector<routing::NodeView>& nodes) {
    bool primary = route.node >= 0 && static_cast<size_t>(route.node) < nodes.size() &&
                   nodes[static_cast<size_t>(route.node)].primary;
    m.Routed(route.node, primary, route.reason);
    Continue();
  }
  void Assigned() {
    if (wait_ == nullptr || start_ns_ == 0) return;
    wait_->Observe(static_cast<double>(uv_hrtime() - start_ns_) * 1e-9);
    wait_ = nullptr;
  }
  // A client message reached the bound server.
  void Continue() {
    if (start_ns_ == 0 && query_ != nullptr) start_ns_ = uv_hrtime();
  }
  void Done() {
    if (start_ns_ == 0 || query_ == nullptr) return;
    query_->Observe(static_cast<double>(uv_hrtime() - start_ns_) * 1e-9);
    start_ns_ = 0;
  }

 private:
  uint64_t start_ns_ = 0;
  LoopHistogram* query_ = nullptr;
  LoopHistogram* wait_ = nullptr;
};

}  // namespace pgregion::proxy
