#include "proxy/app/admin_endpoints.h"

#include <algorithm>
#include <tuple>

#include "proxy/app/proxy_app.h"
#include "proxy/backend/pool.h"
#include "proxy/session/client_session.h"

namespace pgregion::proxy {

namespace {

constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

ClientGaugeState GaugeState(ClientSession::State state) {
  switch (state) {
    case ClientSession::State::kStartup:
    case ClientSession::State::kTlsHandshake:
    case ClientSession::State::kAuth:
    case ClientSession::State::kAuthFailing:
    case ClientSession::State::kLoginWait:
    case ClientSession::State::kClosed:
      return ClientGaugeState::kLogin;
    case ClientSession::State::kIdle:
      return ClientGaugeState::kIdle;
    case ClientSession::State::kWaitRoute:
    case ClientSession::State::kWaitReplay:
    case ClientSession::State::kWaitServer:
      return ClientGaugeState::kWaiting;
    case ClientSession::State::kRestoring:
    case ClientSession::State::kActive:
      return ClientGaugeState::kActive;
  }
  return ClientGaugeState::kLogin;
}

}  // namespace

AdminEndpoints::AdminEndpoints(ProxyApp* app) : app_(app) {}

AdminEndpoints::~AdminEndpoints() = default;

absl::Status AdminEndpoints::Start() {
  server_ = std::make_unique<AdminServer>(app_->loop(), this);
  return server_->Listen(app_->config().admin.listen);
}

void AdminEndpoints::Stop() {
  if (server_ != nullptr) server_->Close();
}

ConnectionCounts AdminEndpoints::CountConnections() const {
  ConnectionCounts counts;
  for (const ClientSession* c : app_->sessions()) {
    if (c->state() == ClientSession::State::kClosed) continue;
    ++counts.clients[static_cast<size_t>(GaugeState(c->state()))];
  }
  counts.servers.resize(app_->node_count());
  for (const PoolStatus& p : PoolStatuses()) {
    if (p.node < 0 || static_cast<size_t>(p.node) >= counts.servers.size()) continue;
    ConnectionCounts::Servers& s = counts.servers[static_cast<size_t>(p.node)];
    s.idle += p.idle;
    s.active += p.active;
    s.connecting += p.connecting;
    s.waiters += p.waiters;
  }
  return counts;
}

std::vector<PoolStatus> AdminEndpoints::PoolStatuses() const {
  std::vector<PoolStatus> out;
  for (const auto& [key, pool] : app_->pools()) {
    PoolStatus p;
    p.node = pool->node();
    p.database = pool->database();
    p.user = pool->user();
    p.total = pool->total_count();
    p.idle = pool->idle_count();
    p.connecting = pool->connecting_count();
    p.active = p.total >= p.idle + p.connecting ? p.total - p.idle - p.connecting : 0;
    p.waiters = pool->waiter_count();
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(), [](const PoolStatus& a, const PoolStatus& b) {
    return std::tie(a.node, a.database, a.user) < std::tie(b.node, b.database, b.user);
  });
  return out;
}

HttpResponse AdminEndpoints::Handle(const HttpRequest& request) {
  enum class Endpoint { kMetrics, kHealth, kReady, kStatus };
  Endpoint endpoint;
  if (request.path == "/metrics") {
    endpoint = Endpoint::kMetrics;
  } else if (request.path == "/health") {
    endpoint = Endpoint::kHealth;
  } else if (request.path == "/ready") {
    endpoint = Endpoint::kReady;
  } else if (request.path == "/status") {
    endpoint = Endpoint::kStatus;
  } else {
    return TextResponse(404, "try /metrics, /health, /ready or /status");
  }
  if (request.method != "GET" && request.method != "HEAD") {
    HttpResponse r = TextResponse(405, "only GET and HEAD");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  switch (endpoint) {
    case Endpoint::kMetrics:
      return MetricsPage();
    case Endpoint::kHealth:
      return HttpResponse{.status = 200, .body = "ok\n"};
    case Endpoint::kReady:
      return ReadyPage();
    case Endpoint::kStatus: {
      const std::string& token = app_->config().admin.bearer_token;
      if (!token.empty() && !BearerTokenMatches(request.authorization, token)) {
        HttpResponse r = TextResponse(401, "/status needs Authorization: Bearer <token>");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"pgregion\"");
        return r;
      }
      return StatusPage();
    }
  }
  return TextResponse(500, "");
}

HttpResponse AdminEndpoints::MetricsPage() const {
  routing::TopologySnapshotPtr snap = app_->topology();
  HttpResponse r;
  r.content_type = std::string(kPrometheusContentType);
  r.body = app_->metrics().RenderText(*snap, CountConnections());
  return r;
}

HttpResponse AdminEndpoints::ReadyPage() const {
  Readiness ready = ComputeReadiness(*app_->topology(), app_->shutting_down() || app_->draining());
  if (ready.ready) return HttpResponse{.status = 200, .body = "ready\n"};
  return TextResponse(503, ready.reason);
}

HttpResponse AdminEndpoints::StatusPage() const {
  routing::TopologySnapshotPtr snap = app_->topology();
  StatusInput in;
  in.config = &app_->config();
  in.topology = snap.get();
  for (size_t i = 0; i < app_->node_count(); ++i) {
    const NodeRuntime& n = app_->node(static_cast<int>(i));
    in.nodes.push_back(StatusInput::Node{.config = &n.config, .paused = n.paused});
  }
  in.readiness = ComputeReadiness(*snap, app_->shutting_down() || app_->draining());
  in.roles_discovered = app_->roles_discovered();
  in.clients = CountConnections().clients;
  in.pools = PoolStatuses();
  in.events = &app_->metrics().recent_events();
  if (app_->metrics().tenant_map().configured || !app_->config().tenants.empty()) {
    in.tenant_map = &app_->metrics().tenant_map();
    in.tenant_config_entries = app_->config().tenants.size();
  }
  in.now_ms = app_->NowMs();
  in.unix_ms = UnixNowMs();
  HttpResponse r;
  r.content_type = "application/json";
  r.body = RenderStatusJson(in);
  return r;
}

}  // namespace pgregion::proxy
