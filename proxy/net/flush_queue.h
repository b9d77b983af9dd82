// Streams with queued output, sent once per loop iteration.
//
// A Stream's Flush() puts it here instead of writing at once; the queue sends
// everything right after the iteration's I/O callbacks (uv_check) and before
// the loop blocks again (uv_prepare, for writes made by timers and close
// callbacks). So one iteration reads all its input before any write wakes a
// peer: the woken processes (clients, backends) then tend to preempt pgregion
// once per iteration instead of once per event, and several messages to one
// socket in an iteration leave in one send. Streams to backends go first (their
// work, running the query, is the longest step of a round trip), then those to
// clients, each in the order they were queued. Measured with pgbench -S on two
// cores where everything shares the CPUs: pgregion is preempted less (0.40
// involuntary context switches per transaction, 0.49 writing inside each
// callback, 0.45 backends and clients mixed) and TPS is a few percent higher
// (bench/RESULTS.md). A prepare handle of someone else's that writes would
// wait for the check phase: there is none.
//
// Owned by ProxyApp; heap-allocated, freed in the last handle's close callback
// after Close(). The handles are unreferenced: they never keep the loop alive.
// Loop thread only.
#pragma once

#include <uv.h>

namespace pgregion::proxy {

class Stream;

class FlushQueue {
 public:
  static FlushQueue* Create(uv_loop_t* loop);
  FlushQueue(const FlushQueue&) = delete;
  FlushQueue& operator=(const FlushQueue&) = delete;

  uv_loop_t* loop() const { return loop_; }
  // After Close(), streams send at once.
  bool closed() const { return closed_; }
  // O(1); a stream already queued keeps its place. Streams with
  // Stream::flush_first() go before the others.
  void Add(Stream* stream);
  void Remove(Stream* stream);
  // Sends for every queued stream now.
  void FlushAll();
  // Sends what is queued, then frees the queue once libuv has closed its handles.
  void Close();

 private:
  explicit FlushQueue(uv_loop_t* loop);
  ~FlushQueue() = default;
  template <typename Handle>
  static void Run(Handle* handle);
  static void CloseCb(uv_handle_t* handle);

  uv_loop_t* loop_;
  uv_prepare_t prepare_;
  uv_check_t check_;
  // Two FIFO lists: [0] flush_first() streams (to backends), [1] the others.
  Stream* head_[2] = {nullptr, nullptr};
  Stream* tail_[2] = {nullptr, nullptr};
  int open_handles_ = 2;
  bool closed_ = false;
};

}  // namespace pgregion::proxy
