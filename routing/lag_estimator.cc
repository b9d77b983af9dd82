#include "routing/lag_estimator.h"

#include <algorithm>

namespace pgregion::routing {

LagEstimator::LagEstimator(size_t capacity) : capacity_(std::max<size_t>(capacity, 2)) {}

void LagEstimator::AddPrimarySample(uint64_t now_ms, Lsn insert_lsn) {
  if (!samples_.empty()) {
    if (insert_lsn < samples_.back().lsn) samples_.clear();
  }
  if (!samples_.empty()) {
    now_ms = std::max(now_ms, samples_.back().at_ms);  // never let time run backwards
    // A flat run needs only its first and last sample: extend the last one.
    const size_t n = samples_.size();
    if (n >= 2 && samples_[n - 1].lsn == insert_lsn && samples_[n - 2].lsn == insert_lsn) {
      samples_.back().at_ms = now_ms;
      return;
    }
  }
  if (samples_.size() >= capacity_) samples_.pop_front();
  samples_.push_back({now_ms, insert_lsn});
}

uint64_t LagEstimator::LagMs(Lsn replay, uint64_t measured_at_ms) const {
  // An idle primary whose last record ended on a WAL page boundary reports an
  // insert LSN past the next page's header while its replicas replay up to the
  // boundary: that is caught up, not a lag growing forever (DESIGN.md,
  // page-boundary rule).
  if (samples_.empty() || ReplayCovers(replay, samples_.back().lsn)) return 0;
  // First sample the replica has not reached; it exists because the last one is past `replay`.
  auto next = std::upper_bound(samples_.begin(), samples_.end(), replay,
                               [](Lsn r, const Sample& s) { return r < s.lsn; });
  double passed_at_ms;
  if (next == samples_.begin()) {
    passed_at_ms = static_cast<double>(next->at_ms);  // older than the history: a lower bound
  } else {
    const Sample& before = *(next - 1);
    const double fraction = static_cast<double>(replay.value() - before.lsn.value()) /
                            static_cast<double>(next->lsn.value() - before.lsn.value());
    passed_at_ms = static_cast<double>(before.at_ms) +
                   fraction * static_cast<double>(next->at_ms - before.at_ms);
  }
  const double lag = static_cast<double>(measured_at_ms) - passed_at_ms;
  return lag > 0 ? static_cast<uint64_t>(lag) : 0;
}

}  // namespace pgregion::routing
