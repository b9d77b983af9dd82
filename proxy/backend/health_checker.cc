#include "proxy/backend/health_checker.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <utility>

#include "protocol/str_util.h"
#include "proxy/backend/pq_async_connection.h"
#include "proxy/net/log.h"
#include "routing/lsn.h"

namespace pgregion::proxy {

namespace {

using Failure = routing::NodeHealth::Failure;

// One row: role, LSN, replay timestamp (Unix µs), replay paused, system
// identifier, timeline. pg_is_in_recovery() is read once (OFFSET 0 keeps the
// subquery from being pulled up), so the columns agree with each other.
// - The timeline of a primary is the one it inserts WAL on (the first 8 hex
//   digits of a WAL file name; pg_control_checkpoint() lags until the first
//   checkpoint after a promotion). A replica's is the walreceiver's
//   received_tli, which only roles with pg_read_all_stats can read; others get
//   the timeline of the last restartpoint.
// - pg_get_wal_replay_pause_state() and pg_walfile_name() raise errors on the
//   wrong side of recovery; the CASEs keep them there. A promotion that lands
//   between the subquery and the CASE fails one probe, nothing worse.
constexpr char kProbeSql[] =
    "SELECT r,"
    " CASE WHEN r THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END,"
    " (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::int8,"
    " CASE WHEN r THEN pg_get_wal_replay_pause_state() <> 'not paused' ELSE false END,"
    " (SELECT system_identifier FROM pg_control_system()),"
    " CASE WHEN r THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver),"
    " (SELECT timeline_id FROM pg_control_checkpoint()))"
    " ELSE ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int8 END"
    " FROM (SELECT pg_is_in_recovery() AS r OFFSET 0) s";
constexpr int kProbeColumns = 6;

// A path that cannot exist (a "directory" under /dev/null): with sslmode
// prefer/require, libpq would otherwise verify the server against
// ~/.postgresql/root.crt when that file exists, unlike pooled connections.
constexpr char kNoRootCert[] = "/dev/null/pgregion-no-root-cert";

template <typename T>
bool ParseInt(std::string_view text, T* out) {
  auto res = std::from_chars(text.data(), text.data() + text.size(), *out);
  return res.ec == std::errc() && res.ptr == text.data() + text.size();
}

// Fills `out` from the probe's one row; false with `why` when it is not what
// kProbeSql returns.
bool ParseProbeRow(const PGresult* res, routing::ProbeResult* out, std::string* why) {
  if (PQntuples(res) != 1 || PQnfields(res) != kProbeColumns) {
    *why = StrCat("probe returned ", PQntuples(res), " rows of ", PQnfields(res), " columns");
    return false;
  }
  auto text = [res](int col) { return std::string_view(PQgetvalue(res, 0, col)); };
  auto null = [res](int col) { return PQgetisnull(res, 0, col) != 0; };
  if (null(0) || (text(0) != "t" && text(0) != "f")) {
    *why = "probe: bad pg_is_in_recovery()";
    return false;
  }
  out->in_recovery = text(0) == "t";
  if (!null(1)) {
    absl::StatusOr<routing::Lsn> lsn = routing::Lsn::Parse(text(1));
    if (!lsn.ok()) {
      *why = StrCat("probe: bad LSN \"", text(1), "\"");
      return false;
    }
    out->lsn = *lsn;
  }
  if (!null(2)) {
    int64_t ts = 0;
    if (!ParseInt(text(2), &ts)) {
      *why = "probe: bad replay timestamp";
      return false;
    }
    out->replay_timestamp_us = ts;
  }
  out->replay_paused = !null(3) && text(3) == "t";
  int64_t sysid = 0;  // a bigint: identifiers above 2^63 come back negative
  if (!null(4) && !ParseInt(text(4), &sysid)) {
    *why = "probe: bad system identifier";
    return false;
  }
  out->system_identifier = static_cast<uint64_t>(sysid);
  int64_t tli = 0;
  if (!null(5) && (!ParseInt(text(5), &tli) || tli < 0 || tli > UINT32_MAX)) {
    *why = "probe: bad timeline";
    return false;
  }
  out->timeline = static_cast<uint32_t>(tli);
  return true;
}

std::string_view SslModeName(ServerTlsMode mode) {
  switch (mode) {
    case ServerTlsMode::kDisable:
      return "disable";
    case ServerTlsMode::kPrefer:
      return "prefer";
    case ServerTlsMode::kRequire:
      return "require";
    case ServerTlsMode::kVerifyFull:
      return "verify-full";
  }
  return "disable";
}

}  // namespace

routing::HealthPolicy HealthPolicyFromConfig(const HealthSection& health) {
  routing::HealthPolicy p;
  p.failures_to_down = health.failures_to_down;
  p.successes_to_up = health.successes_to_up;
  p.recover_hold_ms = uint64_t{health.recover_hold_s} * 1000;
  return p;
}

HealthCheckerOptions HealthOptionsFromConfig(const Config& config) {
  HealthCheckerOptions o;
  o.interval_ms = config.health.interval_ms;
  o.timeout_ms = config.health.timeout_ms;
  o.connect_timeout_ms = std::max(config.health.timeout_ms, config.pool.connect_timeout_ms);
  if (!config.health.user.empty()) {
    o.user = config.health.user;
    o.password = config.health.password;
  } else if (!config.users.empty()) {
    o.user = config.users.front().server_user;
    o.password = config.users.front().server_password;
  }
  o.database = config.health.database;
  o.tls_mode = config.server_tls.mode;
  o.ca_file = config.server_tls.ca_file;
  return o;
}

std::vector<std::pair<std::string, std::string>> HealthConnectParams(
    const HealthCheckerOptions& options, const HealthTarget& target) {
  std::vector<std::pair<std::string, std::string>> kv;
  kv.emplace_back("host", target.host);
  if (!target.hostaddr.empty()) kv.emplace_back("hostaddr", target.hostaddr);
  kv.emplace_back("port", StrCat(target.port));
  kv.emplace_back("dbname", options.database);
  if (!options.user.empty()) kv.emplace_back("user", options.user);
  if (!options.password.empty()) kv.emplace_back("password", options.password);
  kv.emplace_back("application_name", "pgregion-health");
  // Only PQconnectdb's own wait loop honours it (the probe's timer is the real
  // deadline); libpq treats 1 as 2, so say at least 2.
  uint32_t seconds = (options.connect_timeout_ms + 999) / 1000;
  kv.emplace_back("connect_timeout", StrCat(std::max<uint32_t>(seconds, 2)));
  kv.emplace_back("gssencmode", "disable");
  kv.emplace_back("sslmode", std::string(SslModeName(options.tls_mode)));
  if (options.tls_mode == ServerTlsMode::kVerifyFull) {
    kv.emplace_back("sslrootcert", options.ca_file);
  } else if (options.tls_mode != ServerTlsMode::kDisable) {
    kv.emplace_back("sslrootcert", kNoRootCert);
  }
  return kv;
}

// ---------------------------------------------------------------- NodeProbe

// The probe loop of one node. Heap-allocated by the checker; after Close() it
// frees itself in the timer's close callback and calls nobody.
class HealthChecker::NodeProbe : public PqAsyncConnection::Handler {
 public:
  NodeProbe(HealthChecker* checker, size_t index)
      : checker_(checker), loop_(checker->loop_), index_(index), pq_(loop_, this) {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
  }
  NodeProbe(const NodeProbe&) = delete;
  NodeProbe& operator=(const NodeProbe&) = delete;

  void Start() { uv_timer_start(&timer_, OnTimer, 0, 0); }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    checker_ = nullptr;
    pq_.Drop();
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnTimerClosed);
  }

 private:
  enum class State {
    kIdle,        // no connection; the timer is the next interval
    kConnecting,  // PQconnectPoll in progress; the timer is the connect deadline
    kReady,       // connected, no query; the timer is the next interval
    kProbing,     // the probe query in flight; the timer is its deadline
    kClosed,
  };

  static void OnTimer(uv_timer_t* t) { static_cast<NodeProbe*>(t->data)->OnTimerFired(); }
  static void OnTimerClosed(uv_handle_t* h) { delete static_cast<NodeProbe*>(h->data); }

  const HealthTarget& target() const { return checker_->targets_[index_]; }
  const HealthCheckerOptions& options() const { return checker_->options_; }

  void TransitionTo(State next) {
    state_ = next;
    switch (next) {
      case State::kIdle:
      case State::kReady: {
        // Keep the cadence: the next probe is one interval after this one began.
        uint64_t due = cycle_start_ms_ + options().interval_ms;
        uint64_t now = uv_now(loop_);
        uv_timer_start(&timer_, OnTimer, due > now ? due - now : 0, 0);
        break;
      }
      case State::kConnecting:
        // First deadline: timeout_ms, when the node turns suspect (a hung node's
        // kernel still accepts the TCP connection, so only time tells); the
        // connect itself may go on to connect_timeout_ms (a TLS + SCRAM login
        // to a distant region takes several round trips).
        connect_suspected_ = false;
        uv_timer_start(&timer_, OnTimer,
                       std::min(options().timeout_ms, options().connect_timeout_ms), 0);
        break;
      case State::kProbing:
        uv_timer_start(&timer_, OnTimer, options().timeout_ms, 0);
        break;
      case State::kClosed:
        break;
    }
  }

  void OnTimerFired() {
    switch (state_) {
      case State::kIdle:
        cycle_start_ms_ = uv_now(loop_);
        BeginConnect();
        return;
      case State::kReady:
        cycle_start_ms_ = uv_now(loop_);
        SendProbe();
        return;
      case State::kConnecting:
        if (!connect_suspected_ && options().connect_timeout_ms > options().timeout_ms) {
          connect_suspected_ = true;
          uv_timer_start(&timer_, OnTimer, options().connect_timeout_ms - options().timeout_ms, 0);
          LogDebug("health_connect_slow")
              .Kv("node", target().name)
              .Kv("after_ms", options().timeout_ms);
          checker_->OnProbeSuspect(index_);  // last: the observer may do anything
          return;
        }
        Fail(Failure::kProbeTimeout,
             StrCat("connect timed out after ", options().connect_timeout_ms, " ms"), true);
        return;
      case State::kProbing:
        Fail(Failure::kProbeTimeout, StrCat("probe timed out after ", options().timeout_ms, " ms"),
             true);
        return;
      case State::kClosed:
        return;
    }
  }

  // A failure to start ends in OnPqFailed, which moves on from kConnecting.
  void BeginConnect() {
    ++epoch_;
    TransitionTo(State::kConnecting);
    pq_.Start(HealthConnectParams(options(), target()), PqAsyncConnection::Notices::kToHandler);
  }

  void OnPqConnected() override {
    LogDebug("health_connected")
        .Kv("node", target().name)
        .Kv("epoch", epoch_)
        .Kv("tls", PQsslInUse(pq_.conn()) ? "on" : "off");
    SendProbe();
  }

  void SendProbe() {
    TransitionTo(State::kProbing);
    probe_sent_ns_ = uv_hrtime();
    pq_.SendQuery(kProbeSql);
  }

  void OnPqResult(const PGresult* res) override {
    switch (PQresultStatus(res)) {
      case PGRES_TUPLES_OK:
        if (!have_row_ && !error_) {
          have_row_ = true;
          result_ = routing::ProbeResult();
          if (!ParseProbeRow(res, &result_, &error_text_)) error_ = true;
        }
        return;
      default:
        if (!error_) {
          error_ = true;
          const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
          error_text_ = StrCat("probe: ", state != nullptr ? state : "", " ",
                               OneLine(PQresultErrorMessage(res)));
        }
        return;
    }
  }

  void OnPqQueryDone() override {
    bool ok = have_row_ && !error_;
    std::string why = std::move(error_text_);
    have_row_ = false;
    error_ = false;
    error_text_.clear();
    if (!ok) {
      // An error reply leaves a usable connection, unless the server ended it.
      PGconn* conn = pq_.conn();
      bool keep = PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE;
      Fail(Failure::kProbeError, why.empty() ? "probe: no result" : why, !keep);
      return;
    }
    // Round trip: from the send to the wakeup that brought the last of the reply.
    result_.rtt_us = (pq_.event_ns() - probe_sent_ns_) / 1000;
    result_.connection_epoch = epoch_;
    TransitionTo(State::kReady);
    // Watched between probes too, to notice a server that goes away.
    if (!pq_.WatchIdle()) {
      Fail(Failure::kProbeError, "cannot watch the connection's socket", true);
      return;
    }
    if (!last_error_.empty()) {
      LogInfo("health_probe_ok").Kv("node", target().name).Kv("after", last_error_);
      last_error_.clear();
    }
    checker_->OnProbeSuccess(index_, result_);  // last: the observer may do anything
  }

  void OnPqFailed(std::string why) override { Fail(Failure::kProbeError, std::move(why), true); }

  void OnPqIdleLost(std::string cause) override {
    Fail(Failure::kProbeError, StrCat("connection lost: ", cause), true);
  }

  // Notices, and errors the server sends outside a query (a FATAL before it
  // closes an idle connection; the connection keeps it for OnPqIdleLost).
  void OnPqNotice(const PGresult* res) override {
    if (checker_ == nullptr) return;
    LogDebug("health_notice")
        .Kv("node", target().name)
        .Kv("message", OneLine(PQresultErrorMessage(res)));
  }

  // Reports a failure and waits for the next interval; `drop` closes the
  // connection (the next interval opens a new one).
  void Fail(Failure failure, std::string why, bool drop) {
    if (drop) pq_.Drop();
    have_row_ = false;
    error_ = false;
    error_text_.clear();
    if (pq_.open() && !pq_.WatchIdle()) pq_.Drop();
    TransitionTo(pq_.open() ? State::kReady : State::kIdle);
    // One line per distinct problem, not one per interval while a node is down.
    if (why != last_error_) {
      LogWarn("health_probe_failed")
          .Kv("node", target().name)
          .Kv("kind", failure == Failure::kProbeTimeout ? "timeout" : "error")
          .Kv("error", why);
      last_error_ = std::move(why);
    } else {
      LogDebug("health_probe_failed").Kv("node", target().name).Kv("error", why);
    }
    checker_->OnProbeFailure(index_, failure);  // last: the observer may do anything
  }

  HealthChecker* checker_;  // null after Close()
  uv_loop_t* loop_;
  size_t index_;
  uv_timer_t timer_;
  PqAsyncConnection pq_;
  State state_ = State::kIdle;
  uint64_t epoch_ = 0;
  uint64_t cycle_start_ms_ = 0;
  uint64_t probe_sent_ns_ = 0;
  bool connect_suspected_ = false;  // kConnecting: past timeout_ms, node reported suspect
  routing::ProbeResult result_;
  bool have_row_ = false;
  bool error_ = false;
  std::string error_text_;
  std::string last_error_;  // last failure logged at warn; empty after a success
};

// ---------------------------------------------------------------- HealthChecker

HealthChecker::HealthChecker(uv_loop_t* loop, HealthCheckerOptions options,
                             std::vector<HealthTarget> targets, routing::Topology* topology,
                             Observer* observer)
    : loop_(loop),
      options_(std::move(options)),
      targets_(std::move(targets)),
      topology_(topology),
      observer_(observer) {}

HealthChecker::~HealthChecker() { Stop(); }

void HealthChecker::Start() {
  if (started_ || stopped_) return;
  started_ = true;
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (targets_[i].retired) continue;
    auto* probe = new NodeProbe(this, i);
    probes_.push_back(probe);
    probe->Start();
  }
}

void HealthChecker::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (NodeProbe* probe : probes_) probe->Close();
  probes_.clear();
}

void HealthChecker::ReportDataPathFailure(int node, bool certain) {
  if (stopped_ || node < 0 || static_cast<size_t>(node) >= targets_.size()) return;
  OnProbeFailure(static_cast<size_t>(node), certain ? Failure::kDataPath : Failure::kProbeError);
}

void HealthChecker::OnProbeSuccess(size_t node, const routing::ProbeResult& result) {
  routing::TopologyUpdate update = topology_->OnProbeSuccess(node, result, uv_now(loop_));
  observer_->OnTopologyUpdate(node, update);
}

void HealthChecker::OnProbeSuspect(size_t node) {
  routing::TopologyUpdate update = topology_->OnProbeSuspect(node, uv_now(loop_));
  if (update.went_suspect) observer_->OnTopologyUpdate(node, update);
}

void HealthChecker::OnProbeFailure(size_t node, routing::NodeHealth::Failure failure) {
  routing::TopologyUpdate update = topology_->OnProbeFailure(node, failure, uv_now(loop_));
  observer_->OnTopologyUpdate(node, update);
}

}  // namespace pgregion::proxy
