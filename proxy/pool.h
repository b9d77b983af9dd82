// Server connections to one node for one (database, user).
//
// Keeps idle connections (LIFO, so the warmest is reused), a FIFO of client
// sessions waiting for one, and opens new connections up to `pool.size` for
// waiters and for `min_idle`. Hands a connection to a waiter synchronously.
// Owns its ServerConnections (they free themselves in their close callbacks
// after telling the pool). Owned by the ProxyApp; loop thread.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "proxy/session_params.h"

namespace pgregion::proxy {

class ClientSession;
class ProxyApp;
class ServerConnection;

class Pool {
 public:
  Pool(ProxyApp* app, int node, std::string database, std::string user, std::string server_user,
       std::string server_password);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Gives `client` a connection now (ClientSession::OnServerAssigned) or queues it.
  void Acquire(ClientSession* client);
  void CancelWait(ClientSession* client);
  // A clean, unbound connection comes back.
  void Release(ServerConnection* server);
  // A connection is closing (any state); forget it.
  void Remove(ServerConnection* server);
  void OnLoginDone(ServerConnection* server);
  // `error_response`: an ErrorResponse to show the waiting client.
  // `node_failure`: the node failed (reported to the health checker at once).
  void OnLoginFailed(ServerConnection* server, const std::string& error_response,
                     bool node_failure);
  // Idle timeout and min_idle upkeep; called by the janitor.
  void Sweep(uint64_t now_ms);
  // Closes every connection (shutdown).
  void CloseAll();

  ProxyApp* app() const { return app_; }
  int node() const { return node_; }
  const std::string& database() const { return database_; }
  const std::string& user() const { return user_; }
  const std::string& server_user() const { return server_user_; }
  const std::string& server_password() const { return server_password_; }

  // ParameterStatus values a fresh backend reports, learned from the first login.
  bool has_params() const { return has_params_; }
  const SessionParams& params() const { return params_; }

  size_t idle_count() const { return idle_.size(); }
  size_t total_count() const { return all_.size(); }
  size_t connecting_count() const { return connecting_; }
  size_t waiter_count() const { return waiters_.size(); }
  const absl::flat_hash_set<ServerConnection*>& connections() const { return all_; }

 private:
  void MaybeConnect();
  void Spawn();

  ProxyApp* app_;
  int node_;
  std::string database_;
  std::string user_;
  std::string server_user_;
  std::string server_password_;
  std::vector<ServerConnection*> idle_;
  std::deque<ClientSession*> waiters_;
  absl::flat_hash_set<ServerConnection*> all_;
  size_t connecting_ = 0;
  bool has_params_ = false;
  SessionParams params_;
};

}  // namespace pgregion::proxy
