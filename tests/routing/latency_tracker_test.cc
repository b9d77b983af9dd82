#include "routing/latency_tracker.h"

#include <doctest/doctest.h>

#include <cmath>

namespace pgregion::routing {
namespace {

TEST_CASE("Replica LatencyTracker: a node never observed scores its prior") {
  LatencyTracker lt(2);
  CHECK(lt.Score(0, 0, 1500) == 1500);
  CHECK(lt.Score(1, 99'999, 40'000) == 40'000);
  CHECK(lt.Score(0, 0, 0) == 1);      // never 0: scores are multiplied
  CHECK(lt.Score(7, 0, 300) == 300);  // out of range: the prior
  lt.Observe(7, 5, 0);                // ignored
  CHECK(lt.size() == 2);
}

TEST_CASE("Replica LatencyTracker: peaks count at once, then decay over about 10 s") {
  LatencyTracker lt(1);
  lt.Observe(0, 1000, 0);
  CHECK(lt.Score(0, 0, 1000) == 1000);
  lt.Observe(0, 5000, 1);
  CHECK(lt.Score(0, 1, 1000) == doctest::Approx(5000).epsilon(0.001));
  // Lower samples in the same millisecond do not pull it down: the decay is in time.
  lt.Observe(0, 100, 1);
  CHECK(lt.Score(0, 1, 1000) == doctest::Approx(5000).epsilon(0.001));
  // 10 s later a 1000 us sample: weight e^-1 on the old estimate.
  lt.Observe(0, 1000, 10'001);
  const double expected = 5000 * std::exp(-1.0) + 1000 * (1 - std::exp(-1.0));
  CHECK(lt.Score(0, 10'001, 1000) == doctest::Approx(expected));
}

TEST_CASE("Replica LatencyTracker: an idle node drifts back toward its probe RTT") {
  LatencyTracker lt(1);
  lt.Observe(0, 50'000, 0);  // one slow query
  CHECK(lt.Score(0, 0, 2000) == doctest::Approx(50'000));
  CHECK(lt.Score(0, 10'000, 2000) == doctest::Approx(2000 + 48'000 * std::exp(-1.0)));
  CHECK(lt.Score(0, 100'000, 2000) == doctest::Approx(2000).epsilon(0.01));
}

TEST_CASE("Replica LatencyTracker: a re-admitted node starts slow and ramps back") {
  LatencyTracker lt(2, {.decay_ms = 10'000, .readmit_factor = 4, .readmit_ramp_ms = 10'000});
  lt.Observe(0, 90'000, 0);
  lt.Readmit(0, 1000);  // history dropped, prior x 4
  CHECK(lt.Score(0, 1000, 1000) == doctest::Approx(4000));
  CHECK(lt.Score(0, 500, 1000) == doctest::Approx(4000));  // earlier time: no extrapolation
  CHECK(lt.Score(0, 6000, 1000) == doctest::Approx(2500));
  CHECK(lt.Score(0, 11'000, 1000) == doctest::Approx(1000));
  CHECK(lt.Score(0, 60'000, 1000) == doctest::Approx(1000));
  // Observations during the ramp are kept; the factor still applies.
  lt.Readmit(1, 0);
  lt.Observe(1, 3000, 5000);
  CHECK(lt.Score(1, 5000, 1000) == doctest::Approx(3000 * 2.5));
}

}  // namespace
}  // namespace pgregion::routing
