#include "proxy/backend/pool.h"

#include <algorithm>

#include "proxy/backend/server_connection.h"
#include "proxy/net/log.h"
#include "routing/missing_objects.h"

namespace pgregion::proxy {

Pool::Pool(BackendEnv* env, int node, std::string database, std::string user,
           std::string server_user, std::string server_password, SessionParams login)
    : env_(env),
      node_(node),
      database_(std::move(database)),
      user_(std::move(user)),
      server_user_(std::move(server_user)),
      server_password_(std::move(server_password)),
      login_(std::move(login)) {}

Pool::~Pool() = default;

void Pool::ReportOutstanding() {
  const int64_t busy = Busy();
  if (busy == reported_busy_) return;
  env_->AddOutstanding(node_, busy - reported_busy_);
  reported_busy_ = busy;
}

bool Pool::Fits(const ServerConnection* server, uint64_t custom_names) {
  return server->custom_names() == 0 || server->custom_names() == custom_names;
}

ServerConnection* Pool::TakeIdle(uint64_t custom_names) {
  // The same names first (nothing to create), then a connection with none.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = idle_.size(); i-- > 0;) {
      ServerConnection* server = idle_[i];
      const bool take =
          pass == 0 ? server->custom_names() == custom_names : server->custom_names() == 0;
      if (!take) continue;
      idle_.erase(idle_.begin() + static_cast<ptrdiff_t>(i));
      return server;
    }
    if (custom_names == 0) break;  // the first pass looked for none already
  }
  return nullptr;
}

void Pool::Acquire(ServerClient* client, uint64_t custom_names) {
  if (ServerConnection* server = TakeIdle(custom_names)) {
    ReportOutstanding();
    client->OnServerAssigned(server);
    return;
  }
  waiters_.push_back({client, custom_names});
  const uint32_t size = env_->config().pool.size;
  if (all_.size() >= size && !idle_.empty()) {
    // Every idle connection holds other clients' placeholders and no new one
    // may be opened: the oldest gives way (Remove() then opens one).
    idle_.front()->Close("holds other clients' custom parameters");
  }
  MaybeConnect();
  ReportOutstanding();
}

void Pool::CancelWait(ServerClient* client) {
  auto it = std::find_if(waiters_.begin(), waiters_.end(),
                         [client](const Waiter& w) { return w.client == client; });
  if (it != waiters_.end()) waiters_.erase(it);
  ReportOutstanding();
}

void Pool::Release(ServerConnection* server) {
  if (server->DeferRelease()) {  // handed over once its read callback is done
    ++releasing_;
    return;
  }
  if (server->restore_failed()) {
    server->Close("a session replay failed on it");  // calls Remove(), which reports
    return;
  }
  if (!draining_.empty() && draining_.contains(server)) {
    server->Close("node changed role");  // calls Remove(), which reports
    return;
  }
  if (!waiters_.empty()) {
    auto it = std::find_if(waiters_.begin(), waiters_.end(),
                           [server](const Waiter& w) { return Fits(server, w.custom_names); });
    if (it != waiters_.end()) {
      ServerClient* client = it->client;
      waiters_.erase(it);
      ReportOutstanding();
      client->OnServerAssigned(server);
      return;
    }
    if (all_.size() >= env_->config().pool.size) {
      // It fits none of the waiting clients, and they need its slot.
      server->Close("holds other clients' custom parameters");  // calls Remove()
      return;
    }
  }
  if (env_->NodePaused(node_)) {
    server->Close("node paused or removed");  // calls Remove(), which reports
    return;
  }
  idle_.push_back(server);
  if (!waiters_.empty()) MaybeConnect();  // they counted on this one, which fits none of them
  ReportOutstanding();
}

void Pool::FinishRelease(ServerConnection* server, bool usable) {
  --releasing_;
  if (usable) {
    Release(server);
  } else {
    MaybeConnect();  // a waiter counted on it
  }
}

void Pool::Remove(ServerConnection* server) {
  all_.erase(server);
  if (!draining_.empty()) draining_.erase(server);
  auto it = std::find(idle_.begin(), idle_.end(), server);
  if (it != idle_.end()) idle_.erase(it);
  MaybeConnect();
  ReportOutstanding();
}

void Pool::OnLoginDone(ServerConnection* server) {
  --connecting_;
  if (missing_) {
    missing_ = false;
    env_->OnLoginAccepted(node_, database_, user_);
  }
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
  if (!draining_.empty()) draining_.erase(server);
  // The node is unreachable: stop routing to it now (before the waiter below
  // retries elsewhere), not after the next probes.
  if (node_failure) env_->ReportDataPathFailure(node_, /*certain=*/true);
  if (!node_failure && routing::ClassifyLoginRefusal(error_response).missing_object) {
    // The database or role is missing here (dropped or renamed, or not yet
    // replayed by a replica): the parameters learned may be of a database
    // that is gone, and min_idle must not retry logins that fail.
    has_params_ = false;
    missing_ = true;
    env_->OnLoginRefusedMissing(node_, database_, user_);
  }
  // The oldest waiter sees the backend's own reason (wrong database, auth,
  // refused); the others keep waiting for their own attempts.
  if (!waiters_.empty()) {
    ServerClient* client = waiters_.front().client;
    waiters_.pop_front();
    ReportOutstanding();
    client->OnServerFailed(error_response, node_failure);
  }
  ReportOutstanding();
}

void Pool::MaybeConnect() {
  uint32_t size = env_->config().pool.size;
  // A connection being released serves a waiter as well as a new one would.
  while (connecting_ + releasing_ < waiters_.size() && all_.size() < size) Spawn();
}

void Pool::Spawn() {
  auto* server = new ServerConnection(this, env_->loop(), env_->NextServerId());
  all_.insert(server);
  ++connecting_;
  server->Connect();
}

void Pool::Sweep(uint64_t now_ms) {
  const PoolSection& cfg = env_->config().pool;
  uint64_t idle_ms = uint64_t{cfg.idle_timeout_s} * 1000;
  // Oldest idle connections sit at the front (LIFO reuse from the back).
  while (!idle_.empty() && all_.size() > cfg.min_idle &&
         now_ms - idle_.front()->idle_since_ms() >= idle_ms) {
    ServerConnection* server = idle_.front();
    server->Close("idle timeout");  // calls Remove()
  }
  if (env_->NodePaused(node_) || missing_ || now_ms < hold_until_ms_) return;
  while (all_.size() < cfg.min_idle && all_.size() < cfg.size) Spawn();
}

void Pool::CloseAll() {
  waiters_.clear();
  std::vector<ServerConnection*> all(all_.begin(), all_.end());
  for (ServerConnection* server : all) server->Close("shutdown");
  all_.clear();
  idle_.clear();
  draining_.clear();
  connecting_ = 0;
  ReportOutstanding();
}

size_t Pool::CloseIdle(std::string_view why) {
  std::vector<ServerConnection*> idle;
  idle.swap(idle_);
  for (ServerConnection* server : idle) server->Close(why);  // calls Remove()
  ReportOutstanding();
  return idle.size();
}

size_t Pool::Vacate(std::string_view why, uint64_t until_ms) {
  hold_until_ms_ = until_ms;
  has_params_ = false;
  return CloseIdle(why);
}

Pool::DrainResult Pool::Drain(std::string_view why) {
  DrainResult result;
  std::vector<ServerConnection*> idle;
  idle.swap(idle_);
  for (ServerConnection* server : all_) draining_.insert(server);
  for (ServerConnection* server : idle) {
    draining_.erase(server);
    server->Close(why);  // calls Remove()
    ++result.closed;
  }
  result.draining = draining_.size();
  ReportOutstanding();
  return result;
}

}  // namespace pgregion::proxy
