#include "proxy/net/flush_queue.h"

#include "proxy/net/stream.h"

namespace pgregion::proxy {

FlushQueue* FlushQueue::Create(uv_loop_t* loop) { return new FlushQueue(loop); }

FlushQueue::FlushQueue(uv_loop_t* loop) : loop_(loop) {
  uv_prepare_init(loop, &prepare_);
  uv_check_init(loop, &check_);
  prepare_.data = this;
  check_.data = this;
  uv_prepare_start(&prepare_, Run<uv_prepare_t>);
  uv_check_start(&check_, Run<uv_check_t>);
  uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
}

void FlushQueue::Add(Stream* s) {
  if (s->flush_queued_) return;
  const int list = s->flush_first_ ? 0 : 1;
  s->flush_queued_ = true;
  s->flush_next_ = nullptr;
  s->flush_prev_ = tail_[list];
  if (tail_[list] != nullptr) {
    tail_[list]->flush_next_ = s;
  } else {
    head_[list] = s;
  }
  tail_[list] = s;
}

void FlushQueue::Remove(Stream* s) {
  if (!s->flush_queued_) return;
  const int list = s->flush_first_ ? 0 : 1;
  s->flush_queued_ = false;
  if (s->flush_prev_ != nullptr) {
    s->flush_prev_->flush_next_ = s->flush_next_;
  } else {
    head_[list] = s->flush_next_;
  }
  if (s->flush_next_ != nullptr) {
    s->flush_next_->flush_prev_ = s->flush_prev_;
  } else {
    tail_[list] = s->flush_prev_;
  }
  s->flush_next_ = nullptr;
  s->flush_prev_ = nullptr;
}

void FlushQueue::FlushAll() {
  // A send may fail and make handlers queue or close other streams: always
  // take the current head (FlushNow() removes it).
  for (;;) {
    Stream* s = head_[0] != nullptr ? head_[0] : head_[1];
    if (s == nullptr) return;
    s->FlushNow();
  }
}

template <typename Handle>
void FlushQueue::Run(Handle* handle) {
  static_cast<FlushQueue*>(handle->data)->FlushAll();
}

void FlushQueue::Close() {
  if (closed_) return;
  closed_ = true;
  FlushAll();
  uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), CloseCb);
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), CloseCb);
}

void FlushQueue::CloseCb(uv_handle_t* handle) {
  auto* self = static_cast<FlushQueue*>(handle->data);
  if (--self->open_handles_ == 0) delete self;
}

}  // namespace pgregion::proxy
