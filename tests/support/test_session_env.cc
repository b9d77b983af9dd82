#include "tests/support/test_session_env.h"

#include <algorithm>
#include <cctype>

#include "protocol/scram.h"
#include "proxy/backend/cancel_request.h"
#include "proxy/backend/server_connection.h"

namespace pgregion::testing {

struct SessionListener {
  uv_tcp_t tcp;
  TestSessionEnv* env;
};

namespace {

proxy::Config WithUsers(proxy::Config config) {
  proxy::UserConfig alice;
  alice.name = "alice";
  alice.auth = proxy::AuthMethod::kTrust;
  alice.server_user = "alice";
  config.users.push_back(alice);
  config.proxy.region = "local";
  return config;
}

routing::ProbeResult Probe(bool replica, routing::Lsn lsn) {
  routing::ProbeResult p;
  p.in_recovery = replica;
  p.lsn = lsn;
  p.rtt_us = replica ? 200 : 5000;  // the replica is nearer
  p.system_identifier = kTestSystemId;
  p.timeline = 1;
  p.connection_epoch = 1;
  return p;
}

}  // namespace

std::vector<routing::NodeSpec> TestSessionEnv::AddNodes(
    const std::vector<ScriptedBackend*>& backends) {
  std::vector<routing::NodeSpec> specs;
  for (size_t i = 0; i < backends.size(); ++i) {
    std::string name = i == 0 ? "primary" : "replica" + std::to_string(i);
    backend_env_.AddNode(name, backends[i]->address_in(), "local");
    specs.push_back({name, "local"});
  }
  return specs;
}

TestSessionEnv::TestSessionEnv(uv_loop_t* loop, const std::vector<ScriptedBackend*>& backends,
                               proxy::Config config)
    : loop_(loop),
      backend_env_(loop, WithUsers(std::move(config))),
      topology_(AddNodes(backends), routing::TopologyOptions{}),
      router_(42),
      classifier_(routing::ClassifierOptions{}),
      metrics_(backend_env_.config()),
      verifier_(protocol::MakeScramVerifier("unused", "salt", protocol::kDefaultScramIterations)) {
  const size_t n = backends.size();
  node_views_.assign(n, routing::NodeView{});
  node_views_[0].primary = true;
  outstanding_.assign(n, 0);
  paused_.assign(n, 0);
  // Both nodes answered a probe: roles known, node 0 the primary.
  for (size_t i = 0; i < n; ++i) {
    (void)topology_.OnProbeSuccess(i, Probe(i != 0, routing::Lsn(0x3000000)), 1);
  }
  cluster_view_.topology = topology_.snapshot().get();
  cluster_view_.roles_discovered = true;
  cluster_view_.node_count = n;
  cluster_view_.local_region = backend_env_.config().proxy.region;
  cluster_view_.outstanding = outstanding_;
  cluster_view_.paused = paused_;

  listener_ = new SessionListener;
  listener_->env = this;
  uv_tcp_init(loop, &listener_->tcp);
  listener_->tcp.data = listener_;
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&listener_->tcp, reinterpret_cast<const sockaddr*>(&addr), 0);
  int len = sizeof(addr);
  uv_tcp_getsockname(&listener_->tcp, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  uv_listen(reinterpret_cast<uv_stream_t*>(&listener_->tcp), 64, OnConnection);
}

TestSessionEnv::~TestSessionEnv() {
  uv_close(reinterpret_cast<uv_handle_t*>(&listener_->tcp),
           [](uv_handle_t* h) { delete static_cast<SessionListener*>(h->data); });
  // Sessions still open end as at a shutdown: they hand their server
  // connections back (or close them) while the pools still exist.
  std::vector<proxy::ClientSession*> open(sessions_.begin(), sessions_.end());
  for (proxy::ClientSession* s : open) s->Shutdown();
}

void TestSessionEnv::CancelBackend(const proxy::ServerConnection& server) {
  const int node = server.pool()->node();
  cancelled.emplace_back(node, server.backend_pid());
  proxy::SendCancelRequest(loop_, backend_env_.node_address(node), server.backend_pid(),
                           server.backend_secret(), config().pool.connect_timeout_ms);
}

void TestSessionEnv::SetNodeLsn(int node, routing::Lsn lsn) {
  (void)topology_.OnProbeSuccess(static_cast<size_t>(node), Probe(node != 0, lsn), NowMs());
  cluster_view_.topology = topology_.snapshot().get();
}

void TestSessionEnv::OnConnection(uv_stream_t* server, int status) {
  auto* listener = static_cast<SessionListener*>(server->data);
  TestSessionEnv* self = listener->env;
  if (status < 0) return;
  proxy::Stream* stream =
      proxy::Stream::Create(self->loop_, self->backend_env_.flush_queue(), nullptr);
  if (stream->Accept(server) != 0) {
    stream->Close();
    return;
  }
  auto* session = new proxy::ClientSession(self, stream);
  self->sessions_.insert(session);
  session->Start();
}

proxy::Pool* TestSessionEnv::GetPool(int node, const std::string& database,
                                     const proxy::UserConfig& user,
                                     const proxy::SessionParams& login) {
  std::vector<std::pair<std::string, std::string>> sorted;
  for (const proxy::SessionParams::Entry& e : login.entries()) {
    std::string name = e.name;
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    sorted.emplace_back(std::move(name), e.value);
  }
  std::sort(sorted.begin(), sorted.end());
  std::string key;
  for (const auto& [name, value] : sorted) key += name + "=" + value + '\0';
  auto it = pools_.find(std::make_tuple(node, database, user.name, key));
  if (it != pools_.end()) return it->second;
  proxy::Pool* pool =
      backend_env_.MakePool(node, user.server_user.empty() ? user.name : user.server_user,
                            user.server_password, database, login);
  pools_.emplace(std::make_tuple(node, database, user.name, key), pool);
  return pool;
}

}  // namespace pgregion::testing
