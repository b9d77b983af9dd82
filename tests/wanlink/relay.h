// The WAN-link relay: a listening socket whose accepted connections are
// relayed to one target with a one-way delay per direction, plus the fault
// modes the control interface switches between. Owns its listener and every
// live Link. Runs on one libuv loop thread.
//
// Modes:
//   normal     relay with the configured delays
//   drop       reset (RST) every existing connection and every new one
//   blackhole  accept new connections but never read, answer or connect them;
//              existing connections stall (nothing read, nothing delivered)
// `reset` is an action, not a mode: RST every current connection, keep going.
// `heal` returns to normal; stalled connections resume (what was queued is
// delivered at once, like TCP retransmitting after a partition heals) and
// connections accepted during a blackhole are connected to the target.
#pragma once

#include <netinet/in.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "tests/wanlink/link.h"

namespace wanlink {

class Relay {
 public:
  enum class Mode : uint8_t { kNormal, kDrop, kBlackhole };

  Relay(uv_loop_t* loop, const sockaddr_in& target, uint64_t delay_up_ms, uint64_t delay_down_ms,
        size_t max_in_flight);
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Binds and listens; returns a libuv error code (0 on success).
  int Listen(const sockaddr_in& addr);
  int port() const;

  void SetDelay(uint64_t up_ms, uint64_t down_ms);
  void Drop();
  void Blackhole();
  void ResetAll();
  void Heal();
  // "mode=normal delay_up_ms=40 delay_down_ms=40 connections=2 accepted=7"
  std::string Status() const;
  // Stops listening and closes every connection (process exit).
  void Shutdown();

  // For Link.
  uint64_t delay_ns(Link::Dir dir) const { return delay_ms_[dir] * 1'000'000; }
  size_t max_in_flight() const { return max_in_flight_; }
  void Forget(Link* link) { links_.erase(link->id()); }

 private:
  static void OnConnection(uv_stream_t* server, int status);
  template <typename F>
  void ForEachLink(F f);  // safe against links removing themselves

  uv_loop_t* loop_;
  uv_tcp_t server_;
  sockaddr_in target_;
  uint64_t delay_ms_[2];
  size_t max_in_flight_;
  Mode mode_ = Mode::kNormal;
  uint64_t next_id_ = 1;
  uint64_t accepted_ = 0;
  std::map<uint64_t, Link*> links_;
};

const char* ModeName(Relay::Mode mode);

}  // namespace wanlink
