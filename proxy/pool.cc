#include "proxy/pool.h"

#include <algorithm>

#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/proxy_app.h"
#include "proxy/server_connection.h"

namespace pgregion::proxy {

Pool::Pool(ProxyApp* app, int node, std::string database, std::string user,
           std::string server_user, std::string server_password)
    : app_(app),
      node_(node),
      database_(std::move(database)),
      user_(std::move(user)),
      server_user_(std::move(server_user)),
      server_password_(std::move(server_password)) {}

Pool::~Pool() = default;

void Pool::Acquire(ClientSession* client) {
  if (!idle_.empty()) {
    ServerConnection* server = idle_.back();
    idle_.pop_back();
    client->OnServerAssigned(server);
    return;
  }
  waiters_.push_back(client);
  MaybeConnect();
}

void Pool::CancelWait(ClientSession* client) {
  auto it = std::find(waiters_.begin(), waiters_.end(), client);
  if (it != waiters_.end()) waiters_.erase(it);
}

void Pool::Release(ServerConnection* server) {
  if (!waiters_.empty()) {
    ClientSession* client = waiters_.front();
    waiters_.pop_front();
    client->OnServerAssigned(server);
    return;
  }
  idle_.push_back(server);
}

void Pool::Remove(ServerConnection* server) {
  all_.erase(server);
  auto it = std::find(idle_.begin(), idle_.end(), server);
  if (it != idle_.end()) idle_.erase(it);
  MaybeConnect();
}

void Pool::OnLoginDone(ServerConnection* server) {
  --connecting_;
  if (!has_params_) {
    params_ = server->startup_params();
    has_params_ = true;
  }
  Release(server);
}

void Pool::OnLoginFailed(ServerConnection* server, const std::string& error_response,
                         bool node_failure) {
  --connecting_;
  all_.erase(server);
  if (node_failure) app_->ReportDataPathFailure(node_, /*certain=*/true);
  // The oldest waiter sees the backend's own reason (wrong database, auth,
  // refused); the others keep waiting for their own attempts.
  if (!waiters_.empty()) {
    ClientSession* client = waiters_.front();
    waiters_.pop_front();
    client->OnServerFailed(error_response, node_failure);
  }
}

void Pool::MaybeConnect() {
  uint32_t size = app_->config().pool.size;
  while (connecting_ < waiters_.size() && all_.size() < size) Spawn();
}

void Pool::Spawn() {
  auto* server = new ServerConnection(this, app_->loop(), app_->NextServerId());
  all_.insert(server);
  ++connecting_;
  server->Connect();
}

void Pool::Sweep(uint64_t now_ms) {
  const PoolSection& cfg = app_->config().pool;
  uint64_t idle_ms = uint64_t{cfg.idle_timeout_s} * 1000;
  // Oldest idle connections sit at the front (LIFO reuse from the back).
  while (!idle_.empty() && all_.size() > cfg.min_idle &&
         now_ms - idle_.front()->idle_since_ms() >= idle_ms) {
    ServerConnection* server = idle_.front();
    server->Close("idle timeout");  // calls Remove()
  }
  while (all_.size() < cfg.min_idle && all_.size() < cfg.size) Spawn();
}

void Pool::CloseAll() {
  waiters_.clear();
  std::vector<ServerConnection*> all(all_.begin(), all_.end());
  for (ServerConnection* server : all) server->Close("shutdown");
  all_.clear();
  idle_.clear();
}

}  // namespace pgregion::proxy
