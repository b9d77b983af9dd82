#include "proxy/admin/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "prometheus/text_serializer.h"

namespace pgregion::proxy {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr std::string_view kPrefix = "pgregion_";

MetricFamily Family(std::string_view name, std::string_view help, MetricType type) {
  MetricFamily f;
  f.name = std::string(kPrefix) + std::string(name);
  f.help = std::string(help);
  f.type = type;
  return f;
}

ClientMetric::Label L(std::string_view name, std::string_view value) {
  return ClientMetric::Label{std::string(name), std::string(value)};
}

void AddValue(MetricFamily* f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  switch (f->type) {
    case MetricType::Counter:
      m.counter.value = value;
      break;
    case MetricType::Gauge:
      m.gauge.value = value;
      break;
    case MetricType::Untyped:
    case MetricType::Summary:
    case MetricType::Histogram:
      m.untyped.value = value;
      break;
  }
  f->metric.push_back(std::move(m));
}

std::string_view RoleLabel(bool primary) { return primary ? "primary" : "replica"; }

}  // namespace

void LoopHistogram::Observe(double seconds) {
  // Most observations are small: a linear scan from the bottom beats a binary
  // search over 19 bounds for them.
  size_t i = 0;
  while (i < kLatencyBuckets.size() && seconds > kLatencyBuckets[i]) ++i;
  ++counts_[i];
  ++count_;
  sum_ += seconds;
}

void LoopHistogram::CollectInto(ClientMetric* metric) const {
  metric->histogram.sample_count = count_;
  metric->histogram.sample_sum = sum_;
  metric->histogram.bucket.clear();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    cumulative += counts_[i];
    double bound =
        i < kLatencyBuckets.size() ? kLatencyBuckets[i] : std::numeric_limits<double>::infinity();
    metric->histogram.bucket.push_back(ClientMetric::Bucket{cumulative, bound});
  }
}

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kAuthFailed:
      return "auth_failed";
    case ErrorKind::kProtocol:
      return "protocol";
    case ErrorKind::kClientLimit:
      return "client_limit";
    case ErrorKind::kPoolTimeout:
      return "pool_timeout";
    case ErrorKind::kNoPrimary:
      return "no_primary";
    case ErrorKind::kServerLost:
      return "server_lost";
    case ErrorKind::kServerLoginFailed:
      return "server_login_failed";
  }
  return "unknown";
}

std::string_view RywFallbackReasonName(RywFallbackReason reason) {
  switch (reason) {
    case RywFallbackReason::kWaitTimeout:
      return "wait_timeout";
    case RywFallbackReason::kNoCandidate:
      return "no_candidate";
    case RywFallbackReason::kTooFar:
      return "too_far";
    case RywFallbackReason::kWritePending:
      return "write_pending";
  }
  return "unknown";
}

std::string_view RywTokenPositionName(RywTokenPosition position) {
  switch (position) {
    case RywTokenPosition::kFlush:
      return "flush";
    case RywTokenPosition::kInsert:
      return "insert";
  }
  return "unknown";
}

std::string_view ReadAfterWriteServedName(ReadAfterWriteServed served) {
  switch (served) {
    case ReadAfterWriteServed::kLocalReplica:
      return "local_replica";
    case ReadAfterWriteServed::kRemoteReplica:
      return "remote_replica";
    case ReadAfterWriteServed::kPrimary:
      return "primary";
  }
  return "unknown";
}

std::string_view ReadRetryReasonName(ReadRetryReason reason) {
  switch (reason) {
    case ReadRetryReason::kConnection:
      return "connection";
    case ReadRetryReason::kError:
      return "error";
    case ReadRetryReason::kLoginRefused:
      return "login_refused";
    case ReadRetryReason::kNodeSuspect:
      return "node_suspect";
    case ReadRetryReason::kDeadline:
      return "deadline";
  }
  return "unknown";
}

std::string_view OptimisticOutcomeName(OptimisticOutcome outcome) {
  switch (outcome) {
    case OptimisticOutcome::kStarted:
      return "started";
    case OptimisticOutcome::kCommittedOnReplica:
      return "committed_on_replica";
    case OptimisticOutcome::kMoved:
      return "moved";
    case OptimisticOutcome::kMismatch:
      return "mismatch";
    case OptimisticOutcome::kFailed:
      return "failed";
  }
  return "unknown";
}

std::string_view TenantReadOutcomeName(TenantReadOutcome outcome) {
  switch (outcome) {
    case TenantReadOutcome::kPreferred:
      return "preferred";
    case TenantReadOutcome::kElsewhere:
      return "elsewhere";
    case TenantReadOutcome::kPrimary:
      return "primary";
    case TenantReadOutcome::kRefused:
      return "refused";
  }
  return "unknown";
}

std::string_view OptimisticMoveReasonName(OptimisticMoveReason reason) {
  switch (reason) {
    case OptimisticMoveReason::kWrite:
      return "write";
    case OptimisticMoveReason::kLocking:
      return "locking";
    case OptimisticMoveReason::kUnknown:
      return "unproven";
    case OptimisticMoveReason::kState:
      return "state";
    case OptimisticMoveReason::kHint:
      return "hint";
    case OptimisticMoveReason::kCap:
      return "cap";
  }
  return "unknown";
}

std::string_view ClientGaugeStateName(ClientGaugeState state) {
  switch (state) {
    case ClientGaugeState::kLogin:
      return "login";
    case ClientGaugeState::kIdle:
      return "idle";
    case ClientGaugeState::kWaiting:
      return "waiting";
    case ClientGaugeState::kActive:
      return "active";
  }
  return "unknown";
}

Metrics::Metrics(const Config& config) : timing_(config.admin.enabled) {
  for (const NodeConfig& n : config.nodes) AddNode(n.name, n.region);
}

size_t Metrics::RegionIndex(std::string_view region) {
  auto it = std::find(regions_.begin(), regions_.end(), region);
  if (it != regions_.end()) return static_cast<size_t>(it - regions_.begin());
  regions_.emplace_back(region);
  query_.resize(regions_.size() * 2);
  return regions_.size() - 1;
}

void Metrics::AddNode(std::string_view name, std::string_view region) {
  const size_t r = RegionIndex(region);
  nodes_.push_back(NodeLabels{std::string(name), std::string(region)});
  routed_.resize(nodes_.size() * 2 * kReasonSlots, 0);
  for (size_t primary = 0; primary < 2; ++primary) {
    query_by_node_.push_back(&query_[r * 2 + primary]);
  }
  pool_wait_.emplace_back();
}

void Metrics::RetireNode(size_t node) {
  if (node < nodes_.size()) nodes_[node].retired = true;
}

uint64_t Metrics::routed_count(int node, bool primary, routing::RouteReason reason) const {
  size_t r = static_cast<size_t>(reason);
  size_t i = (static_cast<size_t>(node) * 2 + (primary ? 1 : 0)) * kReasonSlots + r;
  return node >= 0 && r < kReasonSlots && i < routed_.size() ? routed_[i] : 0;
}

void Metrics::AddEvent(TopologyEvent event) {
  if (events_.size() == kMaxEvents) events_.pop_front();
  events_.push_back(std::move(event));
}

void Metrics::OnTopologyUpdate(size_t node, const routing::TopologyUpdate& update,
                               const routing::TopologySnapshot& snap, int64_t unix_ms) {
  using routing::PrimaryState;
  if (update.role_change && node < snap.nodes.size()) {
    AddEvent(TopologyEvent{.unix_ms = unix_ms,
                           .event = "role_changed",
                           .node = std::string(snap.nodes[node].name),
                           .from = std::string(routing::NodeRoleName(update.role_change->from)),
                           .to = std::string(routing::NodeRoleName(update.role_change->to)),
                           .failover = update.failover});
  }
  if (!update.primary_changed) return;
  switch (snap.primary_state) {
    case PrimaryState::kOne:
      AddEvent(TopologyEvent{.unix_ms = unix_ms,
                             .event = "primary_changed",
                             .node = std::string(snap.PrimaryNode()->name),
                             .failover = update.failover});
      return;
    case PrimaryState::kNone:
      AddEvent(TopologyEvent{.unix_ms = unix_ms, .event = "no_primary"});
      return;
    case PrimaryState::kConflict:
      AddEvent(TopologyEvent{.unix_ms = unix_ms, .event = "primary_conflict"});
      return;
  }
}

std::vector<MetricFamily> Metrics::Collect(const routing::TopologySnapshot& snap,
                                           const ConnectionCounts& conns) const {
  std::vector<MetricFamily> out;

  MetricFamily build = Family("build_info", "pgregion version.", MetricType::Gauge);
  AddValue(&build, {L("version", PGREGION_VERSION)}, 1);
  out.push_back(std::move(build));

  MetricFamily clients =
      Family("client_connections", "Client connections by state.", MetricType::Gauge);
  for (size_t s = 0; s < kClientGaugeStates; ++s) {
    AddValue(&clients, {L("state", ClientGaugeStateName(static_cast<ClientGaugeState>(s)))},
             static_cast<double>(conns.clients[s]));
  }
  out.push_back(std::move(clients));

  MetricFamily servers =
      Family("server_connections", "Server connections by node and state.", MetricType::Gauge);
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (nodes_[n].retired) continue;
    ConnectionCounts::Servers s =
        n < conns.servers.size() ? conns.servers[n] : ConnectionCounts::Servers{};
    const NodeLabels& nl = nodes_[n];
    for (auto [state, value] : {std::pair<std::string_view, uint64_t>{"idle", s.idle},
                                {"active", s.active},
                                {"connecting", s.connecting}}) {
      AddValue(&servers, {L("node", nl.name), L("region", nl.region), L("state", state)},
               static_cast<double>(value));
    }
  }
  out.push_back(std::move(servers));

  MetricFamily routed = Family("routed_total",
                               "Units of work routed, by the chosen node, its role and the "
                               "reason of the decision.",
                               MetricType::Counter);
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (nodes_[n].retired) continue;
    for (size_t primary = 0; primary < 2; ++primary) {
      for (size_t r = 0; r < kReasonSlots; ++r) {
        std::string_view reason = routing::RouteReasonName(static_cast<routing::RouteReason>(r));
        if (reason == "unknown") continue;
        AddValue(&routed,
                 {L("node", nodes_[n].name), L("region", nodes_[n].region),
                  L("role", RoleLabel(primary == 1)), L("reason", reason)},
                 static_cast<double>(routed_[(n * 2 + primary) * kReasonSlots + r]));
      }
    }
  }
  out.push_back(std::move(routed));

  MetricFamily query =
      Family("query_duration_seconds", "Units of work from the routing decision to ReadyForQuery.",
             MetricType::Histogram);
  for (size_t region = 0; region < regions_.size(); ++region) {
    for (size_t primary = 0; primary < 2; ++primary) {
      ClientMetric m;
      m.label = {L("region", regions_[region]), L("role", RoleLabel(primary == 1))};
      query_[region * 2 + primary].CollectInto(&m);
      query.metric.push_back(std::move(m));
    }
  }
  out.push_back(std::move(query));

  MetricFamily wait =
      Family("pool_wait_seconds", "Time from the routing decision to a server connection.",
             MetricType::Histogram);
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (nodes_[n].retired) continue;
    ClientMetric m;
    m.label = {L("node", nodes_[n].name)};
    pool_wait_[n].CollectInto(&m);
    wait.metric.push_back(std::move(m));
  }
  out.push_back(std::move(wait));

  MetricFamily up = Family("node_up", "1 when the node is up.", MetricType::Gauge);
  MetricFamily primary =
      Family("node_is_primary", "1 for the node the proxy sends writes to.", MetricType::Gauge);
  MetricFamily rtt =
      Family("node_rtt_seconds", "Round-trip time of the health probes (EWMA).", MetricType::Gauge);
  MetricFamily lag_bytes = Family("replica_lag_bytes",
                                  "WAL bytes a replica's replay is behind the primary's insert "
                                  "position.",
                                  MetricType::Gauge);
  MetricFamily lag_seconds =
      Family("replica_lag_seconds", "Estimated replication lag in seconds.", MetricType::Gauge);
  for (const routing::NodeStatus& s : snap.nodes) {
    if (s.retired) continue;
    std::vector<ClientMetric::Label> labels = {L("node", s.name), L("region", s.region)};
    AddValue(&up, labels, s.up ? 1 : 0);
    AddValue(&primary, labels, snap.primary == static_cast<int>(s.index) ? 1 : 0);
    if (s.rtt_known) AddValue(&rtt, labels, static_cast<double>(s.rtt_us) * 1e-6);
    if (s.is_replica() && s.lag_known) {
      AddValue(&lag_bytes, labels, static_cast<double>(s.lag_bytes));
      AddValue(&lag_seconds, labels, static_cast<double>(s.lag_ms) * 1e-3);
    }
  }
  for (MetricFamily* f : {&up, &primary, &rtt, &lag_bytes, &lag_seconds}) {
    out.push_back(std::move(*f));
  }

  MetricFamily ryw = Family("ryw_wait_seconds",
                            "Causal reads: time spent waiting for a replica to replay a token.",
                            MetricType::Histogram);
  ClientMetric ryw_metric;
  ryw_wait_.CollectInto(&ryw_metric);
  ryw.metric.push_back(std::move(ryw_metric));
  out.push_back(std::move(ryw));

  MetricFamily fallbacks =
      Family("ryw_fallbacks_total", "Causal reads sent to the primary instead of a replica.",
             MetricType::Counter);
  for (size_t r = 0; r < kRywFallbackReasons; ++r) {
    AddValue(&fallbacks, {L("reason", RywFallbackReasonName(static_cast<RywFallbackReason>(r)))},
             static_cast<double>(ryw_fallbacks_[r]));
  }
  out.push_back(std::move(fallbacks));

  MetricFamily tokens =
      Family("ryw_tokens_total",
             "Read-your-writes tokens taken after a writing transaction, by the WAL position used.",
             MetricType::Counter);
  for (size_t i = 0; i < kRywTokenPositions; ++i) {
    AddValue(&tokens, {L("position", RywTokenPositionName(static_cast<RywTokenPosition>(i)))},
             static_cast<double>(ryw_tokens_[i]));
  }
  out.push_back(std::move(tokens));

  MetricFamily after_write = Family(
      "reads_after_write_total",
      "The first causal read after each of a session's writing transactions, by where it ran.",
      MetricType::Counter);
  for (size_t i = 0; i < kReadAfterWriteServed; ++i) {
    AddValue(&after_write,
             {L("served", ReadAfterWriteServedName(static_cast<ReadAfterWriteServed>(i)))},
             static_cast<double>(reads_after_write_[i]));
  }
  out.push_back(std::move(after_write));

  MetricFamily retries =
      Family("read_retries_total",
             "Autocommit reads sent again elsewhere before any of their result reached the "
             "client, by reason.",
             MetricType::Counter);
  for (size_t r = 0; r < kReadRetryReasons; ++r) {
    AddValue(&retries, {L("reason", ReadRetryReasonName(static_cast<ReadRetryReason>(r)))},
             static_cast<double>(read_retries_[r]));
  }
  out.push_back(std::move(retries));

  MetricFamily tenant_reads =
      Family("tenant_reads_total",
             "Reads of units with a tenant, by the tenant's first preferred region, the region "
             "that served them and the outcome (preferred, elsewhere, primary, refused).",
             MetricType::Counter);
  auto region_label = [&](uint32_t slot) -> std::string_view {
    if (slot == kNoRegion) return "none";
    return slot < regions_.size() ? std::string_view(regions_[slot]) : "other";
  };
  // In key order, so that a scrape lists the series the same way every time.
  std::vector<std::pair<uint32_t, uint64_t>> sorted(tenant_reads_.begin(), tenant_reads_.end());
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [key, count] : sorted) {
    AddValue(&tenant_reads,
             {L("tenant_region", region_label(key >> 16)),
              L("served_region", region_label((key >> 8) & 0xff)),
              L("outcome", TenantReadOutcomeName(static_cast<TenantReadOutcome>(key & 0xff)))},
             static_cast<double>(count));
  }
  out.push_back(std::move(tenant_reads));
  MetricFamily map_entries =
      Family("tenant_map_entries",
             "Tenants in the mapping read from the application's table ([tenancy] query).",
             MetricType::Gauge);
  AddValue(&map_entries, {}, static_cast<double>(tenant_map_.entries));
  out.push_back(std::move(map_entries));
  MetricFamily map_errors = Family("tenant_map_refresh_errors_total",
                                   "Refreshes of the tenant mapping that failed (the last good "
                                   "mapping stayed in use).",
                                   MetricType::Counter);
  AddValue(&map_errors, {}, static_cast<double>(tenant_map_.refresh_errors));
  out.push_back(std::move(map_errors));
  MetricFamily map_age = Family("tenant_map_age_seconds",
                                "Time since the tenant mapping in use was read (no sample "
                                "before the first successful refresh).",
                                MetricType::Gauge);
  if (tenant_map_.loaded_unix_ms > 0) {
    AddValue(&map_age, {},
             static_cast<double>(std::max<int64_t>(UnixNowMs() - tenant_map_.loaded_unix_ms, 0)) /
                 1000.0);
  }
  out.push_back(std::move(map_age));

  MetricFamily optimistic =
      Family("optimistic_transactions_total",
             "Transactions started on a replica (optimistic read transactions), by outcome.",
             MetricType::Counter);
  for (size_t o = 0; o < kOptimisticOutcomes; ++o) {
    AddValue(&optimistic, {L("outcome", OptimisticOutcomeName(static_cast<OptimisticOutcome>(o)))},
             static_cast<double>(optimistic_[o]));
  }
  out.push_back(std::move(optimistic));
  MetricFamily moves =
      Family("optimistic_moves_total", "Optimistic transactions moved to the primary, by reason.",
             MetricType::Counter);
  for (size_t r = 0; r < kOptimisticMoveReasons; ++r) {
    AddValue(&moves, {L("reason", OptimisticMoveReasonName(static_cast<OptimisticMoveReason>(r)))},
             static_cast<double>(optimistic_moves_[r]));
  }
  out.push_back(std::move(moves));
  MetricFamily move_time =
      Family("optimistic_move_seconds",
             "Time a move to the primary added to an optimistic transaction (rollback, "
             "connection, replay).",
             MetricType::Histogram);
  ClientMetric move_metric;
  optimistic_move_.CollectInto(&move_metric);
  move_time.metric.push_back(std::move(move_metric));
  out.push_back(std::move(move_time));

  MetricFamily failovers =
      Family("failovers_total", "Times the primary became another node.", MetricType::Counter);
  AddValue(&failovers, {}, static_cast<double>(snap.failovers));
  out.push_back(std::move(failovers));

  MetricFamily errors = Family("errors_total", "Errors by kind.", MetricType::Counter);
  for (size_t k = 0; k < kErrorKinds; ++k) {
    AddValue(&errors, {L("kind", ErrorKindName(static_cast<ErrorKind>(k)))},
             static_cast<double>(errors_[k]));
  }
  out.push_back(std::move(errors));
  return out;
}

uint32_t Metrics::RegionSlot(std::string_view region) const {
  if (region.empty()) return kNoRegion;
  for (size_t i = 0; i < regions_.size() && i < kOtherRegion; ++i) {
    if (regions_[i] == region) return static_cast<uint32_t>(i);
  }
  return kOtherRegion;
}

void Metrics::TenantRead(std::string_view tenant_region, int served_node,
                         TenantReadOutcome outcome) {
  uint32_t served = kNoRegion;
  if (served_node >= 0 && static_cast<size_t>(served_node) < nodes_.size()) {
    served = RegionSlot(nodes_[static_cast<size_t>(served_node)].region);
  }
  ++tenant_reads_[RegionSlot(tenant_region) << 16 | served << 8 | static_cast<uint32_t>(outcome)];
}

std::string Metrics::RenderText(const routing::TopologySnapshot& snap,
                                const ConnectionCounts& conns) const {
  return prometheus::TextSerializer().Serialize(Collect(snap, conns));
}

}  // namespace pgregion::proxy
