#include "proxy/admin/admin_server.h"

#include <cstring>
#include <string>
#include <vector>

#include "protocol/str_util.h"
#include "proxy/net/log.h"
#include "proxy/net/stream.h"

namespace pgregion::proxy {

// One admin HTTP connection: one request, one response, then closed. Owns its
// Stream and a timer bounding the whole exchange; freed in the timer's close
// callback. Loop thread.
class AdminServer::Connection : public Stream::Handler {
 public:
  static constexpr uint64_t kLingerMs = 1000;
  static constexpr size_t kMaxLingerBytes = 1 << 20;

  Connection(AdminServer* server, Stream* stream, uint64_t seq)
      : server_(server), stream_(stream), seq_(seq) {
    uv_timer_init(server->loop_, &timer_);
    timer_.data = this;
    stream_->SetHandler(this);
  }

  void Start() {
    uv_timer_start(&timer_, OnTimeout, kRequestTimeoutMs, 0);
    stream_->StartRead();
  }

  // Accept order, and whether a whole request was read (and answered): what
  // AdminServer::OnConnection looks at to pick a connection to evict.
  uint64_t seq() const { return seq_; }
  bool answered() const { return responded_ && !lingering_; }

  void Close() {
    if (closed_) return;
    closed_ = true;
    server_->Forget(this);
    stream_->Close();
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnClosed);
  }

  void OnStreamRead(std::string_view data) override {
    if (responded_) {
      // Lingering after an error: discard what the client still sends, so
      // closing does not reset the connection before it read the answer.
      lingered_bytes_ += data.size();
      if (lingered_bytes_ > kMaxLingerBytes) Close();
      return;
    }
    // Parsed only once the head has ended (or is too large): a client sending
    // a byte at a time must not make every byte rescan the whole head (8 KiB
    // sent would cost 32 MiB of scanning). Only the new bytes and the 2
    // before them can complete an empty line.
    const size_t from = in_.size() > 2 ? in_.size() - 2 : 0;
    in_.append(data);
    if (!HeadMayHaveEnded(from) && in_.size() <= kMaxHeadBytes) return;
    HttpParseResult r = ParseHttpRequestHead(in_, kMaxHeadBytes);
    switch (r.status) {
      case HttpParseStatus::kNeedMore:
        return;
      case HttpParseStatus::kError:
        RespondAndLinger(TextResponse(r.error_status, r.error));
        return;
      case HttpParseStatus::kComplete:
        Respond(server_->handler_->Handle(r.request), r.request.method == "HEAD");
        return;
    }
  }

  // EOF (the client is done, also after lingering), reset, write failure.
  void OnStreamError(absl::Status) override { Close(); }

  void OnStreamDrained() override {
    if (responded_ && !lingering_) Close();
  }

 private:
  ~Connection() override = default;

  // Whether in_ holds an empty line (LF LF or LF CR LF, or one at the very
  // start, as ParseHttpRequestHead reads them) that ends at or after `from`.
  bool HeadMayHaveEnded(size_t from) const {
    std::string_view in(in_);
    if (in.substr(0, 1) == "\n" || in.substr(0, 2) == "\r\n") return true;
    return in.find("\n\n", from) != std::string_view::npos ||
           in.find("\n\r\n", from) != std::string_view::npos;
  }

  // A complete request was read: answer, close once the kernel has the answer.
  void Respond(const HttpResponse& response, bool head_only) {
    responded_ = true;
    in_.clear();
    stream_->StopRead();
    stream_->Write(SerializeHttpResponse(response, head_only));
    stream_->Flush();
    // Usually the kernel took it all at once; otherwise OnStreamDrained (or
    // the timer, for a peer that does not read) finishes.
    if (!closed_ && stream_->pending_bytes() == 0) Close();
  }

  // A bad request may still be arriving (an oversized head): answer, then
  // read and discard until the client closes, for at most kLingerMs.
  void RespondAndLinger(const HttpResponse& response) {
    responded_ = true;
    lingering_ = true;
    in_.clear();
    stream_->Write(SerializeHttpResponse(response, false));
    stream_->Flush();
    if (!closed_) uv_timer_start(&timer_, OnTimeout, kLingerMs, 0);
  }

  static void OnTimeout(uv_timer_t* t) {
    auto* self = static_cast<Connection*>(t->data);
    if (self->responded_) {
      self->Close();
      return;
    }
    self->RespondAndLinger(
        TextResponse(408, StrCat("no complete request within ", kRequestTimeoutMs / 1000, " s")));
  }

  static void OnClosed(uv_handle_t* h) { delete static_cast<Connection*>(h->data); }

  AdminServer* server_;
  Stream* stream_;
  uint64_t seq_;
  uv_timer_t timer_;
  std::string in_;
  size_t lingered_bytes_ = 0;
  bool responded_ = false;
  bool lingering_ = false;
  bool closed_ = false;
};

AdminServer::AdminServer(uv_loop_t* loop, Handler* handler) : loop_(loop), handler_(handler) {}

AdminServer::~AdminServer() = default;

absl::Status AdminServer::Listen(const ListenAddress& address) {
  sockaddr_storage addr;
  memset(&addr, 0, sizeof(addr));
  if (uv_ip4_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in6*>(&addr)) !=
          0) {
    return absl::InvalidArgumentError(StrCat("admin.listen: bad address ", address.host));
  }
  listener_ = new uv_tcp_t;
  uv_tcp_init(loop_, listener_);
  listener_->data = this;
  int rc = uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 64, OnConnection);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), OnListenerClosed);
    listener_ = nullptr;
    return absl::UnavailableError(
        StrCat("cannot listen on ", FormatListenAddress(address), " (admin): ", uv_strerror(rc)));
  }
  LogInfo("admin_listening").Kv("addr", FormatListenAddress(address));
  return absl::OkStatus();
}

void AdminServer::OnConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<AdminServer*>(listener->data);
  if (status < 0 || self == nullptr) return;
  Stream* stream = Stream::Create(self->loop_, /*flush=*/nullptr, nullptr);
  if (stream->Accept(listener) != 0) {
    stream->Close();
    return;
  }
  if (self->connections_.size() >= kMaxConnections) {
    // Refusing the new connection would let anyone who holds kMaxConnections
    // unfinished requests open shut the port to load-balancer probes. A probe
    // sends its request at once, so the oldest connection that has not
    // completed a request (else the oldest, a slow reader of its answer)
    // gives way instead: an attacker must now renew connections faster than
    // probes arrive, and each probe is answered in one read.
    Connection* victim = nullptr;
    for (Connection* c : self->connections_) {
      if (victim == nullptr || (victim->answered() && !c->answered()) ||
          (victim->answered() == c->answered() && c->seq() < victim->seq())) {
        victim = c;
      }
    }
    victim->Close();
  }
  auto* connection = new Connection(self, stream, ++self->next_seq_);
  self->connections_.insert(connection);
  connection->Start();
}

void AdminServer::OnListenerClosed(uv_handle_t* handle) {
  delete reinterpret_cast<uv_tcp_t*>(handle);
}

void AdminServer::Close() {
  if (listener_ != nullptr) {
    listener_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), OnListenerClosed);
    listener_ = nullptr;
  }
  std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* c : open) c->Close();
}

}  // namespace pgregion::proxy
