// Polls the replay LSN of replicas that causal reads are waiting on (DESIGN.md
// "Consistency levels and read-your-writes tokens"): only while a read waits on
// a node, one query in flight per node, a new one every kPollIntervalMs, each
// answer serving every waiter of that node. An answer raises the node's cached
// replay LSN in the Topology (Topology::OnReplayLsn: a lower bound later
// routing decisions use too, reset by the Topology when the node's probe
// connection changes), tells the observer as a health probe would, then wakes
// the node's waiters so they decide again.
//
// Owns one NodePoller per configured node, created when first waited on: a
// kept-open libpq connection (HealthConnectParams, application_name
// pgregion-ryw), one uv_timer_t (connect and poll deadlines, the next poll, the
// back-off after a failure) and a watch on the connection's socket. A failed
// connect or poll wakes the waiters with ok = false (they go to the primary)
// and refuses new waiters for kBackoffMs, so reads do not wait on a node that
// cannot be polled; a poll that finds replay paused refuses new waiters for
// 100 ms (until the next health probe tells the topology). Loop thread only; libpq only through its
// asynchronous API, with numeric host addresses, so nothing here blocks the loop.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "proxy/backend/health_checker.h"
#include "routing/topology.h"

namespace pgregion::proxy {

class ReplayPoller {
 public:
  static constexpr uint64_t kPollIntervalMs = 2;
  static constexpr uint64_t kBackoffMs = 1000;

  // A read waiting for a node to replay its token.
  class Waiter {
   public:
    virtual ~Waiter() = default;
    // A poll of `node` answered (`paused`: replay is paused there, or the node
    // left recovery, so it will not get further) or failed (`ok` false). The
    // topology already holds what it said. The waiter may add or remove itself
    // (or other waiters) from here.
    virtual void OnReplayPolled(size_t node, bool ok, bool paused) = 0;
  };

  // `topology` (one node per target, same order) and `observer` must outlive
  // the poller.
  ReplayPoller(uv_loop_t* loop, HealthCheckerOptions options, std::vector<HealthTarget> targets,
               routing::Topology* topology, HealthChecker::Observer* observer);
  ~ReplayPoller();  // Stop()s
  ReplayPoller(const ReplayPoller&) = delete;
  ReplayPoller& operator=(const ReplayPoller&) = delete;

  // Closes every connection and handle; after it no callback reaches the
  // poller, its waiters, topology or observer. Idempotent.
  void Stop();

  // Starts polling `node` for `waiter` (at once if no poll is in flight).
  // False, and nothing registered, when the node cannot be polled now (unknown
  // index, a recent failure, stopped): the read should not wait.
  [[nodiscard]] bool AddWaiter(size_t node, Waiter* waiter);
  void RemoveWaiter(size_t node, Waiter* waiter);
  size_t waiter_count(size_t node) const;
  // Polls answered since the start (for tests and logs).
  uint64_t polls() const { return polls_; }

 private:
  class NodePoller;
  friend class NodePoller;

  // From a NodePoller: feeds the topology, then wakes the node's waiters.
  void OnPolled(size_t node, routing::Lsn replay, bool paused);
  void OnPollFailed(size_t node);
  void Wake(size_t node, bool ok, bool paused);

  uv_loop_t* loop_;
  HealthCheckerOptions options_;
  std::vector<HealthTarget> targets_;
  routing::Topology* topology_;
  HealthChecker::Observer* observer_;
  std::vector<NodePoller*> pollers_;           // by node; null until first used; each frees itself
  std::vector<std::vector<Waiter*>> waiters_;  // by node, in arrival order
  uint64_t polls_ = 0;
  bool stopped_ = false;
  bool kicking_ = false;  // inside AddWaiter's Kick: failures are returned, not woken
};

}  // namespace pgregion::proxy
