#include "proxy/backend/cancel_request.h"

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "protocol/message_builder.h"
#include "proxy/net/stream.h"

namespace pgregion::proxy {

namespace {

// Owns its connect deadline (a timer) and, until the request is handed to it
// for sending, its Stream; freed in the timer's close callback.
class CancelSender final : public Stream::Handler {
 public:
  CancelSender(uv_loop_t* loop, uint32_t pid, uint32_t secret) : pid_(pid), secret_(secret) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
    stream_ = Stream::Create(loop, /*flush=*/nullptr, this);
  }

  void Start(const sockaddr* node, uint64_t connect_timeout_ms) {
    if (stream_->Connect(node) != 0) {
      Finish();
      return;
    }
    uv_timer_start(&timer_, OnTimeout, connect_timeout_ms > 0 ? connect_timeout_ms : 1, 0);
  }

  void OnStreamConnected(absl::Status status) override {
    if (status.ok()) {
      std::string msg;
      protocol::AppendCancelRequest(&msg, pid_, secret_);
      stream_->Write(msg);
      // Sent, then closed, by the stream alone (it calls no handler from here on).
      stream_->CloseAfterFlush();
      stream_ = nullptr;
    }
    Finish();
  }
  void OnStreamRead(std::string_view) override {}
  void OnStreamError(absl::Status) override { Finish(); }

 private:
  ~CancelSender() override = default;

  static void OnTimeout(uv_timer_t* t) { static_cast<CancelSender*>(t->data)->Finish(); }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    if (stream_ != nullptr) {
      stream_->Close();  // no callback reaches this object after it
      stream_ = nullptr;
    }
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
             [](uv_handle_t* h) { delete static_cast<CancelSender*>(h->data); });
  }

  uv_timer_t timer_;
  Stream* stream_ = nullptr;
  uint32_t pid_;
  uint32_t secret_;
  bool finished_ = false;
};

}  // namespace

void SendCancelRequest(uv_loop_t* loop, const sockaddr* node, uint32_t backend_pid,
                       uint32_t backend_secret, uint64_t connect_timeout_ms) {
  (new CancelSender(loop, backend_pid, backend_secret))->Start(node, connect_timeout_ms);
}

}  // namespace pgregion::proxy
