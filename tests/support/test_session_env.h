// What a ClientSession needs of the process, for unit tests: a SessionEnv
// with the real routing objects (a Router, a StatementClassifier, a Topology
// fed with probe results: node 0 the primary, node 1 a replica, each its own
// ScriptedBackend) and real Pools created on demand over a TestBackendEnv. It
// listens on 127.0.0.1 (an ephemeral port) and runs a ClientSession for every
// connection, as the ProxyApp does. Loop thread only.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "proxy/admin/metrics.h"
#include "proxy/backend/pool.h"
#include "proxy/net/log_rate_limiter.h"
#include "proxy/net/stream.h"
#include "proxy/session/client_session.h"
#include "proxy/session/console_session.h"
#include "proxy/session/session_env.h"
#include "routing/router.h"
#include "routing/statement_classifier.h"
#include "routing/topology.h"
#include "tests/backend/test_backend_env.h"
#include "tests/support/scripted_backend.h"

namespace pgregion::testing {

// System identifier of the scripted cluster (read-your-writes tokens).
inline constexpr uint64_t kTestSystemId = 7'300'000'000'000'000'001ull;

class TestSessionEnv : public proxy::SessionEnv {
 public:
  // `backends[0]` is the primary, the others replicas. Trust user "alice".
  TestSessionEnv(uv_loop_t* loop, const std::vector<ScriptedBackend*>& backends,
                 proxy::Config config = TestConfig());
  ~TestSessionEnv();
  TestSessionEnv(const TestSessionEnv&) = delete;
  TestSessionEnv& operator=(const TestSessionEnv&) = delete;

  uint16_t port() const { return port_; }
  // A probe result for `node`: the primary's insert LSN, or a replica's replay LSN.
  void SetNodeLsn(int node, routing::Lsn lsn);
  TestBackendEnv& backend_env() { return backend_env_; }
  size_t session_count() const { return sessions_.size(); }
  size_t pool_count() const { return pools_.size(); }
  std::vector<std::pair<int, bool>> failures;  // ReportDataPathFailure
  uint64_t routed(int node, routing::RouteReason reason) const {
    return metrics_.routed_count(node, node_views_[static_cast<size_t>(node)].primary, reason);
  }

  // proxy::SessionEnv
  uv_loop_t* loop() const override { return loop_; }
  uint64_t NowMs() const override { return uv_now(loop_); }
  const proxy::Config& config() const override { return backend_env_.config(); }
  proxy::Metrics& metrics() override { return metrics_; }
  proxy::TlsContext* client_tls() const override { return nullptr; }
  const protocol::ScramVerifier* VerifierFor(const proxy::UserConfig*) const override {
    return &verifier_;
  }
  std::unique_ptr<proxy::ConsoleSession> OpenConsole(const proxy::UserConfig*,
                                                     std::string* error) override {
    *error = "no admin console in unit tests";
    return nullptr;
  }
  size_t node_count() const override { return config().nodes.size(); }
  const proxy::NodeConfig& node_config(int node) const override {
    return backend_env_.node_config(node);
  }
  const std::vector<routing::NodeView>& node_views() const override { return node_views_; }
  const routing::ClusterView& cluster_view() const override { return cluster_view_; }
  routing::TopologySnapshotPtr topology() const override { return topology_.snapshot(); }
  routing::Router& router() override { return router_; }
  routing::StatementClassifier& classifier() override { return classifier_; }
  bool NodePaused(int) const override { return false; }
  int WelcomeNode() const override { return 0; }
  std::string NoRouteMessage(routing::RouteBlock) const override { return "no route (test)"; }
  proxy::ReplayPoller* replay_poller() override { return nullptr; }
  void ReportDataPathFailure(int node, bool certain) override {
    failures.emplace_back(node, certain);
  }
  proxy::Pool* GetPool(int node, const std::string& database, const proxy::UserConfig& user,
                       const proxy::SessionParams& login) override;
  void RegisterClient(proxy::ClientSession*, uint32_t* pid, uint32_t* secret) override {
    *pid = ++next_pid_;
    *secret = 0x5ec;
  }
  void UnregisterClient(proxy::ClientSession*, uint32_t) override {}
  void HandleCancel(uint32_t, uint32_t) override {}
  // Recorded, and sent for real (the scripted backend records what it receives).
  void CancelBackend(const proxy::ServerConnection& server) override;
  std::vector<std::pair<int, uint32_t>> cancelled;  // CancelBackend: node, backend pid
  void OnAuthenticated(proxy::ClientSession*) override { ++authenticated_; }
  void OnSessionClosed(proxy::ClientSession* client) override {
    if (sessions_.erase(client) > 0 && authenticated_ > 0) --authenticated_;
  }
  size_t authenticated_count() const override { return authenticated_; }
  void WaitForRoute(proxy::ClientSession*) override { ++route_waits_; }
  void CancelRouteWait(proxy::ClientSession*) override {}
  proxy::LogRateLimiter& unauth_log() override { return unauth_log_; }
  bool draining() const override { return false; }

 private:
  static void OnConnection(uv_stream_t* server, int status);

  uv_loop_t* loop_;
  TestBackendEnv backend_env_;  // first: the pools outlive the sessions
  routing::Topology topology_;
  std::vector<routing::NodeView> node_views_;
  std::vector<uint32_t> outstanding_;
  std::vector<uint8_t> paused_;
  routing::ClusterView cluster_view_;
  routing::Router router_;
  routing::StatementClassifier classifier_;
  proxy::Metrics metrics_;
  protocol::ScramVerifier verifier_;
  proxy::LogRateLimiter unauth_log_;
  absl::flat_hash_map<std::tuple<int, std::string, std::string, std::string>, proxy::Pool*> pools_;
  absl::flat_hash_set<proxy::ClientSession*> sessions_;
  size_t authenticated_ = 0;
  size_t route_waits_ = 0;
  uint32_t next_pid_ = 0;
  // Adds a node per backend to the config (before anything reads it).
  std::vector<routing::NodeSpec> AddNodes(const std::vector<ScriptedBackend*>& backends);

  struct SessionListener* listener_ = nullptr;
  uint16_t port_ = 0;
};

}  // namespace pgregion::testing
