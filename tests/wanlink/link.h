// One relayed TCP connection of the WAN-link simulator: the accepted client
// socket, the socket to the target, and one delayed pipe per direction ("up":
// client -> target, "down": target -> client).
//
// Each chunk read is released to the other side at arrival + the direction's
// delay (never earlier, never out of order, even when the delay shrinks). EOF
// travels the same way (as a shutdown). Memory is bounded: a direction stops
// reading its source while more than `max_in_flight` bytes are queued or being
// written, and resumes below half of it.
//
// Ownership (libuv): the handles are members, `handle.data = this`; Close() or
// Reset() closes all of them and the object deletes itself when the last close
// callback has run. After either, no callback touches the Relay. Runs on the
// relay's loop thread.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace wanlink {

class Relay;

class Link {
 public:
  enum Dir : uint8_t { kUp = 0, kDown = 1 };

  Link(Relay* relay, uv_loop_t* loop, uint64_t id);
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  uv_tcp_t* client() { return &client_; }
  uint64_t id() const { return id_; }

  // After uv_accept into client(): starts relaying (or waits, if `stalled`).
  void Start(const sockaddr* target, bool stalled);
  // Blackhole: read nothing, write nothing; queued data waits. Idempotent.
  void Stall();
  // Back to normal: connects if it never did, releases what is due.
  void Resume();
  // Closes both sockets with RST (SO_LINGER 0).
  void Reset();
  // Closes both sockets normally.
  void Close();

 private:
  struct Chunk {
    uint64_t release_ns;
    std::string data;
    bool eof;
  };
  struct Pipe {
    Link* link;
    Dir dir;
    uv_tcp_t* src;
    uv_tcp_t* dst;
    uv_timer_t timer;
    std::deque<Chunk> queue;
    size_t in_flight = 0;  // queued + being written
    bool reading = false;
    bool src_eof = false;
    bool shutdown_done = false;
    char read_buf[64 * 1024];
  };
  struct WriteReq {
    uv_write_t req;
    Pipe* pipe;
    std::string data;
  };

  ~Link() = default;  // only from the last close callback

  static void OnConnect(uv_connect_t* req, int status);
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnTimer(uv_timer_t* timer);
  static void OnWrite(uv_write_t* req, int status);
  static void OnShutdown(uv_shutdown_t* req, int status);
  static void OnClosed(uv_handle_t* handle);

  void Connect();
  void StartReading(Pipe& p);
  void StopReading(Pipe& p);
  // Writes out every chunk that is due and arms the timer for the next one.
  void Flush(Pipe& p);
  void CloseHandles(bool rst);

  Relay* relay_;
  uint64_t id_;
  uv_tcp_t client_;
  uv_tcp_t target_;
  uv_connect_t connect_req_;
  uv_shutdown_t shutdown_req_[2];
  Pipe pipes_[2];
  sockaddr_storage target_addr_;
  bool stalled_ = false;
  bool connect_started_ = false;
  bool connected_ = false;
  bool closing_ = false;
  int open_handles_ = 0;
};

}  // namespace wanlink
