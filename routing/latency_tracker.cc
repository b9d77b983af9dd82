#include "routing/latency_tracker.h"

#include <algorithm>
#include <cmath>

namespace pgregion::routing {

LatencyTracker::LatencyTracker(size_t nodes, const LatencyTrackerOptions& options)
    : options_(options), nodes_(nodes) {
  options_.decay_ms = std::max<uint64_t>(options_.decay_ms, 1);
  if (!(options_.readmit_factor >= 1)) options_.readmit_factor = 1;
}

double LatencyTracker::Weight(uint64_t since_ms, uint64_t now_ms) const {
  if (now_ms <= since_ms) return 1;
  return std::exp(-static_cast<double>(now_ms - since_ms) / static_cast<double>(options_.decay_ms));
}

void LatencyTracker::Observe(size_t node, uint64_t latency_us, uint64_t now_ms) {
  if (node >= nodes_.size()) return;
  Node& n = nodes_[node];
  const double sample = static_cast<double>(latency_us);
  if (!n.observed || sample > n.cost_us) {
    n.cost_us = sample;
  } else {
    const double w = Weight(n.updated_ms, now_ms);
    n.cost_us = n.cost_us * w + sample * (1 - w);
  }
  n.observed = true;
  n.updated_ms = std::max(n.updated_ms, now_ms);
}

void LatencyTracker::Readmit(size_t node, uint64_t now_ms) {
  if (node >= nodes_.size()) return;
  Node& n = nodes_[node];
  n = Node{};
  n.ramping = options_.readmit_factor > 1 && options_.readmit_ramp_ms > 0;
  n.readmitted_ms = now_ms;
}

double LatencyTracker::Score(size_t node, uint64_t now_ms, uint64_t prior_us) const {
  const double prior = static_cast<double>(prior_us);
  if (node >= nodes_.size()) return std::max(prior, 1.0);
  const Node& n = nodes_[node];
  double score = prior;
  if (n.observed) {
    const double w = Weight(n.updated_ms, now_ms);
    score = prior + (n.cost_us - prior) * w;
  }
  const uint64_t t = std::max(now_ms, n.readmitted_ms);
  if (n.ramping && t < n.readmitted_ms + options_.readmit_ramp_ms) {
    const double left = static_cast<double>(n.readmitted_ms + options_.readmit_ramp_ms - t) /
                        static_cast<double>(options_.readmit_ramp_ms);
    score *= 1 + (options_.readmit_factor - 1) * left;
  }
  return std::max(score, 1.0);
}

}  // namespace pgregion::routing
