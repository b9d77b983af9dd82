// The proxy instance: the libuv loop's owner of the listener, client sessions,
// pools, TLS contexts, the router, the topology and its health checker, and the
// janitor timer. One per process, on the loop thread. Config is immutable; a
// reload would build a new one.
//
// Node roles are discovered by the health checker. The router reads them
// through cluster_view(), which this class keeps current: the latest topology
// snapshot (held here, so the pointer stays valid until the next update), the
// requests in flight per node (kept by the pools), the local region and lag
// limit from the config, and the latency tracker. Until the topology has had
// exactly one primary for the first time (normally one probe interval after
// Start), roles_discovered is false and the router keeps the static rule "the
// first configured node is the primary" so a proxy serves at once.
//
// Topology changes also drive: waking units parked for a route (no primary
// during a failover), draining the pools of a node whose role changed, and the
// slow start of a re-admitted replica.
//
// Node indices are stable for the life of the process: everything per node
// (nodes_, node_views_, outstanding_, paused_, pools, the Topology, the
// latency tracker, Metrics, sessions' pool caches, read-retry bitmasks) is
// indexed by them. A reload appends the nodes it adds and retires the ones it
// removes in place (a node whose address or region changed is both): a
// retired node is paused for good, is never probed or up again, and its pools
// drain. PAUSE marks a node paused: no new units (ClusterView::paused); its idle
// server connections close now and the others when they come back with no
// client waiting for them.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "protocol/scram.h"
#include "proxy/admin/metrics.h"
#include "proxy/app/pre_auth_budget.h"
#include "proxy/backend/backend_env.h"
#include "proxy/backend/health_checker.h"
#include "proxy/backend/replay_poller.h"
#include "proxy/backend/session_params.h"
#include "proxy/backend/tenant_map_loader.h"
#include "proxy/config/config.h"
#include "proxy/net/flush_queue.h"
#include "proxy/net/log_rate_limiter.h"
#include "proxy/net/tls_context.h"
#include "proxy/session/session_env.h"
#include "routing/latency_tracker.h"
#include "routing/missing_objects.h"
#include "routing/router.h"
#include "routing/statement_classifier.h"
#include "routing/topology.h"
#include "routing/topology_snapshot.h"

namespace pgregion::proxy {

class AdminEndpoints;
class ClientSession;
class Pool;

struct NodeRuntime {
  NodeConfig config;
  sockaddr_storage addr{};
  bool paused = false;   // PAUSE (admin console) until RESUME
  bool retired = false;  // removed from the configuration by a reload
};

class ProxyApp final : public SessionEnv,
                       public BackendEnv,
                       private HealthChecker::Observer,
                       private TenantMapLoader::Observer {
 public:
  ProxyApp(uv_loop_t* loop, std::shared_ptr<const Config> config);
  ~ProxyApp();
  ProxyApp(const ProxyApp&) = delete;
  ProxyApp& operator=(const ProxyApp&) = delete;

  absl::Status Start();
  // Stops accepting and closes everything; the loop then runs dry.
  void Shutdown(std::string_view why);
  // Re-reads the config file and applies what can change live (config_reload.h);
  // an unreadable, invalid or not applicable file changes nothing. Logs either way.
  absl::Status Reload(std::string_view trigger);
  // The admin console's PAUSE / RESUME of the node named `name` (every node
  // when empty). NotFound for a name that is not configured.
  absl::Status Pause(std::string_view name);
  absl::Status Resume(std::string_view name);
  // No new units go to `node`: paused, or retired by a reload.
  bool NodePaused(int node) const override {
    return node >= 0 && static_cast<size_t>(node) < paused_.size() &&
           paused_[static_cast<size_t>(node)] != 0;
  }
  // PAUSE without a node name is in effect (nodes added meanwhile start paused).
  bool all_paused() const { return pause_all_; }

  uv_loop_t* loop() const override { return loop_; }
  const std::shared_ptr<const routing::TenantDirectory>& tenants() const override {
    return tenants_;
  }
  // Where the streams of client sessions and server connections defer sends.
  FlushQueue* flush_queue() const override { return flush_queue_; }
  const Config& config() const override { return *config_; }
  uint64_t NowMs() const override { return uv_now(loop_); }

  // `login`: the startup parameters its connections log in with (Pool).
  // Null when `login` would be a new parameter set past kMaxLoginVariants.
  Pool* GetPool(int node, const std::string& database, const UserConfig& user,
                const SessionParams& login) override;
  // Every node ever configured, by index; retired ones included.
  const NodeRuntime& node(int i) const { return nodes_[static_cast<size_t>(i)]; }
  size_t node_count() const override { return nodes_.size(); }
  const NodeConfig& node_config(int i) const override { return node(i).config; }
  const sockaddr* node_address(int i) const override {
    return reinterpret_cast<const sockaddr*>(&node(i).addr);
  }
  // What the router reads; its address is stable and its contents current.
  const routing::ClusterView& cluster_view() const override { return cluster_view_; }
  // Per node: up, and whether it is the primary (the static rule until roles
  // are discovered). For the session's retry and pipelining checks.
  const std::vector<routing::NodeView>& node_views() const override { return node_views_; }
  // The latest topology snapshot (never null; all nodes unknown before the
  // first probe). Hold the pointer for as long as a decision needs it.
  routing::TopologySnapshotPtr topology() const override { return topology_.snapshot(); }
  // False until the topology has had a single primary once (see above).
  bool roles_discovered() const { return roles_discovered_; }
  // The node whose pool a new client learns the backend's parameters from:
  // the primary, else an up node (a login must not depend on the primary
  // during a failover), else the first configured node.
  int WelcomeNode() const override;
  // The proxy's own traffic to `node` failed (HealthChecker::ReportDataPathFailure);
  // cluster_view() follows before this returns.
  void ReportDataPathFailure(int node, bool certain) override;
  // Pools report their requests in flight (bound connections and queued
  // clients) as deltas; the replica selector weighs latency by them.
  void AddOutstanding(int node, int64_t delta) override;
  // What a client is told when no node can serve its unit: names the cause
  // (which nodes claim the primary role, or what each node is doing).
  std::string NoRouteMessage(routing::RouteBlock block) const override;
  std::string PausedMessage() const;
  routing::Router& router() override { return router_; }
  // Polls replicas that causal reads wait on; null before Start.
  ReplayPoller* replay_poller() override { return replay_poller_.get(); }
  routing::StatementClassifier& classifier() override { return *classifier_; }

  TlsContext* client_tls() const override { return client_tls_.get(); }
  TlsContext* server_tls() const override { return server_tls_.get(); }
  // The user's SCRAM verifier; a decoy for unknown users.
  const protocol::ScramVerifier* VerifierFor(const UserConfig* user) const override;
  std::unique_ptr<ConsoleSession> OpenConsole(const UserConfig* user, std::string* error) override;

  // Client registry: the proxy's BackendKeyData for each session.
  void RegisterClient(ClientSession* client, uint32_t* pid, uint32_t* secret) override;
  void UnregisterClient(ClientSession* client, uint32_t pid) override;
  void HandleCancel(uint32_t pid, uint32_t secret) override;
  void CancelBackend(const ServerConnection& server) override;
  // Every accepted client connection, logged in or not.
  size_t client_count() const { return sessions_.size(); }
  void OnSessionClosed(ClientSession* client) override {
    pre_auth_.Remove(client);
    sessions_.erase(client);
    route_waiters_.erase(client);
  }
  // Sessions whose unit no node can serve right now (no primary during a
  // failover) wait here and are retried whenever the topology changes.
  void WaitForRoute(ClientSession* client) override { route_waiters_.insert(client); }
  // The client logged in: it no longer counts against the pre-auth budget.
  void OnAuthenticated(ClientSession* client) override { pre_auth_.Remove(client); }
  size_t unauthenticated_count() const { return pre_auth_.size(); }
  // Sessions past the pre-auth budget: logged in (or being refused).
  size_t authenticated_count() const override { return sessions_.size() - pre_auth_.size(); }
  // Log lines of events that need no login (cancel keys, failed logins).
  LogRateLimiter& unauth_log() override { return unauth_log_; }
  void CancelRouteWait(ClientSession* client) override { route_waiters_.erase(client); }
  uint64_t NextServerId() override { return ++next_server_id_; }
  // Databases (proxy_app_databases.cc): replicas that do not have one yet,
  // and idle connections closed before DROP/RENAME/CREATE ... TEMPLATE.
  void OnLoginRefusedMissing(int node, const std::string& database,
                             const std::string& user) override;
  void OnLoginAccepted(int node, const std::string& database, const std::string& user) override;
  uint64_t NodesMissing(const std::string& database, const std::string& user) override;
  void VacateDatabase(const std::string& database) override;

  // Observability (metrics.h, admin_endpoints.h).
  Metrics& metrics() override { return metrics_; }
  const absl::flat_hash_set<ClientSession*>& sessions() const { return sessions_; }
  const auto& pools() const { return pools_; }
  bool shutting_down() const { return shutting_down_; }
  // SIGTERM: no new clients; running units finish (graceful_shutdown.h).
  bool draining() const override { return draining_; }

 private:
  static void OnConnection(uv_stream_t* server, int status);
  static void OnJanitor(uv_timer_t* t);
  static void OnSignal(uv_signal_t* s, int signum);

  absl::Status ResolveNodes();
  // A node's address (a host name is looked up: blocking, but only at startup
  // and for nodes a reload adds).
  static absl::StatusOr<NodeRuntime> ResolveNode(const NodeConfig& node);
  absl::Status BuildCredentials();
  void StartHealthChecker();
  // HealthChecker::Observer
  void OnTopologyUpdate(size_t node, const routing::TopologyUpdate& update) override;
  void LogTopologyUpdate(size_t node, const routing::TopologyUpdate& update,
                         const routing::TopologySnapshot& snap);
  // Closes the idle server connections to `node` and those in use once released.
  void DrainNode(size_t node, std::string_view why);
  // Closes the idle server connections to `node` (it was paused or retired:
  // the others close when released, Pool::Release). Returns how many.
  size_t CloseIdle(size_t node, std::string_view why);
  // Retries the units parked for a route (the topology or a pause changed).
  void WakeRouteWaiters();
  // `node` turned suspect: retryable reads running or queued there go elsewhere
  // (proxy_app_nodes.cc).
  void AbandonHungReads(size_t node);
  // paused_ from nodes_ (cluster_view_ holds a span of it).
  void SyncPaused();
  // Reload (proxy_app_reload.cc): the index of the node named `name` that is
  // not retired, or -1.
  int ActiveNode(std::string_view name) const;
  // Appends a node (resolved) to every per-node structure; returns its index.
  size_t AddNode(NodeRuntime node);
  void RetireNode(size_t node);
  void RestartHealthChecker();
  // The probe target of `node` (its numeric address, for libpq).
  HealthTarget TargetOf(size_t node) const;
  // Tenants (proxy_app_tenants.cc): tenants_ from config_ and the last good
  // mapping; the mapping's loader (re)started from config_, or stopped.
  void ApplyTenancy();
  void StartTenantMap();
  // TenantMapLoader::Observer
  std::optional<HealthTarget> TenantMapTarget() override;
  void OnTenantMapLoaded(std::shared_ptr<const routing::TenantMap> map,
                         const TenantMapLoadStats& stats) override;
  void OnTenantMapFailed(const std::string& why) override;
  // cluster_view_'s settings from config_ (at startup and after a reload).
  void ApplyRoutingConfig();

  uv_loop_t* loop_;
  FlushQueue* flush_queue_;  // closed (and so freed) by ~ProxyApp
  std::shared_ptr<const Config> config_;
  // From config_ ([[tenants]], [tenancy]); null: tenant routing is off.
  std::shared_ptr<const routing::TenantDirectory> tenants_;
  // The last good mapping read by tenant_loader_ ([tenancy] query); null
  // before the first or without a query.
  std::shared_ptr<const routing::TenantMap> tenant_map_;
  std::unique_ptr<TenantMapLoader> tenant_loader_;
  TenantMapLoaderOptions tenant_map_options_;  // tenant_loader_'s
  // Configs replaced by reloads: sessions keep pointers into the one they logged
  // in with (their [[users]] entry). Reloads are rare; they are kept for good.
  std::vector<std::shared_ptr<const Config>> retired_configs_;
  uv_tcp_t listener_;
  uv_timer_t janitor_;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  uv_signal_t sighup_;
  bool started_ = false;
  bool shutting_down_ = false;
  bool draining_ = false;
  std::vector<NodeRuntime> nodes_;
  routing::Topology topology_;
  std::unique_ptr<HealthChecker> health_;
  std::unique_ptr<ReplayPoller> replay_poller_;
  bool roles_discovered_ = false;
  std::vector<routing::NodeRole> logged_roles_;  // last role logged per node
  // The snapshot cluster_view_ points into (kept alive until the next update).
  routing::TopologySnapshotPtr routed_topology_;
  std::vector<routing::NodeView> node_views_;
  std::vector<uint32_t> outstanding_;  // by node; cluster_view_ holds a span of it
  std::vector<uint8_t> paused_;        // by node: paused or retired; cluster_view_ holds a span
  bool pause_all_ = false;
  routing::LatencyTracker latency_;
  routing::ClusterView cluster_view_;
  routing::Router router_;
  std::unique_ptr<routing::StatementClassifier> classifier_;
  std::unique_ptr<TlsContext> client_tls_;
  std::unique_ptr<TlsContext> server_tls_;
  absl::flat_hash_map<std::string, protocol::ScramVerifier> verifiers_;
  protocol::ScramVerifier decoy_verifier_;
  // node, database, user, login parameters (PoolLoginKey)
  absl::flat_hash_map<std::tuple<int, std::string, std::string, std::string>, std::unique_ptr<Pool>>
      pools_;
  // Distinct login-parameter sets per (database, user): bounded, so that
  // clients varying their startup options cannot multiply pools (and server
  // connections) without end.
  absl::flat_hash_map<std::pair<std::string, std::string>, absl::flat_hash_set<std::string>>
      login_variants_;
  absl::flat_hash_set<ClientSession*> sessions_;
  // The sessions of sessions_ not yet logged in, oldest first (admission).
  PreAuthBudget pre_auth_{0};
  LogRateLimiter unauth_log_;
  absl::flat_hash_set<ClientSession*> route_waiters_;
  absl::flat_hash_map<uint32_t, ClientSession*> clients_;  // by proxy pid, logged in
  uint32_t next_pid_ = 0;
  uint64_t next_server_id_ = 0;
  Metrics metrics_;
  routing::MissingObjects missing_;  // (node, database, user) refused as missing
  std::unique_ptr<AdminEndpoints> admin_;
};

}  // namespace pgregion::proxy
