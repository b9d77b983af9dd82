// Per-node latency score for replica choice: a peak-EWMA of observed request
// latencies (the shape Finagle and Linkerd use for power-of-two-choices).
//
// - A sample above the current estimate replaces it (peaks count at once); a
//   lower one is blended in with weight 1 - exp(-dt / decay_ms), dt being the
//   time since the previous sample: the estimate forgets a peak over about
//   decay_ms (10 s) of time, however many samples arrive.
// - Between samples the estimate drifts toward the caller's prior (the node's
//   probe RTT) with the same time constant, so an idle node that once had a slow
//   query is tried again instead of being shunned forever. A node never
//   observed scores its prior.
// - A re-admitted node (back up after being down) starts slow: its history is
//   dropped and its score is multiplied by readmit_factor, falling linearly to
//   1 over readmit_ramp_ms, so traffic returns to it gradually.
//
// Pure, time passed in (milliseconds, monotonic). One per proxy, used on the
// loop thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pgregion::routing {

struct LatencyTrackerOptions {
  uint64_t decay_ms = 10'000;
  double readmit_factor = 4.0;
  uint64_t readmit_ramp_ms = 10'000;
};

class LatencyTracker {
 public:
  explicit LatencyTracker(size_t nodes, const LatencyTrackerOptions& options = {});

  void Observe(size_t node, uint64_t latency_us, uint64_t now_ms);
  void Readmit(size_t node, uint64_t now_ms);
  // Nodes added by a reload: `nodes` entries from now on (never fewer).
  void Grow(size_t nodes) {
    if (nodes > nodes_.size()) nodes_.resize(nodes);
  }

  // Microseconds, at least 1. `prior_us`: the node's probe RTT.
  double Score(size_t node, uint64_t now_ms, uint64_t prior_us) const;

  size_t size() const { return nodes_.size(); }

 private:
  struct Node {
    bool observed = false;
    double cost_us = 0;
    uint64_t updated_ms = 0;
    bool ramping = false;
    uint64_t readmitted_ms = 0;
  };
  double Weight(uint64_t since_ms, uint64_t now_ms) const;  // exp(-dt / decay)

  LatencyTrackerOptions options_;
  std::vector<Node> nodes_;
};

}  // namespace pgregion::routing
