#include "proxy/net/stream.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "protocol/str_util.h"
#include "proxy/net/flush_queue.h"
#include "proxy/net/tls_context.h"

namespace pgregion::proxy {
namespace {

// All reads on the loop thread land in one buffer and are processed before the
// callback returns, so idle connections own no read buffer at all.
constexpr size_t kReadBufferSize = 64 * 1024;
char g_read_buffer[kReadBufferSize];
char g_plain_buffer[kReadBufferSize];
bool g_read_buffer_busy = false;

// An idle connection should not keep a large write buffer alive.
constexpr size_t kKeepBufferCapacity = 64 * 1024;

// More than this queued is sent at once: deferring gains nothing for bulk data,
// and the backpressure checks after Flush() want to see what the kernel left.
constexpr size_t kDeferLimit = 256 * 1024;

void ShrinkIfLarge(std::string& s) {
  if (s.empty() && s.capacity() > kKeepBufferCapacity) std::string().swap(s);
}

}  // namespace

Stream* Stream::Create(uv_loop_t* loop, FlushQueue* flush, Handler* handler) {
  return new Stream(loop, flush, handler);
}

Stream::Stream(uv_loop_t* loop, FlushQueue* flush, Handler* handler)
    : handler_(handler), flush_(flush) {
  uv_tcp_init(loop, &tcp_);
  tcp_.data = this;
}

Stream::~Stream() {
  if (ssl_ != nullptr) SSL_free(ssl_);  // frees the BIOs too
}

int Stream::Accept(uv_stream_t* server) {
  int rc = uv_accept(server, uv());
  if (rc == 0) uv_tcp_nodelay(&tcp_, 1);
  return rc;
}

int Stream::Connect(const struct sockaddr* addr) {
  // Freed by ConnectCb, which libuv also calls (UV_ECANCELED) when the
  // stream closes first, before CloseCb frees the stream.
  auto* req = new uv_connect_t;
  req->data = this;
  int rc = uv_tcp_connect(req, &tcp_, addr, ConnectCb);
  if (rc != 0) delete req;
  return rc;
}

void Stream::ConnectCb(uv_connect_t* req, int status) {
  auto* self = static_cast<Stream*>(req->data);
  delete req;
  if (self->closing_ || self->handler_ == nullptr) return;
  if (status == 0) uv_tcp_nodelay(&self->tcp_, 1);
  self->handler_->OnStreamConnected(status == 0 ? absl::OkStatus()
                                                : absl::UnavailableError(uv_strerror(status)));
}

void Stream::StartRead() {
  if (reading_ || closing_) return;
  if (uv_read_start(uv(), AllocCb, ReadCb) == 0) reading_ = true;
}

void Stream::StopRead() {
  if (!reading_ || closing_) return;
  uv_read_stop(uv());
  reading_ = false;
}

void Stream::AllocCb(uv_handle_t*, size_t, uv_buf_t* buf) {
  // A nested read cannot happen: libuv calls alloc/read back to back.
  if (g_read_buffer_busy) {
    buf->base = nullptr;
    buf->len = 0;
    return;
  }
  g_read_buffer_busy = true;
  buf->base = g_read_buffer;
  buf->len = kReadBufferSize;
}

void Stream::ReadCb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Stream*>(s->data);
  if (buf->base == g_read_buffer) g_read_buffer_busy = false;
  if (self->closing_ || self->handler_ == nullptr) return;
  if (nread < 0) {
    self->Fail(nread == UV_EOF ? absl::CancelledError("connection closed by peer")
                               : absl::UnavailableError(uv_strerror(static_cast<int>(nread))));
    return;
  }
  if (nread == 0) return;
  if (self->ssl_ != nullptr) {
    self->OnCipherText(buf->base, static_cast<size_t>(nread));
  } else {
    self->handler_->OnStreamRead(std::string_view(buf->base, static_cast<size_t>(nread)));
  }
}

void Stream::Fail(absl::Status status) {
  if (close_after_flush_) {
    Close();
    return;
  }
  if (closing_ || handler_ == nullptr) return;
  handler_->OnStreamError(std::move(status));
}

absl::Status Stream::StartTlsServer(SSL_CTX* ctx, std::string_view already_read) {
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) return absl::InternalError(OpenSslErrors());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_accept_state(ssl_);
  if (!already_read.empty()) OnCipherText(already_read.data(), already_read.size());
  return absl::OkStatus();
}

absl::Status Stream::StartTlsClient(SSL_CTX* ctx, const std::string& host, bool verify) {
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) return absl::InternalError(OpenSslErrors());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_connect_state(ssl_);
  unsigned char ip[16];
  bool is_ip =
      inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1;
  if (!is_ip) SSL_set_tlsext_host_name(ssl_, host.c_str());
  if (verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    }
  }
  int rc = SSL_do_handshake(ssl_);
  if (rc != 1 && SSL_get_error(ssl_, rc) != SSL_ERROR_WANT_READ) {
    return absl::UnavailableError(OpenSslErrors());
  }
  DrainTlsOutput();
  Flush();
  return absl::OkStatus();
}

void Stream::OnCipherText(const char* data, size_t len) {
  BIO_write(rbio_, data, static_cast<int>(len));
  if (!handshake_done_) {
    int rc = SSL_do_handshake(ssl_);
    DrainTlsOutput();
    if (rc == 1) {
      handshake_done_ = true;
      Flush();
      if (closing_ || handler_ == nullptr) return;
      handler_->OnStreamTlsReady();
      if (closing_ || handler_ == nullptr) return;
    } else {
      int err = SSL_get_error(ssl_, rc);
      Flush();
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        Fail(absl::UnavailableError(StrCat("TLS handshake failed: ", OpenSslErrors())));
      }
      return;
    }
  }
  for (;;) {
    int n = SSL_read(ssl_, g_plain_buffer, sizeof(g_plain_buffer));
    if (n > 0) {
      handler_->OnStreamRead(std::string_view(g_plain_buffer, static_cast<size_t>(n)));
      if (closing_ || handler_ == nullptr) return;
      continue;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      Fail(absl::CancelledError("TLS connection closed by peer"));
    } else {
      Fail(absl::UnavailableError(StrCat("TLS error: ", OpenSslErrors())));
    }
    return;
  }
  // SSL_read may produce records to send (session tickets, alerts).
  DrainTlsOutput();
  Flush();
}

void Stream::DrainTlsOutput() {
  char buf[16 * 1024];
  for (;;) {
    int n = BIO_read(wbio_, buf, sizeof(buf));
    if (n <= 0) break;
    out_.append(buf, static_cast<size_t>(n));
  }
}

void Stream::Write(std::string_view data) {
  if (closing_ || data.empty()) return;
  if (ssl_ == nullptr) {
    out_.append(data);
    return;
  }
  // Memory BIOs never block, so SSL_write takes everything at once.
  while (!data.empty()) {
    int n = SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 30)));
    if (n <= 0) {
      ERR_clear_error();
      break;
    }
    data.remove_prefix(static_cast<size_t>(n));
    DrainTlsOutput();
  }
}

void Stream::Flush() {
  if (closing_ || writing_ || out_.empty()) return;
  if (flush_ != nullptr && !flush_->closed() && out_.size() <= kDeferLimit) {
    flush_->Add(this);
    return;
  }
  FlushNow();
}

void Stream::FlushNow() {
  if (flush_queued_) flush_->Remove(this);
  if (closing_ || writing_ || out_.empty()) return;
  uv_buf_t buf = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
  int n = uv_try_write(uv(), &buf, 1);
  if (n == static_cast<int>(out_.size())) {
    out_.clear();
    ShrinkIfLarge(out_);
    MaybeReleaseBuffers();
    if (close_after_flush_) {
      Close();
      return;
    }
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    out_.clear();
    Fail(absl::UnavailableError(uv_strerror(n)));
    return;
  }
  if (n > 0) out_.erase(0, static_cast<size_t>(n));
  inflight_.swap(out_);
  buf = uv_buf_init(inflight_.data(), static_cast<unsigned>(inflight_.size()));
  // Freed by WriteCb, which libuv also calls (UV_ECANCELED) when the stream
  // closes with the write in flight, before CloseCb frees the stream.
  auto* req = new uv_write_t;
  req->data = this;
  int rc = uv_write(req, uv(), &buf, 1, WriteCb);
  if (rc != 0) {
    delete req;
    inflight_.clear();
    Fail(absl::UnavailableError(uv_strerror(rc)));
    return;
  }
  writing_ = true;
}

void Stream::WriteCb(uv_write_t* req, int status) {
  auto* self = static_cast<Stream*>(req->data);
  delete req;
  self->writing_ = false;
  self->inflight_.clear();
  ShrinkIfLarge(self->inflight_);
  if (self->closing_) return;
  if (status < 0) {
    self->Fail(absl::UnavailableError(uv_strerror(status)));
    return;
  }
  if (self->close_after_flush_ && self->out_.empty()) {
    self->Close();
    return;
  }
  self->FlushNow();  // whatever was queued while this write was in flight
  if (self->closing_ || self->writing_ || !self->out_.empty()) return;
  self->MaybeReleaseBuffers();
  // Drained: a peer paused for backpressure may resume.
  if (self->handler_ != nullptr) self->handler_->OnStreamDrained();
}

void Stream::MaybeReleaseBuffers() {
  if (!release_when_flushed_ || writing_ || !out_.empty()) return;
  release_when_flushed_ = false;
  std::string().swap(out_);
  std::string().swap(inflight_);
}

void Stream::CloseAfterFlush() {
  if (closing_) return;
  handler_ = nullptr;
  close_after_flush_ = true;
  StopRead();
  if (out_.empty() && !writing_) {
    Close();
    return;
  }
  FlushNow();
  if (closing_ || close_timer_ != nullptr) return;
  close_timer_ = new uv_timer_t;
  uv_timer_init(tcp_.loop, close_timer_);
  close_timer_->data = this;
  uv_timer_start(close_timer_, CloseTimerCb, kCloseFlushTimeoutMs, 0);
}

void Stream::CloseTimerCb(uv_timer_t* t) { static_cast<Stream*>(t->data)->Close(); }

void Stream::Close() {
  if (closing_) return;
  handler_ = nullptr;  // a failing send below must not call back
  // What Flush() deferred is sent as it would have been without the queue.
  if (flush_queued_) FlushNow();
  if (closing_) return;  // FlushNow() closed it (CloseAfterFlush)
  closing_ = true;
  if (close_timer_ != nullptr) {
    // Closed before the stream's own handle, so its callback can no longer run.
    uv_close(reinterpret_cast<uv_handle_t*>(close_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    close_timer_ = nullptr;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), CloseCb);
}

void Stream::CloseCb(uv_handle_t* h) { delete static_cast<Stream*>(h->data); }

std::string Stream::PeerAddress() {
  sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    uv_ip4_name(in, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    uv_ip6_name(in6, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return StrCat(host, ":", port);
}

}  // namespace pgregion::proxy
