// One TCP connection (client-facing or to a backend), optionally wrapped in TLS
// through memory BIOs.
//
// Owns its uv_tcp_t; always heap-allocated with Create() and freed only in the
// libuv close callback. After Close() the handler is never called again. Writes
// are queued in one buffer and sent by Flush() at the end of the loop iteration
// (FlushQueue), so a burst of messages becomes a single send. Runs on the loop
// thread only.
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace pgregion::proxy {

class FlushQueue;

class Stream {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // Plaintext bytes; the view is valid only during the call.
    virtual void OnStreamRead(std::string_view data) = 0;
    // EOF, reset, TLS failure. The handler should Close() the stream.
    virtual void OnStreamError(absl::Status status) = 0;
    // Outgoing connect finished (status ok or not).
    virtual void OnStreamConnected(absl::Status status) {}
    // TLS handshake finished successfully (failures go to OnStreamError).
    virtual void OnStreamTlsReady() {}
    // Everything queued has been handed to the kernel.
    virtual void OnStreamDrained() {}
  };

  // `flush`: where Flush() defers sends to; nullptr sends at once.
  static Stream* Create(uv_loop_t* loop, FlushQueue* flush, Handler* handler);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  uv_stream_t* uv() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  int Accept(uv_stream_t* server);
  int Connect(const struct sockaddr* addr);
  void SetHandler(Handler* handler) { handler_ = handler; }
  // Flushed before the other streams of an iteration (see FlushQueue). Set
  // once, before the first Flush().
  void set_flush_first(bool first) { flush_first_ = first; }
  bool flush_first() const { return flush_first_; }

  void StartRead();
  void StopRead();
  bool reading() const { return reading_; }

  // TLS. Server side may be given bytes already read (direct TLS ClientHello).
  absl::Status StartTlsServer(SSL_CTX* ctx, std::string_view already_read);
  absl::Status StartTlsClient(SSL_CTX* ctx, const std::string& host, bool verify);
  bool tls() const { return ssl_ != nullptr; }
  SSL* ssl() const { return ssl_; }

  // Queues plaintext (encrypted when TLS is on).
  void Write(std::string_view data);
  // Sends what is queued once this loop iteration's callbacks are done (at
  // once without a FlushQueue, or when much is queued: pending_bytes() then
  // counts only what the kernel did not take, as backpressure checks expect).
  void Flush();
  // Sends what is queued now.
  void FlushNow();
  // Bytes queued or in flight.
  size_t pending_bytes() const { return out_.size() + inflight_.size(); }
  // The connection goes idle: once everything queued has been sent, the
  // write buffers are freed instead of kept for the next message (an idle
  // client keeps no buffer; the next write allocates one again).
  void ReleaseBuffersWhenFlushed() {
    release_when_flushed_ = true;
    MaybeReleaseBuffers();
  }

  // Closes after everything queued has been sent, or after kCloseFlushTimeoutMs
  // if the peer stops reading (a client that never reads its FATAL error must
  // not keep the stream, and process exit, waiting).
  void CloseAfterFlush();
  static constexpr uint64_t kCloseFlushTimeoutMs = 10'000;
  void Close();
  bool closing() const { return closing_; }

  std::string PeerAddress();

 private:
  friend class FlushQueue;
  Stream(uv_loop_t* loop, FlushQueue* flush, Handler* handler);
  ~Stream();

  static void AllocCb(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void ReadCb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void WriteCb(uv_write_t* req, int status);
  static void ConnectCb(uv_connect_t* req, int status);
  static void CloseCb(uv_handle_t* h);
  static void CloseTimerCb(uv_timer_t* t);

  void OnCipherText(const char* data, size_t len);
  void DrainTlsOutput();
  void Fail(absl::Status status);
  void MaybeReleaseBuffers();

  uv_tcp_t tcp_;
  // The uv_write_t and uv_connect_t are allocated only while a write or a
  // connect is in flight (most writes complete in uv_try_write, client streams
  // never connect): 288 bytes an idle connection does not keep.
  Handler* handler_;
  std::string out_;       // queued, not yet handed to libuv
  std::string inflight_;  // owned by the uv_write in flight
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // ciphertext from the socket
  BIO* wbio_ = nullptr;  // ciphertext to the socket
  bool handshake_done_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool close_after_flush_ = false;
  bool release_when_flushed_ = false;  // ReleaseBuffersWhenFlushed()
  uv_timer_t* close_timer_ = nullptr;  // CloseAfterFlush's deadline, only while one runs
  // FlushQueue's intrusive list.
  FlushQueue* flush_;
  bool flush_first_ = false;
  bool flush_queued_ = false;
  Stream* flush_prev_ = nullptr;
  Stream* flush_next_ = nullptr;
};

}  // namespace pgregion::proxy
