// What a client session needs of the process around it: configuration, the
// router and what it reads, pools, the client registry (cancel keys,
// admission), metrics, and the admin console. The ProxyApp implements it; it
// is the session library's only way out, so sessions can be unit-tested in an
// environment of the test's own (tests/session/).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "protocol/scram.h"
#include "proxy/admin/metrics.h"
#include "proxy/backend/session_params.h"
#include "proxy/config/config.h"
#include "proxy/net/log_rate_limiter.h"
#include "routing/router.h"
#include "routing/statement_classifier.h"
#include "routing/topology_snapshot.h"

namespace pgregion::proxy {

class ClientSession;
class ConsoleSession;
class Pool;
class ReplayPoller;
class ServerConnection;
class TlsContext;

class SessionEnv {
 public:
  // Distinct login-parameter sets (pools) per (database, user); past it, 53300.
  static constexpr size_t kMaxLoginVariants = 16;

  virtual uv_loop_t* loop() const = 0;
  virtual uint64_t NowMs() const = 0;
  virtual const Config& config() const = 0;
  virtual Metrics& metrics() = 0;
  // Null when client TLS is off.
  virtual TlsContext* client_tls() const = 0;
  virtual const protocol::ScramVerifier* VerifierFor(const UserConfig* user) const = 0;
  // The admin console for `user`, or null with the reason it may not use it.
  virtual std::unique_ptr<ConsoleSession> OpenConsole(const UserConfig* user,
                                                      std::string* error) = 0;

  // Routing: the nodes, what the router reads, the router itself.
  virtual size_t node_count() const = 0;
  virtual const NodeConfig& node_config(int node) const = 0;
  virtual const std::vector<routing::NodeView>& node_views() const = 0;
  virtual const routing::ClusterView& cluster_view() const = 0;
  virtual routing::TopologySnapshotPtr topology() const = 0;
  virtual routing::Router& router() = 0;
  virtual routing::StatementClassifier& classifier() = 0;
  virtual bool NodePaused(int node) const = 0;
  virtual int WelcomeNode() const = 0;
  virtual std::string NoRouteMessage(routing::RouteBlock block) const = 0;
  // Null before the proxy started.
  virtual ReplayPoller* replay_poller() = 0;
  virtual void ReportDataPathFailure(int node, bool certain) = 0;
  // The pool of `node` for this client's database, user and login parameters;
  // null past the bound on login-parameter variants.
  virtual Pool* GetPool(int node, const std::string& database, const UserConfig& user,
                        const SessionParams& login) = 0;

  // Client registry and admission.
  virtual void RegisterClient(ClientSession* client, uint32_t* pid, uint32_t* secret) = 0;
  virtual void UnregisterClient(ClientSession* client, uint32_t pid) = 0;
  virtual void HandleCancel(uint32_t pid, uint32_t secret) = 0;
  // Cancels what `server`'s backend is running (a CancelRequest to its node),
  // for a read abandoned there: closing the connection alone would leave
  // PostgreSQL running the query until it next writes to the socket.
  virtual void CancelBackend(const ServerConnection& server) = 0;
  virtual void OnAuthenticated(ClientSession* client) = 0;
  virtual void OnSessionClosed(ClientSession* client) = 0;
  virtual size_t authenticated_count() const = 0;
  // The unit waits for a route (no primary during a failover): RetryRoute() later.
  virtual void WaitForRoute(ClientSession* client) = 0;
  virtual void CancelRouteWait(ClientSession* client) = 0;
  virtual LogRateLimiter& unauth_log() = 0;
  // SIGTERM: no new units.
  virtual bool draining() const = 0;

  // Databases (proxy/app/proxy_app_databases.cc). Defaults for environments
  // that keep no such state (unit tests).
  // Nodes that refused a login to `database` as `user` because they do not
  // have it yet (bit i = node i): reads avoid them for a while.
  virtual uint64_t NodesMissing(const std::string& /*database*/, const std::string& /*user*/) {
    return 0;
  }
  // A statement about to be sent needs no other session in `database` (DROP,
  // RENAME, a CREATE DATABASE template): close the idle server connections to it.
  virtual void VacateDatabase(const std::string& /*database*/) {}
  // The tenant directory ([[tenants]], [tenancy]; issue 20), or null when
  // tenant routing is not configured. Replaced whole on reload.
  // A reference: the session copies the pointer only for units that have a
  // tenant with a policy.
  virtual const std::shared_ptr<const routing::TenantDirectory>& tenants() const {
    static const std::shared_ptr<const routing::TenantDirectory> kNone;
    return kNone;
  }

 protected:
  ~SessionEnv() = default;
};

}  // namespace pgregion::proxy
