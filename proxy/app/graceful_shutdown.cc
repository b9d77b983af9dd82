#include "proxy/app/graceful_shutdown.h"

#include <vector>

#include "proxy/app/proxy_app.h"
#include "proxy/net/log.h"
#include "proxy/session/client_session.h"

namespace pgregion::proxy {

namespace {

// Between units of work: nothing runs for this client on any server.
bool WithoutServer(ClientSession::State state) {
  switch (state) {
    case ClientSession::State::kStartup:
    case ClientSession::State::kTlsHandshake:
    case ClientSession::State::kAuth:
    case ClientSession::State::kAuthFailing:
    case ClientSession::State::kLoginWait:
    case ClientSession::State::kIdle:
      return true;
    case ClientSession::State::kWaitRoute:  // its unit runs once a node can serve it
    case ClientSession::State::kWaitReplay:
    case ClientSession::State::kWaitServer:
    case ClientSession::State::kRestoring:
    case ClientSession::State::kActive:
    case ClientSession::State::kClosed:
      return false;
  }
  return false;
}

}  // namespace

void GracefulShutdown::Start(ProxyApp* app, uint64_t timeout_ms) {
  auto* self = new GracefulShutdown(app, app->NowMs() + timeout_ms);
  LogInfo("shutdown_draining")
      .Kv("clients", static_cast<uint64_t>(app->client_count()))
      .Kv("timeout_ms", timeout_ms);
  self->Check();
}

GracefulShutdown::GracefulShutdown(ProxyApp* app, uint64_t deadline_ms)
    : app_(app), deadline_ms_(deadline_ms) {
  uv_timer_init(app->loop(), &timer_);
  timer_.data = this;
  uv_timer_start(&timer_, OnTick, kCheckIntervalMs, kCheckIntervalMs);
}

void GracefulShutdown::OnTick(uv_timer_t* t) { static_cast<GracefulShutdown*>(t->data)->Check(); }

void GracefulShutdown::Check() {
  if (closed_) return;
  if (app_->shutting_down()) {  // SIGINT or a second SIGTERM meanwhile
    Finish();
    return;
  }
  std::vector<ClientSession*> done;
  for (ClientSession* c : app_->sessions()) {
    if (WithoutServer(c->state())) done.push_back(c);
  }
  for (ClientSession* c : done) c->Shutdown();  // each leaves sessions()
  if (app_->client_count() == 0) {
    app_->Shutdown("drained");
    Finish();
    return;
  }
  if (app_->NowMs() >= deadline_ms_) {
    LogWarn("shutdown_timeout")
        .Kv("clients", static_cast<uint64_t>(app_->client_count()))
        .Kv("detail", "closing clients still inside a transaction (proxy.shutdown_timeout_s)");
    app_->Shutdown("shutdown_timeout");
    Finish();
  }
}

void GracefulShutdown::Finish() {
  if (closed_) return;
  closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnClosed);
}

void GracefulShutdown::OnClosed(uv_handle_t* h) { delete static_cast<GracefulShutdown*>(h->data); }

}  // namespace pgregion::proxy
