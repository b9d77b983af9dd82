#include "routing/node_health.h"

#include <doctest/doctest.h>

namespace pgregion::routing {
namespace {

using State = NodeHealth::State;
using Change = NodeHealth::Change;
using Failure = NodeHealth::Failure;

HealthPolicy Policy() {
  return {.failures_to_down = 3, .successes_to_up = 3, .recover_hold_ms = 10'000};
}

TEST_CASE("Topology NodeHealth: first success brings a fresh node up at once") {
  NodeHealth h(Policy());
  CHECK(h.state() == State::kUnknown);
  CHECK_FALSE(h.up());
  CHECK(h.OnSuccess(100) == Change::kWentUp);
  CHECK(h.up());
  CHECK(h.OnSuccess(600) == Change::kNone);
}

TEST_CASE("Topology NodeHealth: a timeout makes the node suspect until the next success") {
  NodeHealth h(Policy());
  h.OnSuccess(0);
  CHECK_FALSE(h.suspect());
  CHECK(h.OnFailure(Failure::kProbeError, 500) == Change::kNone);
  CHECK_FALSE(h.suspect());  // an error reply is an answer
  CHECK(h.OnFailure(Failure::kProbeTimeout, 1000) == Change::kNone);
  CHECK(h.suspect());
  CHECK(h.up());  // suspect is no down: the failure only counts
  CHECK(h.consecutive_failures() == 2);
  CHECK(h.OnSuccess(1500) == Change::kNone);
  CHECK_FALSE(h.suspect());
  CHECK(h.consecutive_failures() == 0);
  // MarkSuspect (a connect past timeout_ms) counts no failure.
  CHECK(h.MarkSuspect());
  CHECK_FALSE(h.MarkSuspect());
  CHECK(h.suspect());
  CHECK(h.consecutive_failures() == 0);
  CHECK(h.up());
  // Down and suspect: a success that does not bring it up still clears suspect.
  h.OnFailure(Failure::kProbeTimeout, 2000);
  h.OnFailure(Failure::kProbeTimeout, 2500);
  CHECK(h.OnFailure(Failure::kProbeTimeout, 3000) == Change::kWentDown);
  CHECK(h.OnSuccess(3500) == Change::kNone);
  CHECK_FALSE(h.suspect());
}

TEST_CASE("Topology NodeHealth: an unreachable fresh node goes down after the threshold") {
  NodeHealth h(Policy());
  CHECK(h.OnFailure(Failure::kProbeError, 0) == Change::kNone);
  CHECK(h.OnFailure(Failure::kProbeError, 500) == Change::kNone);
  CHECK(h.state() == State::kUnknown);
  CHECK(h.OnFailure(Failure::kProbeError, 1000) == Change::kWentDown);
  CHECK(h.state() == State::kDown);
  // From then on the normal recovery rule: successes and the hold.
  CHECK(h.OnSuccess(1500) == Change::kNone);
  CHECK(h.OnSuccess(2000) == Change::kNone);
  CHECK(h.OnSuccess(2500) == Change::kNone);
  CHECK(h.OnSuccess(11'000) == Change::kWentUp);
}

TEST_CASE("Topology NodeHealth: consecutive failures; a success in between resets the count") {
  NodeHealth h(Policy());
  h.OnSuccess(0);
  CHECK(h.OnFailure(Failure::kProbeError, 500) == Change::kNone);
  CHECK(h.OnFailure(Failure::kProbeError, 1000) == Change::kNone);
  CHECK(h.OnSuccess(1500) == Change::kNone);
  CHECK(h.consecutive_failures() == 0);
  CHECK(h.OnFailure(Failure::kProbeError, 2000) == Change::kNone);
  CHECK(h.OnFailure(Failure::kProbeError, 2500) == Change::kNone);
  CHECK(h.up());
  CHECK(h.OnFailure(Failure::kProbeError, 3000) == Change::kWentDown);
  CHECK(h.changed_at_ms() == 3000);
  CHECK(h.OnFailure(Failure::kProbeError, 3500) == Change::kNone);  // reported once
}

TEST_CASE("Topology NodeHealth: timeouts count like errors; data-path failures quarantine") {
  NodeHealth a(Policy());
  a.OnSuccess(0);
  // One slow probe on a busy machine is no verdict; failures_to_down of them are.
  CHECK(a.OnFailure(Failure::kProbeTimeout, 100) == Change::kNone);
  CHECK(a.OnFailure(Failure::kProbeTimeout, 600) == Change::kNone);
  CHECK(a.OnFailure(Failure::kProbeTimeout, 1100) == Change::kWentDown);
  NodeHealth b(Policy());
  b.OnSuccess(0);
  CHECK(b.OnFailure(Failure::kDataPath, 100) == Change::kWentDown);
  NodeHealth c(Policy());  // before the first probe, too
  CHECK(c.OnFailure(Failure::kDataPath, 100) == Change::kWentDown);
}

TEST_CASE("Topology NodeHealth: recovery needs the successes AND the hold") {
  NodeHealth h(Policy());
  h.OnSuccess(0);
  h.OnFailure(Failure::kDataPath, 1000);
  // Enough successes but inside the hold.
  for (uint64_t t = 1500; t < 11'000; t += 500) {
    INFO(t);
    CHECK(h.OnSuccess(t) == Change::kNone);
  }
  CHECK(h.OnSuccess(11'000) == Change::kWentUp);
  CHECK(h.changed_at_ms() == 11'000);

  // The hold has passed but too few successes.
  h.OnFailure(Failure::kDataPath, 20'000);
  CHECK(h.OnSuccess(40'000) == Change::kNone);
  CHECK(h.OnSuccess(40'500) == Change::kNone);
  CHECK(h.OnSuccess(41'000) == Change::kWentUp);
}

TEST_CASE("Topology NodeHealth: flapping stays down; the hold restarts at each failure") {
  NodeHealth h(Policy());
  h.OnSuccess(0);
  h.OnFailure(Failure::kDataPath, 1000);
  uint64_t t = 1000;
  // Three good probes, one bad, for 30 s: never back up.
  for (int round = 0; round < 15; ++round) {
    for (int i = 0; i < 3; ++i) {
      t += 500;
      CHECK(h.OnSuccess(t) == Change::kNone);
    }
    t += 500;
    CHECK(h.OnFailure(Failure::kProbeError, t) == Change::kNone);
  }
  CHECK(h.state() == State::kDown);
  const uint64_t last_failure = t;
  for (t += 500; t < last_failure + 10'000; t += 500) CHECK(h.OnSuccess(t) == Change::kNone);
  CHECK(h.OnSuccess(last_failure + 10'000) == Change::kWentUp);
}

TEST_CASE("Topology NodeHealth: zero thresholds act as one") {
  NodeHealth h({.failures_to_down = 0, .successes_to_up = 0, .recover_hold_ms = 0});
  h.OnSuccess(0);
  CHECK(h.OnFailure(Failure::kProbeError, 1) == Change::kWentDown);
  CHECK(h.OnSuccess(2) == Change::kWentUp);
  CHECK(NodeHealthStateName(h.state()) == "up");
}

}  // namespace
}  // namespace pgregion::routing
