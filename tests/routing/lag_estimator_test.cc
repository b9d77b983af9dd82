#include "routing/lag_estimator.h"

#include <doctest/doctest.h>

namespace pgregion::routing {
namespace {

TEST_CASE("Topology LagEstimator: no history, caught up, ahead") {
  LagEstimator lag;
  CHECK(lag.LagMs(Lsn(100), 1000) == 0);
  lag.AddPrimarySample(1000, Lsn(5000));
  CHECK(lag.LagMs(Lsn(5000), 1500) == 0);
  CHECK(lag.LagMs(Lsn(9000), 1500) == 0);
}

TEST_CASE("Topology LagEstimator: interpolates when the primary passed the replay LSN") {
  LagEstimator lag;
  // The primary writes 1000 bytes per 100 ms.
  for (uint64_t t = 0; t <= 2000; t += 100) lag.AddPrimarySample(t, Lsn(10'000 + t * 10));
  // Replica at 15'000: the primary was there at t = 500.
  CHECK(lag.LagMs(Lsn(15'000), 2000) == 1500);
  // Between samples: 15'500 is halfway from t = 500 to 600.
  CHECK(lag.LagMs(Lsn(15'500), 2000) == 1450);
  // Measured before the primary got past it: no lag then.
  CHECK(lag.LagMs(Lsn(15'000), 400) == 0);
}

TEST_CASE("Topology LagEstimator: idle primary shows no lag; a new write after a long pause") {
  LagEstimator lag;
  for (uint64_t t = 0; t <= 60'000; t += 500) lag.AddPrimarySample(t, Lsn(7000));
  CHECK(lag.size() == 2);  // a flat run keeps its first and last sample
  CHECK(lag.LagMs(Lsn(7000), 60'000) == 0);
  lag.AddPrimarySample(60'500, Lsn(8000));
  // The replica at 7000 misses a write made after t = 60'000, not 60 s of WAL.
  CHECK(lag.LagMs(Lsn(7000), 60'400) == 400);
  CHECK(lag.LagMs(Lsn(7000), 61'000) == 1000);
}

TEST_CASE("Topology LagEstimator: an idle primary past a page or segment header is no lag") {
  LagEstimator lag;
  // The last record ended at a page boundary (0/4002000): the insert LSN is past
  // the next page's 24-byte header, the replicas' replay LSN at the boundary.
  for (uint64_t t = 0; t <= 60'000; t += 500) lag.AddPrimarySample(t, Lsn(0x4002000 + 24));
  CHECK(lag.LagMs(Lsn(0x4002000), 60'000) == 0);
  CHECK(lag.LagMs(Lsn(0x4001ff0), 60'000) == 60'000);  // before the boundary: behind
  // At a segment start the header is 40 bytes.
  LagEstimator seg;
  for (uint64_t t = 0; t <= 60'000; t += 500) seg.AddPrimarySample(t, Lsn(0x4000000 + 40));
  CHECK(seg.LagMs(Lsn(0x4000000), 60'000) == 0);
}

TEST_CASE("Topology LagEstimator: replica older than the history gives a lower bound") {
  LagEstimator lag(4);
  for (uint64_t t = 0; t < 10; ++t) lag.AddPrimarySample(t * 1000, Lsn(1000 + t * 1000));
  CHECK(lag.size() == 4);  // samples from t = 6 s to 9 s
  CHECK(lag.LagMs(Lsn(500), 9000) == 3000);
}

TEST_CASE("Topology LagEstimator: a step back clears the history") {
  LagEstimator lag;
  lag.AddPrimarySample(0, Lsn(1000));
  lag.AddPrimarySample(1000, Lsn(2000));
  lag.AddPrimarySample(2000, Lsn(1500));
  CHECK(lag.size() == 1);
  CHECK(lag.latest() == Lsn(1500));
  // Time never runs backwards inside the history.
  lag.AddPrimarySample(1000, Lsn(1600));
  CHECK(lag.LagMs(Lsn(1500), 2000) == 0);
}

}  // namespace
}  // namespace pgregion::routing
