// Server connections to one node for one (database, user).
//
// Keeps idle connections (LIFO, so the warmest is reused), a FIFO of client
// sessions waiting for one, and opens new connections up to `pool.size` for
// waiters and for `min_idle`. Hands a connection to a waiter synchronously.
// Owns its ServerConnections (they free themselves in their close callbacks
// after telling the pool). Owned by the ProxyApp; loop thread. Knows the process only
// through its BackendEnv, and clients only as ServerClients.
//
// Also reports to the ProxyApp what the router needs of it: its requests in
// flight (connections in use plus queued clients, as deltas after every
// change) and login failures that mean the node failed (refused, timed out,
// 57P0x: a data-path failure, before the waiting client retries elsewhere).
// Drain() retires every connection that exists at that moment (the node
// changed role): idle ones close now, the others close when they come back
// instead of going idle. (A set of the retired connections rather than a
// generation number per connection: it is empty, and costs one branch per
// release, except right after a role change.)
//
// A paused node (PAUSE, or removed by a reload: ProxyApp::NodePaused) keeps
// no idle connection: one that comes back goes to a client already queued
// here, else it closes; CloseIdle() closes the idle ones at the pause, and the
// janitor does not open min_idle connections to it.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "proxy/backend/backend_env.h"
#include "proxy/backend/server_client.h"
#include "proxy/backend/session_params.h"

namespace pgregion::proxy {

class ServerConnection;

class Pool {
 public:
  // `login`: run-time parameters every connection of this pool logs in with
  // (the startup parameters of its clients), so that RESET, RESET ALL and
  // DISCARD ALL go back to the client's own startup values, as in PostgreSQL.
  Pool(BackendEnv* env, int node, std::string database, std::string user, std::string server_user,
       std::string server_password, SessionParams login = {});
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Gives `client` a connection now (ServerClient::OnServerAssigned) or queues it.
  // `custom_names`: the client's custom-parameter placeholders
  // (SessionState::CustomNames): it gets a connection with the same ones, or
  // with none (its replay creates them), never one with another client's.
  void Acquire(ServerClient* client, uint64_t custom_names = 0);
  void CancelWait(ServerClient* client);
  // A clean, unbound connection comes back.
  void Release(ServerConnection* server);
  // The end of a release deferred by ServerConnection::DeferRelease: `usable`
  // when the connection is still idle and unbound.
  void FinishRelease(ServerConnection* server, bool usable);
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
  struct DrainResult {
    size_t closed = 0;    // idle connections closed now
    size_t draining = 0;  // in use or logging in: closed when released
  };
  DrainResult Drain(std::string_view why);
  // Closes the idle connections now (the node was paused); returns how many.
  size_t CloseIdle(std::string_view why);
  // Before DROP DATABASE / ALTER DATABASE ... RENAME of this pool's database
  // (or CREATE DATABASE copying it): closes the idle connections now, opens
  // no min_idle ones before `until_ms`, and forgets the learned parameters,
  // so the next client's login goes to a server (and sees 3D000 if the
  // database is gone). Connections in use are left alone. Returns how many closed.
  size_t Vacate(std::string_view why, uint64_t until_ms);
  // The next client's welcome waits for a server login (the database may be
  // gone: it gets the server's error at login, not at its first statement).
  void ForgetParams() { has_params_ = false; }

  BackendEnv* env() const { return env_; }
  int node() const { return node_; }
  const std::string& database() const { return database_; }
  const std::string& user() const { return user_; }
  const std::string& server_user() const { return server_user_; }
  const std::string& server_password() const { return server_password_; }
  const SessionParams& login_params() const { return login_; }

  // ParameterStatus values a fresh backend reports, learned from the first login.
  bool has_params() const { return has_params_; }
  const SessionParams& params() const { return params_; }

  size_t idle_count() const { return idle_.size(); }
  size_t total_count() const { return all_.size(); }
  size_t connecting_count() const { return connecting_; }
  size_t waiter_count() const { return waiters_.size(); }
  struct Waiter {
    ServerClient* client;
    uint64_t custom_names;
  };
  const std::deque<Waiter>& waiters() const { return waiters_; }
  const absl::flat_hash_set<ServerConnection*>& connections() const { return all_; }

 private:
  static bool Fits(const ServerConnection* server, uint64_t custom_names);
  // The most recently idle connection that fits, removed from idle_; or null.
  ServerConnection* TakeIdle(uint64_t custom_names);
  void MaybeConnect();
  void Spawn();
  // Connections in use (not idle, not logging in) plus queued clients.
  int64_t Busy() const {
    return static_cast<int64_t>(all_.size()) - static_cast<int64_t>(idle_.size()) -
           static_cast<int64_t>(connecting_) + static_cast<int64_t>(waiters_.size());
  }
  // Tells the ProxyApp how Busy() changed since the last report (a few integer
  // operations: called after every change).
  void ReportOutstanding();

  BackendEnv* env_;
  int node_;
  std::string database_;
  std::string user_;
  std::string server_user_;
  std::string server_password_;
  SessionParams login_;
  std::vector<ServerConnection*> idle_;
  std::deque<Waiter> waiters_;
  absl::flat_hash_set<ServerConnection*> all_;
  // Connections that existed when the node changed role: closed on release.
  absl::flat_hash_set<ServerConnection*> draining_;
  size_t connecting_ = 0;
  size_t releasing_ = 0;  // released inside their own read callback, handed over at its end
  int64_t reported_busy_ = 0;
  bool has_params_ = false;
  SessionParams params_;
  // No min_idle connections before this (Vacate), nor while the database or
  // user is missing on the node (a refused login; the next success clears it).
  uint64_t hold_until_ms_ = 0;
  bool missing_ = false;
};

}  // namespace pgregion::proxy
