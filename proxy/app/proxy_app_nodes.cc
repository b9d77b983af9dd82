// ProxyApp: changes to the set of nodes in service while clients stay
// connected: nodes a reload adds or removes, and the admin console's PAUSE /
// RESUME. Indices are never reused or shifted (proxy_app.h). And nodes that
// turn suspect: the reads running there go elsewhere.

#include <algorithm>
#include <vector>

#include "protocol/str_util.h"
#include "proxy/app/proxy_app.h"
#include "proxy/backend/pool.h"
#include "proxy/backend/server_connection.h"
#include "proxy/net/log.h"
#include "proxy/session/client_session.h"

namespace pgregion::proxy {

void ProxyApp::SyncPaused() {
  paused_.resize(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    paused_[i] = nodes_[i].paused || nodes_[i].retired ? 1 : 0;
  }
  cluster_view_.paused = paused_;  // the vector may have moved
}

size_t ProxyApp::CloseIdle(size_t node, std::string_view why) {
  size_t closed = 0;
  for (auto& [key, pool] : pools_) {
    if (pool->node() == static_cast<int>(node)) closed += pool->CloseIdle(why);
  }
  return closed;
}

int ProxyApp::ActiveNode(std::string_view name) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i].retired && nodes_[i].config.name == name) return static_cast<int>(i);
  }
  return -1;
}

size_t ProxyApp::AddNode(NodeRuntime node) {
  const size_t index = nodes_.size();
  node.paused = pause_all_;
  node.retired = false;
  const NodeConfig config = node.config;
  nodes_.push_back(std::move(node));
  logged_roles_.push_back(routing::NodeRole::kUnknown);
  // Before roles are discovered every node counts as up (NodeView); after, it
  // is up from its first successful probe.
  node_views_.push_back(routing::NodeView{.up = !roles_discovered_, .primary = false});
  outstanding_.push_back(0);
  cluster_view_.outstanding = outstanding_;  // the vector may have moved
  SyncPaused();
  latency_.Grow(nodes_.size());
  metrics_.AddNode(config.name, config.region);
  topology_.AddNode(routing::NodeSpec{config.name, config.region}, NowMs());
  cluster_view_.node_count = nodes_.size();
  OnTopologyUpdate(index, routing::TopologyUpdate{});  // cluster_view_ takes the new snapshot
  LogInfo("node_added")
      .Kv("node", config.name)
      .Kv("region", config.region)
      .Kv("addr", StrCat(config.host, ":", config.port))
      .Kv("index", static_cast<uint64_t>(index))
      .Kv("paused", pause_all_ ? "true" : "false");
  return index;
}

void ProxyApp::RetireNode(size_t node) {
  NodeRuntime& n = nodes_[node];
  if (n.retired) return;
  n.retired = true;
  SyncPaused();
  metrics_.RetireNode(node);
  // Down for good: if it was the primary, writes now wait as in a failover.
  OnTopologyUpdate(node, topology_.RetireNode(node, NowMs()));
  const size_t closed = CloseIdle(node, "node removed from the configuration");
  LogInfo("node_removed")
      .Kv("node", n.config.name)
      .Kv("region", n.config.region)
      .Kv("addr", StrCat(n.config.host, ":", n.config.port))
      .Kv("closed_idle", static_cast<uint64_t>(closed))
      .Kv("detail", "no new units; connections in use close when released");
}

void ProxyApp::AbandonHungReads(size_t node) {
  // Collected first: a retry closes server connections and may open pools.
  std::vector<ServerClient*> sessions;
  for (auto& [key, pool] : pools_) {
    if (pool->node() != static_cast<int>(node)) continue;
    for (ServerConnection* server : pool->connections()) {
      if (server->state() == ServerConnection::State::kActive && server->client() != nullptr) {
        sessions.push_back(server->client());
      }
    }
    for (const Pool::Waiter& w : pool->waiters()) sessions.push_back(w.client);
  }
  std::sort(sessions.begin(), sessions.end());
  sessions.erase(std::unique(sessions.begin(), sessions.end()), sessions.end());
  if (sessions.empty()) return;
  LogWarn("node_suspect")
      .Kv("node", nodes_[node].config.name)
      .Kv("sessions", static_cast<uint64_t>(sessions.size()))
      .Kv("detail", "a probe timed out: no new reads; retryable reads running there go elsewhere");
  // Each call only touches its own session (it releases or closes its own server).
  for (ServerClient* c : sessions) c->OnNodeHung(static_cast<int>(node));
}

void ProxyApp::RestartHealthChecker() {
  // The topology stays: the new probes continue it.
  if (health_ != nullptr) health_->Stop();
  StartHealthChecker();
}

absl::Status ProxyApp::Pause(std::string_view name) {
  std::vector<size_t> affected;
  if (name.empty()) {
    pause_all_ = true;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i].retired) affected.push_back(i);
    }
  } else {
    const int i = ActiveNode(name);
    if (i < 0) return absl::NotFoundError(StrCat("no node named \"", name, "\" is configured"));
    affected.push_back(static_cast<size_t>(i));
  }
  for (size_t i : affected) nodes_[i].paused = true;
  SyncPaused();
  size_t closed = 0;
  for (size_t i : affected) closed += CloseIdle(i, "node paused");
  LogInfo("node_paused")
      .Kv("node", name.empty() ? std::string_view("*") : name)
      .Kv("closed_idle", static_cast<uint64_t>(closed))
      .Kv("detail", "no new units until RESUME; units running there finish");
  return absl::OkStatus();
}

absl::Status ProxyApp::Resume(std::string_view name) {
  if (name.empty()) {
    for (NodeRuntime& n : nodes_) n.paused = false;
  } else {
    const int i = ActiveNode(name);
    if (i < 0) return absl::NotFoundError(StrCat("no node named \"", name, "\" is configured"));
    nodes_[static_cast<size_t>(i)].paused = false;
  }
  // Nodes a reload adds from now on start in service, whatever stays paused.
  pause_all_ = false;
  SyncPaused();
  LogInfo("node_resumed").Kv("node", name.empty() ? std::string_view("*") : name);
  WakeRouteWaiters();  // units parked on a paused primary go now
  return absl::OkStatus();
}

}  // namespace pgregion::proxy
