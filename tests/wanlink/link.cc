#include "tests/wanlink/link.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "tests/wanlink/relay.h"

namespace wanlink {

Link::Link(Relay* relay, uv_loop_t* loop, uint64_t id) : relay_(relay), id_(id) {
  uv_tcp_init(loop, &client_);
  uv_tcp_init(loop, &target_);
  client_.data = this;
  target_.data = this;
  open_handles_ = 2;
  pipes_[kUp].src = &client_;
  pipes_[kUp].dst = &target_;
  pipes_[kDown].src = &target_;
  pipes_[kDown].dst = &client_;
  for (int d = 0; d < 2; ++d) {
    Pipe& p = pipes_[d];
    p.link = this;
    p.dir = static_cast<Dir>(d);
    uv_timer_init(loop, &p.timer);
    p.timer.data = &p;
    ++open_handles_;
  }
  std::memset(&target_addr_, 0, sizeof(target_addr_));
}

void Link::Start(const sockaddr* target, bool stalled) {
  std::memcpy(&target_addr_, target, sizeof(sockaddr_in));
  uv_tcp_nodelay(&client_, 1);
  stalled_ = stalled;
  if (stalled_) return;
  Connect();
  StartReading(pipes_[kUp]);  // data from the client waits in the queue until connected
}

void Link::Connect() {
  connect_started_ = true;
  connect_req_.data = this;
  const int rc = uv_tcp_connect(&connect_req_, &target_,
                                reinterpret_cast<const sockaddr*>(&target_addr_), OnConnect);
  if (rc != 0) Reset();
}

void Link::OnConnect(uv_connect_t* req, int status) {
  Link* self = static_cast<Link*>(req->data);
  if (self->closing_) return;
  if (status != 0) {
    self->Reset();  // the client sees its connection refused as a reset
    return;
  }
  self->connected_ = true;
  uv_tcp_nodelay(&self->target_, 1);
  if (self->stalled_) return;
  self->StartReading(self->pipes_[kDown]);
  self->Flush(self->pipes_[kUp]);
}

void Link::StartReading(Pipe& p) {
  if (p.reading || p.src_eof || closing_ || stalled_) return;
  if (p.in_flight > relay_->max_in_flight()) return;
  if (uv_read_start(reinterpret_cast<uv_stream_t*>(p.src), OnAlloc, OnRead) == 0) {
    p.reading = true;
  }
}

void Link::StopReading(Pipe& p) {
  if (!p.reading) return;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(p.src));
  p.reading = false;
}

void Link::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  Link* self = static_cast<Link*>(handle->data);
  Pipe& p = handle == reinterpret_cast<uv_handle_t*>(&self->client_) ? self->pipes_[kUp]
                                                                     : self->pipes_[kDown];
  *buf = uv_buf_init(p.read_buf, sizeof(p.read_buf));
}

void Link::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  Link* self = static_cast<Link*>(stream->data);
  if (self->closing_) return;
  Pipe& p = stream == reinterpret_cast<uv_stream_t*>(&self->client_) ? self->pipes_[kUp]
                                                                     : self->pipes_[kDown];
  if (nread == 0) return;  // EAGAIN
  if (nread < 0 && nread != UV_EOF) {
    self->Reset();  // the peer reset (or the socket broke): the other side sees a reset too
    return;
  }
  uint64_t release = uv_hrtime() + self->relay_->delay_ns(p.dir);
  if (!p.queue.empty()) release = std::max(release, p.queue.back().release_ns);
  if (nread == UV_EOF) {
    p.src_eof = true;
    self->StopReading(p);
    p.queue.push_back({release, std::string(), true});
  } else {
    p.queue.push_back({release, std::string(p.read_buf, static_cast<size_t>(nread)), false});
    p.in_flight += static_cast<size_t>(nread);
    if (p.in_flight > self->relay_->max_in_flight()) self->StopReading(p);
  }
  self->Flush(p);
}

void Link::Flush(Pipe& p) {
  if (closing_ || stalled_ || !connected_) return;
  const uint64_t now = uv_hrtime();
  while (!p.queue.empty() && p.queue.front().release_ns <= now) {
    Chunk chunk = std::move(p.queue.front());
    p.queue.pop_front();
    if (chunk.eof) {
      uv_shutdown_t* req = &shutdown_req_[p.dir];
      req->data = &p;
      if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(p.dst), OnShutdown) != 0) {
        Reset();
        return;
      }
      continue;
    }
    auto* w = new WriteReq{};
    w->pipe = &p;
    w->data = std::move(chunk.data);
    w->req.data = w;
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned int>(w->data.size()));
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(p.dst), &buf, 1, OnWrite) != 0) {
      p.in_flight -= w->data.size();
      delete w;
      Reset();
      return;
    }
  }
  uv_timer_stop(&p.timer);
  if (!p.queue.empty()) {
    const uint64_t wait_ns = p.queue.front().release_ns - now;
    const uint64_t wait_ms = (wait_ns + 999'999) / 1'000'000;  // never early
    uv_timer_start(&p.timer, OnTimer, wait_ms, 0);
  }
}

void Link::OnTimer(uv_timer_t* timer) {
  Pipe* p = static_cast<Pipe*>(timer->data);
  p->link->Flush(*p);
}

void Link::OnWrite(uv_write_t* req, int status) {
  auto* w = static_cast<WriteReq*>(req->data);
  Pipe& p = *w->pipe;
  Link* self = p.link;
  p.in_flight -= w->data.size();
  delete w;
  if (self->closing_) return;
  if (status != 0) {
    self->Reset();
    return;
  }
  if (p.in_flight <= self->relay_->max_in_flight() / 2) self->StartReading(p);
}

void Link::OnShutdown(uv_shutdown_t* req, int status) {
  Pipe& p = *static_cast<Pipe*>(req->data);
  Link* self = p.link;
  if (self->closing_) return;
  if (status != 0) {
    self->Reset();
    return;
  }
  p.shutdown_done = true;
  // Both directions ended cleanly: the connection is over.
  if (self->pipes_[kUp].shutdown_done && self->pipes_[kDown].shutdown_done) self->Close();
}

void Link::Stall() {
  if (closing_ || stalled_) return;
  stalled_ = true;
  for (Pipe& p : pipes_) {
    StopReading(p);
    uv_timer_stop(&p.timer);
  }
}

void Link::Resume() {
  if (closing_ || !stalled_) return;
  stalled_ = false;
  if (!connect_started_) Connect();
  if (closing_) return;
  StartReading(pipes_[kUp]);
  if (connected_) StartReading(pipes_[kDown]);
  Flush(pipes_[kUp]);
  Flush(pipes_[kDown]);
}

void Link::Reset() { CloseHandles(true); }
void Link::Close() { CloseHandles(false); }

void Link::CloseHandles(bool rst) {
  if (closing_) return;
  closing_ = true;
  relay_->Forget(this);
  for (uv_tcp_t* tcp : {&client_, &target_}) {
    uv_os_fd_t fd;
    if (rst && uv_fileno(reinterpret_cast<uv_handle_t*>(tcp), &fd) == 0) {
      // SO_LINGER with a zero timeout: close() sends RST and drops unsent data.
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), OnClosed);
  }
  for (Pipe& p : pipes_) uv_close(reinterpret_cast<uv_handle_t*>(&p.timer), OnClosed);
}

void Link::OnClosed(uv_handle_t* handle) {
  Link* self = handle->type == UV_TIMER ? static_cast<Pipe*>(handle->data)->link
                                        : static_cast<Link*>(handle->data);
  if (--self->open_handles_ == 0) delete self;
}

}  // namespace wanlink
