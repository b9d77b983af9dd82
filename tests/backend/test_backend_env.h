// What pools and server connections need of the process, for unit tests: a
// BackendEnv over a Config built in the test and the addresses of scripted
// backends (tests/support/scripted_backend.h), which records what the backend
// library reports (data-path failures, requests in flight). Also a
// ServerClient that records everything it is told (FakeClient). Loop thread.
#pragma once

#include <netinet/in.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/message_builder.h"
#include "protocol/reply_tracker.h"
#include "proxy/backend/backend_env.h"
#include "proxy/backend/pool.h"
#include "proxy/backend/server_client.h"
#include "proxy/backend/server_connection.h"
#include "proxy/config/config.h"
#include "proxy/net/flush_queue.h"
#include "tests/support/scripted_backend.h"
#include "tests/support/test_client.h"

namespace pgregion::testing {

// A Config for data-path tests: short timeouts, so failures show within a test.
inline proxy::Config TestConfig() {
  proxy::Config config;
  config.pool.size = 4;
  config.pool.connect_timeout_ms = 1000;
  config.pool.acquire_timeout_ms = 2000;
  config.proxy.auth_failure_delay_ms = 0;
  return config;
}

class TestBackendEnv : public proxy::BackendEnv {
 public:
  explicit TestBackendEnv(uv_loop_t* loop, proxy::Config config = TestConfig())
      : loop_(loop), flush_(proxy::FlushQueue::Create(loop)), config_(std::move(config)) {}
  ~TestBackendEnv() {
    // Connections close (their close callbacks run on the TestLoop later);
    // nothing may reach a pool after it is gone.
    for (auto& pool : pools_) pool->CloseAll();
    pools_.clear();
    flush_->Close();
  }
  TestBackendEnv(const TestBackendEnv&) = delete;
  TestBackendEnv& operator=(const TestBackendEnv&) = delete;

  // Nodes are added before any pool (node_config() hands out references).
  int AddNode(std::string name, const sockaddr_in& addr, std::string region = "local") {
    config_.nodes.push_back(
        proxy::NodeConfig{std::move(name), std::move(region), "127.0.0.1", ntohs(addr.sin_port)});
    addrs_.push_back(addr);
    paused_.push_back(false);
    outstanding_.push_back(0);
    return static_cast<int>(config_.nodes.size()) - 1;
  }
  proxy::Pool* MakePool(int node, std::string user = "alice", std::string password = "secret",
                        std::string database = "appdb", proxy::SessionParams login = {}) {
    pools_.push_back(std::make_unique<proxy::Pool>(this, node, database, user, user, password,
                                                   std::move(login)));
    return pools_.back().get();
  }
  proxy::Config& mutable_config() { return config_; }
  void set_paused(int node, bool paused) { paused_[static_cast<size_t>(node)] = paused; }

  // What the backend library reported.
  std::vector<std::pair<int, bool>> failures;  // ReportDataPathFailure(node, certain)
  int64_t outstanding(int node) const { return outstanding_[static_cast<size_t>(node)]; }

  // proxy::BackendEnv
  uv_loop_t* loop() const override { return loop_; }
  proxy::FlushQueue* flush_queue() const override { return flush_; }
  const proxy::Config& config() const override { return config_; }
  const proxy::NodeConfig& node_config(int node) const override {
    return config_.nodes[static_cast<size_t>(node)];
  }
  const sockaddr* node_address(int node) const override {
    return reinterpret_cast<const sockaddr*>(&addrs_[static_cast<size_t>(node)]);
  }
  proxy::TlsContext* server_tls() const override { return nullptr; }
  bool NodePaused(int node) const override { return paused_[static_cast<size_t>(node)]; }
  void ReportDataPathFailure(int node, bool certain) override {
    failures.emplace_back(node, certain);
  }
  void AddOutstanding(int node, int64_t delta) override {
    outstanding_[static_cast<size_t>(node)] += delta;
  }
  uint64_t NextServerId() override { return ++next_server_id_; }

 private:
  uv_loop_t* loop_;
  proxy::FlushQueue* flush_;
  proxy::Config config_;
  std::vector<sockaddr_in> addrs_;
  std::vector<bool> paused_;
  std::vector<int64_t> outstanding_;
  uint64_t next_server_id_ = 0;
  std::vector<std::unique_ptr<proxy::Pool>> pools_;
};

// A ServerClient that binds what it is assigned and records everything. By
// default it hands a clean connection back to its pool when a unit is done
// (what a session in transaction pooling does).
class FakeClient : public proxy::ServerClient {
 public:
  explicit FakeClient(uint32_t pid = 1) : pid_(pid) {}

  // Writes simple Queries to the bound server, each expected as the client's.
  void Query(std::string_view text) { Queries({std::string(text)}); }
  void Queries(const std::vector<std::string>& texts) {
    std::string out;
    for (const std::string& t : texts) {
      protocol::AppendQuery(&out, t);
      server->tracker().Expect(protocol::ReplyTracker::Owner::kClient);
    }
    server->Write(out);
    server->Flush();
  }
  std::string Types() const { return MessageTypes(forwarded); }

  // Behaviour.
  bool release_on_done = true;
  std::function<void()> after_done;  // runs at the end of OnServerUnitDone

  // What it was told.
  proxy::ServerConnection* server = nullptr;
  int assigned = 0;
  std::vector<std::pair<std::string, bool>> failed;  // (ErrorResponse, node_failure)
  std::string forwarded;
  int units_done = 0;
  std::vector<std::string> lost;
  std::vector<std::string> errors;  // ErrorResponse bodies
  std::vector<std::pair<std::string, std::string>> parameters;

  // proxy::ServerClient
  void OnServerAssigned(proxy::ServerConnection* s) override {
    ++assigned;
    server = s;
    s->Bind(this);
  }
  void OnServerFailed(const std::string& error_response, bool node_failure) override {
    failed.emplace_back(error_response, node_failure);
  }
  void ForwardToClient(std::string_view bytes) override { forwarded.append(bytes); }
  void FlushToClient() override {}
  bool ForwardsPlainly() const override { return true; }
  bool HoldReadyForQuery(std::string_view) override { return false; }
  void OnLsnProbeDone(const proxy::LsnProbeAnswer&) override {}
  void OnIdentityRestored(std::string_view, std::string_view) override {}
  void OnCustomParameterReplayed(std::string_view) override {}
  void OnServerParameter(std::string_view name, std::string_view value) override {
    parameters.emplace_back(name, value);
  }
  void OnServerUnitDone() override {
    ++units_done;
    if (release_on_done && server != nullptr && server->clean()) {
      proxy::ServerConnection* s = server;
      server = nullptr;
      s->Unbind();
      s->pool()->Release(s);
    }
    if (after_done) after_done();
  }
  void OnServerError(std::string_view body) override { errors.emplace_back(body); }
  void OnServerLost(std::string_view why) override {
    lost.emplace_back(why);
    server = nullptr;
  }
  void OnServerDrained() override {}
  void OnNodeHung(int) override {}
  uint32_t pid() const override { return pid_; }

 private:
  uint32_t pid_;
};

// Acquires for `client` (with its custom-parameter names) and runs the loop
// until it has its connection.
inline bool AcquireNow(uv_loop_t* loop, proxy::Pool* pool, FakeClient* client,
                       uint64_t custom_names = 0) {
  pool->Acquire(client, custom_names);
  return RunUntil(loop, [&] { return client->server != nullptr; });
}

// What a session does with its connection at the end of a unit.
inline void Release(proxy::Pool* pool, FakeClient* client) {
  proxy::ServerConnection* s = client->server;
  client->server = nullptr;
  s->Unbind();
  pool->Release(s);
}

}  // namespace pgregion::testing
