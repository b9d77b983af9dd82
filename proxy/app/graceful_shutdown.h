// SIGTERM's graceful shutdown: the listener is already closed (no new clients);
// clients without a server connection (idle between transactions, or still
// logging in) are told 57P01 and closed; clients inside a unit of work keep
// their server connection until it is released, then are closed the same way
// (a client that starts a new unit meanwhile is closed instead of routed:
// ClientSession::Dispatch). When no client is left, or after
// `proxy.shutdown_timeout_s`, ProxyApp::Shutdown closes everything.
//
// Self-owned: Start() creates it with a timer that checks every
// kCheckIntervalMs; it frees itself in the timer's close callback once the
// proxy has shut down (by it, or by SIGINT / a second SIGTERM meanwhile).
// Loop thread.
#pragma once

#include <uv.h>

#include <cstdint>

namespace pgregion::proxy {

class ProxyApp;

class GracefulShutdown {
 public:
  static constexpr uint64_t kCheckIntervalMs = 50;

  static void Start(ProxyApp* app, uint64_t timeout_ms);

 private:
  GracefulShutdown(ProxyApp* app, uint64_t deadline_ms);
  ~GracefulShutdown() = default;
  static void OnTick(uv_timer_t* t);
  static void OnClosed(uv_handle_t* h);
  void Check();
  void Finish();

  ProxyApp* app_;
  uint64_t deadline_ms_;
  uv_timer_t timer_;
  bool closed_ = false;
};

}  // namespace pgregion::proxy
