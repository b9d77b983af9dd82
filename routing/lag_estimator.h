// Estimates replication lag in time from the primary's WAL insert positions.
//
// Keeps a bounded history of (time, primary insert LSN) samples, one per primary
// probe. A replica that has replayed up to R is behind by the time since the
// primary first wrote past R; that moment is interpolated between the last
// sample at or below R and the next one (PostgreSQL's walsender LagTracker
// interpolates the same way). A replica at or past the newest sample has lag 0,
// so an idle system reports no lag however old its last commit is
// (pg_last_xact_replay_timestamp() would grow forever there). When R is older
// than the whole history the estimate is the age of the oldest sample: a lower
// bound, which is enough to compare with max_replica_lag_ms as long as the
// history spans more than that (256 samples at a 500 ms probe interval: about
// two minutes; flat runs on an idle primary take two samples whatever their
// length).
//
// Pure, time passed in (milliseconds, monotonic). Owned by Topology;
// single-threaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "routing/lsn.h"

namespace pgregion::routing {

class LagEstimator {
 public:
  static constexpr size_t kDefaultCapacity = 256;

  explicit LagEstimator(size_t capacity = kDefaultCapacity);

  // One observation of the primary's insert LSN. An LSN lower than the last one
  // (another history: a new primary, a crash that lost unflushed WAL) clears the
  // history first.
  void AddPrimarySample(uint64_t now_ms, Lsn insert_lsn);
  void Clear() { samples_.clear(); }

  // Lag of a replica whose replay LSN was `replay` at `measured_at_ms`. 0 with no
  // history or when the replica had everything the primary had then.
  uint64_t LagMs(Lsn replay, uint64_t measured_at_ms) const;

  bool empty() const { return samples_.empty(); }
  size_t size() const { return samples_.size(); }
  Lsn latest() const { return samples_.empty() ? Lsn() : samples_.back().lsn; }

 private:
  struct Sample {
    uint64_t at_ms;
    Lsn lsn;
  };
  size_t capacity_;
  std::deque<Sample> samples_;  // at_ms and lsn both non-decreasing
};

}  // namespace pgregion::routing
