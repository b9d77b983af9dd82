#include "proxy/app/proxy_app.h"

#include <netdb.h>
#include <openssl/rand.h>

#include <cstring>

#include "protocol/md5.h"
#include "protocol/message_builder.h"
#include "protocol/sqlstate.h"
#include "protocol/str_util.h"
#include "proxy/app/admin_console.h"
#include "proxy/app/admin_endpoints.h"
#include "proxy/app/config_reload.h"
#include "proxy/app/graceful_shutdown.h"
#include "proxy/app/tenants.h"
#include "proxy/backend/cancel_request.h"
#include "proxy/backend/pool.h"
#include "proxy/backend/server_connection.h"
#include "proxy/net/log.h"
#include "proxy/net/stream.h"
#include "proxy/session/client_session.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;

namespace {

constexpr uint64_t kJanitorIntervalMs = 1000;

absl::Status ResolveAddress(const std::string& host, uint16_t port, sockaddr_storage* out) {
  memset(out, 0, sizeof(*out));
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(out)) == 0) {
    return absl::OkStatus();
  }
  if (uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(out)) == 0) {
    return absl::OkStatus();
  }
  // Names are resolved at startup (blocking is fine before the loop runs) and for
  // nodes a reload adds (rare; numeric addresses avoid the brief block).
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::InvalidArgumentError(
        StrCat("cannot resolve host \"", host, "\": ", gai_strerror(rc)));
  }
  memcpy(out, res->ai_addr, res->ai_addrlen);
  if (out->ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(out)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(out)->sin6_port = htons(port);
  }
  freeaddrinfo(res);
  return absl::OkStatus();
}

}  // namespace

namespace {
std::vector<routing::NodeSpec> NodeSpecsFrom(const Config& config) {
  std::vector<routing::NodeSpec> specs;
  for (const NodeConfig& n : config.nodes) specs.push_back(routing::NodeSpec{n.name, n.region});
  return specs;
}

routing::TopologyOptions TopologyOptionsFrom(const HealthSection& h) {
  routing::TopologyOptions o;
  o.health = HealthPolicyFromConfig(h);
  return o;
}

std::string NumericHost(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&addr), buf, sizeof(buf));
  } else {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&addr), buf, sizeof(buf));
  }
  return buf;
}
}  // namespace

ProxyApp::ProxyApp(uv_loop_t* loop, std::shared_ptr<const Config> config)
    : loop_(loop),
      flush_queue_(FlushQueue::Create(loop)),
      config_(std::move(config)),
      topology_(NodeSpecsFrom(*config_), TopologyOptionsFrom(config_->health)),
      latency_(config_->nodes.size()),
      router_(uv_hrtime()),
      classifier_(
          std::make_unique<routing::StatementClassifier>(ClassifierOptionsFrom(config_->routing))),
      metrics_(*config_) {
  routed_topology_ = topology_.snapshot();
  cluster_view_.topology = routed_topology_.get();
  cluster_view_.latency = &latency_;
  ApplyRoutingConfig();
}

void ProxyApp::ApplyRoutingConfig() {
  ApplyTenancy();
  cluster_view_.local_region = config_->proxy.region;
  cluster_view_.max_replica_lag_ms = config_->routing.max_replica_lag_ms;
  cluster_view_.ryw_wait_ms = config_->routing.ryw_wait_ms;
}

ProxyApp::~ProxyApp() { flush_queue_->Close(); }

absl::StatusOr<NodeRuntime> ProxyApp::ResolveNode(const NodeConfig& n) {
  NodeRuntime rt;
  rt.config = n;
  absl::Status st = ResolveAddress(n.host, n.port, &rt.addr);
  if (!st.ok()) return absl::InvalidArgumentError(StrCat("node ", n.name, ": ", st.message()));
  return rt;
}

absl::Status ProxyApp::ResolveNodes() {
  nodes_.clear();
  for (const NodeConfig& n : config_->nodes) {
    absl::StatusOr<NodeRuntime> rt = ResolveNode(n);
    if (!rt.ok()) return rt.status();
    nodes_.push_back(*std::move(rt));
  }
  logged_roles_.assign(nodes_.size(), routing::NodeRole::kUnknown);
  node_views_.assign(nodes_.size(), routing::NodeView{});
  if (!node_views_.empty()) node_views_[0].primary = true;  // until roles are discovered
  // cluster_view_ keeps spans of these: reset them whenever they grow (AddNode).
  outstanding_.assign(nodes_.size(), 0);
  cluster_view_.outstanding = outstanding_;
  paused_.assign(nodes_.size(), 0);
  cluster_view_.paused = paused_;
  cluster_view_.node_count = nodes_.size();
  return absl::OkStatus();
}

HealthTarget ProxyApp::TargetOf(size_t node) const {
  const NodeRuntime& n = nodes_[node];
  return HealthTarget{n.config.name, n.config.host, NumericHost(n.addr), n.config.port, n.retired};
}

void ProxyApp::StartHealthChecker() {
  HealthCheckerOptions options = HealthOptionsFromConfig(*config_);
  if (config_->health.user.empty() && !config_->users.empty() &&
      p::LooksLikeMd5Stored(options.password)) {
    LogWarn("health_credentials")
        .Kv("user", options.user)
        .Kv("detail",
            "the first [[users]] entry's server password is an md5 hash, which libpq cannot "
            "log in with; set [health] user and password");
  }
  std::vector<HealthTarget> targets;
  for (size_t i = 0; i < nodes_.size(); ++i) targets.push_back(TargetOf(i));
  replay_poller_ = std::make_unique<ReplayPoller>(loop_, options, targets, &topology_,
                                                  static_cast<HealthChecker::Observer*>(this));
  health_ =
      std::make_unique<HealthChecker>(loop_, std::move(options), std::move(targets), &topology_,
                                      static_cast<HealthChecker::Observer*>(this));
  health_->Start();
}

void ProxyApp::ReportDataPathFailure(int node, bool certain) {
  if (health_ != nullptr) health_->ReportDataPathFailure(node, certain);
}

void ProxyApp::OnTopologyUpdate(size_t node, const routing::TopologyUpdate& update) {
  routed_topology_ = topology_.snapshot();
  const routing::TopologySnapshot& snap = *routed_topology_;
  LogTopologyUpdate(node, update, snap);
  metrics_.OnTopologyUpdate(node, update, snap, UnixNowMs());
  cluster_view_.topology = &snap;
  if (!roles_discovered_ && snap.primary_state == routing::PrimaryState::kOne) {
    roles_discovered_ = true;
    cluster_view_.roles_discovered = true;
    LogInfo("roles_discovered").Kv("primary", snap.PrimaryNode()->name);
  }
  if (roles_discovered_) {
    for (size_t i = 0; i < node_views_.size() && i < snap.nodes.size(); ++i) {
      node_views_[i].up = snap.nodes[i].up;
      node_views_[i].primary = snap.primary == static_cast<int>(i);
    }
  }
  if (update.readmitted) latency_.Readmit(node, NowMs());
  if (update.went_suspect) AbandonHungReads(node);
  if (update.role_change.has_value()) {
    DrainNode(node, StrCat("role changed from ", routing::NodeRoleName(update.role_change->from),
                           " to ", routing::NodeRoleName(update.role_change->to)));
  }
  WakeRouteWaiters();
}

void ProxyApp::WakeRouteWaiters() {
  if (route_waiters_.empty()) return;
  std::vector<ClientSession*> waiting(route_waiters_.begin(), route_waiters_.end());
  route_waiters_.clear();
  for (ClientSession* c : waiting) c->RetryRoute();  // may wait again
}

void ProxyApp::DrainNode(size_t node, std::string_view why) {
  size_t closed = 0;
  size_t draining = 0;
  for (auto& [key, pool] : pools_) {
    if (pool->node() != static_cast<int>(node)) continue;
    Pool::DrainResult r = pool->Drain(why);
    closed += r.closed;
    draining += r.draining;
  }
  LogWarn("node_drained")
      .Kv("node", nodes_[node].config.name)
      .Kv("reason", why)
      .Kv("closed_idle", static_cast<uint64_t>(closed))
      .Kv("close_on_release", static_cast<uint64_t>(draining));
}

void ProxyApp::AddOutstanding(int node, int64_t delta) {
  if (node < 0 || static_cast<size_t>(node) >= outstanding_.size()) return;
  uint32_t& n = outstanding_[static_cast<size_t>(node)];
  const int64_t next = static_cast<int64_t>(n) + delta;
  n = next < 0 ? 0 : static_cast<uint32_t>(next);
}

int ProxyApp::WelcomeNode() const {
  const routing::TopologySnapshot& snap = *routed_topology_;
  // Before roles are known: the first node still configured.
  int first = 0;
  while (static_cast<size_t>(first) + 1 < nodes_.size() && nodes_[first].retired) ++first;
  if (!roles_discovered_) return first;
  // A node that is not paused (a paused one opens no new connection), else the
  // primary anyway: a login needs the backend's parameters once per pool.
  if (snap.primary >= 0 && !NodePaused(snap.primary)) return snap.primary;
  for (const routing::NodeStatus& n : snap.nodes) {
    if (n.up && !NodePaused(static_cast<int>(n.index))) return static_cast<int>(n.index);
  }
  return snap.primary >= 0 ? snap.primary : first;
}

std::string ProxyApp::PausedMessage() const {
  const routing::TopologySnapshot& snap = *routed_topology_;
  return StrCat(
      "pgregion: the primary",
      snap.primary >= 0 ? StrCat(" ", nodes_[static_cast<size_t>(snap.primary)].config.name) : "",
      " is paused (PAUSE in the admin console) and was not resumed within "
      "failover.write_wait_ms (",
      config_->failover.write_wait_ms, " ms)");
}

std::string ProxyApp::NoRouteMessage(routing::RouteBlock block) const {
  const routing::TopologySnapshot& snap = *routed_topology_;
  switch (block) {
    case routing::RouteBlock::kPrimaryConflict: {
      std::string claimants;
      for (const routing::NodeStatus& n : snap.nodes) {
        if (!n.up || !n.is_primary()) continue;
        StrAppend(&claimants, claimants.empty() ? "" : ", ", n.name, " (", n.region, ")");
      }
      return StrCat(
          "pgregion: writes refused: more than one node reports pg_is_in_recovery() = false: ",
          claimants,
          "; pgregion refuses writes (and reads no replica can serve) until exactly one "
          "primary remains");
    }
    case routing::RouteBlock::kNoPrimary:
    case routing::RouteBlock::kNone: {
      // A unit that timed out waiting is told of the block it last had: a
      // primary that is known but paused is no failover.
      if (snap.primary >= 0 && NodePaused(snap.primary)) return PausedMessage();
      std::string nodes;
      for (const routing::NodeStatus& n : snap.nodes) {
        StrAppend(&nodes, nodes.empty() ? "" : ", ", n.name, " (", n.region, ") ",
                  n.up ? routing::NodeRoleName(n.role) : "down");
      }
      return StrCat(
          "pgregion: no primary is known (failover in progress?) and none appeared "
          "within failover.write_wait_ms (",
          config_->failover.write_wait_ms, " ms); nodes: ", nodes);
    }
    case routing::RouteBlock::kNoNode:
      return "pgregion: no node is configured";
    case routing::RouteBlock::kPaused:
      return PausedMessage();
    case routing::RouteBlock::kResidency:  // the session words it (RefuseResidency)
      break;
  }
  return "pgregion: no node can serve this request";
}

void ProxyApp::LogTopologyUpdate(size_t node, const routing::TopologyUpdate& update,
                                 const routing::TopologySnapshot& snap) {
  using routing::NodeRole;
  using routing::PrimaryState;
  const routing::NodeStatus& n = snap.nodes[node];
  switch (update.health) {
    case routing::NodeHealth::Change::kWentUp:
      LogInfo("node_up")
          .Kv("node", n.name)
          .Kv("region", n.region)
          .Kv("role", routing::NodeRoleName(n.role))
          .Kv("rtt_ms", static_cast<double>(n.rtt_us) / 1000.0)
          .Kv("readmitted", update.readmitted ? "true" : "false");
      break;
    case routing::NodeHealth::Change::kWentDown:
      LogWarn("node_down")
          .Kv("node", n.name)
          .Kv("region", n.region)
          .Kv("role", routing::NodeRoleName(n.role));
      break;
    case routing::NodeHealth::Change::kNone:
      break;
  }
  if (node < logged_roles_.size() && n.role != logged_roles_[node]) {
    // The first discovery is news; a change means the node was promoted or
    // demoted behind our back (its server connections must not be reused).
    if (logged_roles_[node] == NodeRole::kUnknown) {
      LogInfo("node_role").Kv("node", n.name).Kv("role", routing::NodeRoleName(n.role));
    } else {
      LogWarn("node_role_changed")
          .Kv("node", n.name)
          .Kv("from", routing::NodeRoleName(logged_roles_[node]))
          .Kv("to", routing::NodeRoleName(n.role));
    }
    logged_roles_[node] = n.role;
  }
  if (update.primary_changed) {
    switch (snap.primary_state) {
      case PrimaryState::kOne:
        LogLine(update.failover ? LogLevel::kWarn : LogLevel::kInfo, "primary_changed")
            .Kv("primary", snap.PrimaryNode()->name)
            .Kv("region", snap.PrimaryNode()->region)
            .Kv("failover", update.failover ? "true" : "false")
            .Kv("failovers", snap.failovers);
        break;
      case PrimaryState::kNone:
        LogWarn("no_primary").Kv("detail", "no up node reports pg_is_in_recovery() = false");
        break;
      case PrimaryState::kConflict:
        break;  // below, on every rebuild
    }
  }
  if (snap.primary_state == PrimaryState::kConflict) {
    // Loud on every snapshot while it lasts: writes are refused until one remains.
    std::string claimants;
    for (const routing::NodeStatus& s : snap.nodes) {
      if (!s.up || !s.is_primary()) continue;
      if (!claimants.empty()) claimants += ",";
      claimants.append(s.name);
    }
    LogError("primary_conflict")
        .Kv("nodes", claimants)
        .Kv("detail", "more than one node reports pg_is_in_recovery() = false; writes refused");
  }
}

absl::Status ProxyApp::BuildCredentials() {
  // PBKDF2 once per user at startup, not per login.
  for (const UserConfig& u : config_->users) {
    if (u.auth != AuthMethod::kScramSha256) continue;
    if (p::LooksLikeScramVerifier(u.password)) {
      absl::StatusOr<p::ScramVerifier> v = p::ParseScramVerifier(u.password);
      if (!v.ok()) {
        return absl::InvalidArgumentError(
            StrCat("users.", u.name, ".password: invalid SCRAM verifier: ", v.status().message()));
      }
      verifiers_[u.name] = *std::move(v);
    } else {
      std::string salt(16, '\0');
      RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), 16);
      verifiers_[u.name] = p::MakeScramVerifier(u.password, salt, p::kDefaultScramIterations);
    }
  }
  std::string salt(16, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), 16);
  std::string junk(32, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(junk.data()), 32);
  decoy_verifier_ = p::MakeScramVerifier(junk, salt, p::kDefaultScramIterations);
  return absl::OkStatus();
}

std::unique_ptr<ConsoleSession> ProxyApp::OpenConsole(const UserConfig* user, std::string* error) {
  return AdminConsole::Open(this, user, error);
}

const p::ScramVerifier* ProxyApp::VerifierFor(const UserConfig* user) const {
  if (user != nullptr) {
    auto it = verifiers_.find(user->name);
    if (it != verifiers_.end()) return &it->second;
  }
  return &decoy_verifier_;
}

absl::Status ProxyApp::Start() {
  if (absl::Status st = ResolveNodes(); !st.ok()) return st;
  if (absl::Status st = BuildCredentials(); !st.ok()) return st;
  if (config_->tls.mode != TlsMode::kDisable) {
    absl::StatusOr<std::unique_ptr<TlsContext>> tls =
        TlsContext::CreateServer(config_->tls.cert_file, config_->tls.key_file);
    if (!tls.ok()) return tls.status();
    client_tls_ = *std::move(tls);
  }
  if (config_->server_tls.mode != ServerTlsMode::kDisable) {
    absl::StatusOr<std::unique_ptr<TlsContext>> tls = TlsContext::CreateClient(
        config_->server_tls.ca_file, config_->server_tls.mode == ServerTlsMode::kVerifyFull);
    if (!tls.ok()) return tls.status();
    server_tls_ = *std::move(tls);
  }

  if (config_->admin.enabled) {
    admin_ = std::make_unique<AdminEndpoints>(this);
    if (absl::Status st = admin_->Start(); !st.ok()) return st;
  }
  sockaddr_storage addr;
  const ListenAddress& listen = config_->proxy.listen;
  if (absl::Status st = ResolveAddress(listen.host, listen.port, &addr); !st.ok()) return st;
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  int rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 1024, OnConnection);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    if (admin_ != nullptr) admin_->Stop();
    return absl::UnavailableError(
        StrCat("cannot listen on ", listen.host, ":", listen.port, ": ", uv_strerror(rc)));
  }
  uv_timer_init(loop_, &janitor_);
  janitor_.data = this;
  uv_timer_start(&janitor_, OnJanitor, kJanitorIntervalMs, kJanitorIntervalMs);
  uv_unref(reinterpret_cast<uv_handle_t*>(&janitor_));
  for (uv_signal_t* s : {&sigterm_, &sigint_, &sighup_}) {
    uv_signal_init(loop_, s);
    s->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(s));
  }
  uv_signal_start(&sigterm_, OnSignal, SIGTERM);
  uv_signal_start(&sigint_, OnSignal, SIGINT);
  uv_signal_start(&sighup_, OnSignal, SIGHUP);
  StartHealthChecker();
  StartTenantMap();
  started_ = true;
  LogInfo("listening")
      .Kv("addr", StrCat(listen.host, ":", listen.port))
      .Kv("nodes", static_cast<uint64_t>(nodes_.size()))
      .Kv("pool_mode", config_->pool.mode == PoolMode::kSession ? "session" : "transaction");
  return absl::OkStatus();
}

void ProxyApp::OnConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<ProxyApp*>(server->data);
  if (status < 0 || self->shutting_down_) return;
  Stream* stream = Stream::Create(self->loop_, self->flush_queue_, nullptr);
  if (stream->Accept(server) != 0) {
    stream->Close();
    return;
  }
  const ProxySection& cfg = self->config_->proxy;
  // Hard cap well above max_client_connections: past it we cannot even afford
  // to read a startup packet, but the client still gets PostgreSQL's answer
  // (written before it is read: the best we can do without a session).
  if (self->sessions_.size() >= 2 * uint64_t{cfg.max_client_connections} + 64 +
                                    uint64_t{cfg.max_unauthenticated_connections}) {
    self->metrics_.Error(ErrorKind::kClientLimit);
    std::string out;
    protocol::AppendErrorResponse(&out, {.severity = "FATAL",
                                         .sqlstate = protocol::sqlstate::kTooManyConnections,
                                         .message = "sorry, too many clients already"});
    stream->Write(out);
    stream->CloseAfterFlush();
    return;
  }
  // The pre-auth budget (pre_auth_budget.h): when it is full the oldest
  // connection that has not sent its StartupMessage gives way; if there is
  // none, the new one is answered 53300 once it sends its StartupMessage.
  self->pre_auth_.set_limit(cfg.max_unauthenticated_connections);
  bool refuse = false;
  if (self->pre_auth_.full()) {
    const void* victim = self->pre_auth_.OldestMatching(
        [](const void* c) { return static_cast<const ClientSession*>(c)->AwaitingStartup(); });
    // Else a login stalled in authentication for longer than a StartupMessage
    // may take: without this, connections that start SCRAM and never answer
    // would hold every slot for the whole login timeout.
    const uint64_t now = self->NowMs();
    if (victim == nullptr) {
      victim = self->pre_auth_.OldestMatching([&](const void* c) {
        return static_cast<const ClientSession*>(c)->StalledLogin(now,
                                                                  cfg.startup_packet_timeout_ms);
      });
    }
    if (victim != nullptr) {
      static_cast<ClientSession*>(const_cast<void*>(victim))->Evict();
    } else {
      refuse = true;
    }
    if (self->unauth_log_.Allow(UnauthEvent::kPreAuthFull, self->NowMs())) {
      LogWarn("pre_auth_full")
          .Kv("limit", uint64_t{cfg.max_unauthenticated_connections})
          .Kv("action", refuse ? "refused new connection" : "evicted oldest idle connection");
    }
  }
  auto* session = new ClientSession(self, stream);
  self->sessions_.insert(session);
  if (refuse) {
    self->metrics_.Error(ErrorKind::kClientLimit);
    session->RefuseAfterStartup();
  } else {
    self->pre_auth_.Add(session);
  }
  session->Start();
}

Pool* ProxyApp::GetPool(int node, const std::string& database, const UserConfig& user,
                        const SessionParams& login) {
  // Parameters in a fixed order (names lower case) so equal sets share a pool.
  std::vector<std::pair<std::string, std::string>> sorted;
  for (const SessionParams::Entry& e : login.entries()) {
    std::string name = e.name;
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    sorted.emplace_back(std::move(name), e.value);
  }
  std::sort(sorted.begin(), sorted.end());
  std::string login_key;
  for (const auto& [name, value] : sorted)
    StrAppend(&login_key, name, "=", value, std::string_view("\0", 1));
  auto key = std::make_tuple(node, database, user.name, login_key);
  auto it = pools_.find(key);
  if (it != pools_.end()) return it->second.get();
  absl::flat_hash_set<std::string>& variants = login_variants_[{database, user.name}];
  if (!variants.contains(login_key)) {
    if (variants.size() >= kMaxLoginVariants) return nullptr;
    variants.insert(std::move(login_key));
  }
  std::string server_user = user.server_user.empty() ? user.name : user.server_user;
  // The loader fills server credentials (a SCRAM verifier is never sent as a password).
  std::string server_password = user.server_password;
  auto pool = std::make_unique<Pool>(this, node, database, user.name, std::move(server_user),
                                     std::move(server_password), login);
  Pool* raw = pool.get();
  pools_.emplace(std::move(key), std::move(pool));
  return raw;
}

void ProxyApp::RegisterClient(ClientSession* client, uint32_t* pid, uint32_t* secret) {
  // Proxy-wide unique "backend pids" so cancel requests find their session.
  do {
    ++next_pid_;
    if (next_pid_ == 0 || next_pid_ > 0x7fffffff) next_pid_ = 1;
  } while (clients_.contains(next_pid_));
  *pid = next_pid_;
  RAND_bytes(reinterpret_cast<unsigned char*>(secret), sizeof(*secret));
  clients_[*pid] = client;
}

void ProxyApp::UnregisterClient(ClientSession*, uint32_t pid) { clients_.erase(pid); }

void ProxyApp::HandleCancel(uint32_t pid, uint32_t secret) {
  auto it = clients_.find(pid);
  if (it == clients_.end() || it->second->secret() != secret) {
    // Anyone can send these: rate-limited (log_rate_limiter.h).
    if (unauth_log_.Allow(UnauthEvent::kCancelIgnored, NowMs())) {
      LogInfo("cancel_ignored").Kv("pid", pid);
    }
    return;
  }
  ServerConnection* server = it->second->server();
  if (server == nullptr) return;  // nothing running
  CancelBackend(*server);
}

void ProxyApp::CancelBackend(const ServerConnection& server) {
  SendCancelRequest(loop_, node_address(server.pool()->node()), server.backend_pid(),
                    server.backend_secret(), config_->pool.connect_timeout_ms);
}

void ProxyApp::OnJanitor(uv_timer_t* t) {
  auto* self = static_cast<ProxyApp*>(t->data);
  uint64_t now = self->NowMs();
  for (auto& [key, pool] : self->pools_) pool->Sweep(now);
  self->unauth_log_.ReportSuppressed();
}

void ProxyApp::OnSignal(uv_signal_t* s, int signum) {
  auto* self = static_cast<ProxyApp*>(s->data);
  if (signum == SIGHUP) {
    (void)self->Reload("SIGHUP");  // logs the outcome
    return;
  }
  if (signum == SIGTERM && !self->draining_ && !self->shutting_down_ &&
      self->config_->proxy.shutdown_timeout_s > 0) {
    self->draining_ = true;
    LogInfo("shutdown_requested").Kv("reason", "SIGTERM");
    uv_close(reinterpret_cast<uv_handle_t*>(&self->listener_), nullptr);
    GracefulShutdown::Start(self, uint64_t{self->config_->proxy.shutdown_timeout_s} * 1000);
    return;
  }
  self->Shutdown(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void ProxyApp::Shutdown(std::string_view why) {
  if (shutting_down_ || !started_) return;
  shutting_down_ = true;
  LogInfo("shutdown").Kv("reason", why);
  if (health_ != nullptr) health_->Stop();
  if (replay_poller_ != nullptr) replay_poller_->Stop();
  if (tenant_loader_ != nullptr) tenant_loader_->Stop();
  if (admin_ != nullptr) admin_->Stop();
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&listener_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&janitor_), nullptr);
  for (uv_signal_t* s : {&sigterm_, &sigint_, &sighup_}) {
    uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
  }
  std::vector<ClientSession*> clients(sessions_.begin(), sessions_.end());
  for (ClientSession* c : clients) c->Shutdown();
  for (auto& [key, pool] : pools_) pool->CloseAll();
}

}  // namespace pgregion::proxy
