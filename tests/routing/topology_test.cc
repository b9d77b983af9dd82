#include "routing/topology.h"

#include <doctest/doctest.h>

#include <vector>

namespace pgregion::routing {
namespace {

using Failure = NodeHealth::Failure;
using Change = NodeHealth::Change;

constexpr uint64_t kSysId = 7'300'000'000'000'000'001ull;

std::vector<NodeSpec> ThreeNodes() {
  return {{"pg-us", "us-east"}, {"pg-eu", "eu-west"}, {"pg-ap", "ap-south"}};
}

TopologyOptions Options() {
  TopologyOptions o;
  o.health = {.failures_to_down = 3, .successes_to_up = 3, .recover_hold_ms = 10'000};
  return o;
}

ProbeResult Primary(uint64_t lsn, uint64_t rtt_us = 1000, uint32_t timeline = 1) {
  ProbeResult p;
  p.in_recovery = false;
  p.lsn = Lsn(lsn);
  p.rtt_us = rtt_us;
  p.system_identifier = kSysId;
  p.timeline = timeline;
  p.connection_epoch = 1;
  return p;
}

ProbeResult Replica(uint64_t lsn, uint64_t rtt_us = 1000, uint64_t epoch = 1,
                    uint32_t timeline = 1) {
  ProbeResult p = Primary(lsn, rtt_us, timeline);
  p.in_recovery = true;
  p.connection_epoch = epoch;
  return p;
}

TEST_CASE("Topology: starts with every node unknown and no primary") {
  Topology topo(ThreeNodes(), Options());
  const auto snap = topo.snapshot();
  REQUIRE(snap != nullptr);
  REQUIRE(snap->nodes.size() == 3);
  CHECK(snap->primary_state == PrimaryState::kNone);
  CHECK(snap->primary == -1);
  CHECK(snap->PrimaryNode() == nullptr);
  for (const NodeStatus& n : snap->nodes) {
    CHECK_FALSE(n.up);
    CHECK(n.health == NodeHealth::State::kUnknown);
    CHECK(n.role == NodeRole::kUnknown);
  }
  CHECK(snap->nodes[1].name == "pg-eu");
  CHECK(snap->nodes[1].region == "eu-west");
  CHECK(snap->nodes[2].index == 2);
}

TEST_CASE("Topology: first probes discover roles; snapshots are immutable values") {
  Topology topo(ThreeNodes(), Options());
  const auto before = topo.snapshot();
  auto u = topo.OnProbeSuccess(0, Primary(0x5000), 100);
  CHECK(u.health == Change::kWentUp);
  CHECK_FALSE(u.readmitted);  // discovery, not a return
  CHECK(u.primary_changed);
  CHECK_FALSE(u.role_change.has_value());  // discovery is no role change
  CHECK_FALSE(u.failover);
  u = topo.OnProbeSuccess(1, Replica(0x5000), 110);
  CHECK(u.health == Change::kWentUp);
  CHECK_FALSE(u.primary_changed);

  const auto snap = topo.snapshot();
  CHECK(snap->version > before->version);
  CHECK(before->primary == -1);  // the old snapshot did not change under its reader
  CHECK(snap->primary_state == PrimaryState::kOne);
  CHECK(snap->primary == 0);
  CHECK(snap->system_identifier == kSysId);
  CHECK(snap->timeline == 1);
  CHECK(snap->nodes[0].is_primary());
  CHECK(snap->nodes[1].is_replica());
  CHECK(snap->nodes[1].up);
  CHECK(snap->nodes[1].lag_known);
  CHECK(snap->nodes[1].lag_bytes == 0);
  CHECK_FALSE(snap->nodes[2].up);
  CHECK(snap->failovers == 0);
}

TEST_CASE("Topology: RTT EWMA with alpha 0.25, reseeded after the node was down") {
  Topology topo(ThreeNodes(), Options());
  topo.OnProbeSuccess(1, Replica(1, 40'000), 0);
  CHECK(topo.snapshot()->nodes[1].rtt_us == 40'000);
  topo.OnProbeSuccess(1, Replica(1, 80'000), 500);
  CHECK(topo.snapshot()->nodes[1].rtt_us == 50'000);
  topo.OnProbeSuccess(1, Replica(1, 50'000), 1000);
  CHECK(topo.snapshot()->nodes[1].rtt_us == 50'000);
  topo.OnProbeFailure(1, Failure::kDataPath, 1500);
  CHECK_FALSE(topo.snapshot()->nodes[1].up);
  CHECK(topo.snapshot()->nodes[1].rtt_us == 50'000);  // kept while down
  topo.OnProbeSuccess(1, Replica(1, 90'000), 2000);
  CHECK(topo.snapshot()->nodes[1].rtt_us == 90'000);
}

TEST_CASE("Topology: hysteresis through the topology; flapping node stays out") {
  Topology topo(ThreeNodes(), Options());
  topo.OnProbeSuccess(0, Primary(100), 0);
  topo.OnProbeSuccess(1, Replica(100), 0);
  CHECK(topo.OnProbeFailure(1, Failure::kProbeError, 500).health == Change::kNone);
  CHECK(topo.OnProbeFailure(1, Failure::kProbeError, 1000).health == Change::kNone);
  CHECK(topo.snapshot()->nodes[1].up);
  CHECK(topo.OnProbeFailure(1, Failure::kProbeError, 1500).health == Change::kWentDown);
  CHECK_FALSE(topo.snapshot()->nodes[1].up);
  CHECK(topo.snapshot()->nodes[1].health == NodeHealth::State::kDown);
  uint64_t t = 1500;
  for (int i = 0; i < 8; ++i) {  // flaps: good, good, bad
    topo.OnProbeSuccess(1, Replica(100), t += 500);
    topo.OnProbeSuccess(1, Replica(100), t += 500);
    topo.OnProbeFailure(1, Failure::kProbeError, t += 500);
    CHECK_FALSE(topo.snapshot()->nodes[1].up);
  }
  const uint64_t quiet_from = t;
  TopologyUpdate u;
  while (t < quiet_from + 10'000) {
    u = topo.OnProbeSuccess(1, Replica(100), t += 500);
    if (u.health == Change::kWentUp) break;
  }
  CHECK(u.health == Change::kWentUp);
  CHECK(u.readmitted);
  CHECK(t == quiet_from + 10'000);
}

TEST_CASE("Topology: a data-path failure quarantines a node before the next probe") {
  Topology topo(ThreeNodes(), Options());
  topo.OnProbeSuccess(0, Primary(100), 0);
  topo.OnProbeSuccess(1, Replica(100), 0);
  auto u = topo.OnProbeFailure(1, Failure::kDataPath, 10);
  CHECK(u.health == Change::kWentDown);
  CHECK_FALSE(topo.snapshot()->nodes[1].up);
}

TEST_CASE("Topology: a probe timeout makes a node suspect at once; a success clears it") {
  Topology topo(ThreeNodes(), Options());
  topo.OnProbeSuccess(0, Primary(100), 0);
  topo.OnProbeSuccess(1, Replica(100), 0);
  auto u = topo.OnProbeFailure(1, Failure::kProbeTimeout, 700);
  CHECK(u.went_suspect);
  CHECK(u.health == Change::kNone);  // still up: one timeout counts once toward down
  CHECK(topo.snapshot()->nodes[1].up);
  CHECK(topo.snapshot()->nodes[1].suspect);
  CHECK_FALSE(topo.snapshot()->nodes[0].suspect);
  // Already suspect: no new report.
  CHECK_FALSE(topo.OnProbeSuspect(1, 1200).went_suspect);
  CHECK_FALSE(topo.OnProbeFailure(1, Failure::kProbeTimeout, 1500).went_suspect);
  topo.OnProbeSuccess(1, Replica(100), 1700);
  CHECK_FALSE(topo.snapshot()->nodes[1].suspect);
  CHECK(topo.snapshot()->nodes[1].up);
  // A connect still running past timeout_ms: suspect without counting a failure.
  const uint64_t version = topo.snapshot()->version;
  CHECK(topo.OnProbeSuspect(1, 2000).went_suspect);
  CHECK(topo.snapshot()->version > version);
  CHECK(topo.snapshot()->nodes[1].suspect);
  // An error reply is an answer: it counts, but makes nobody suspect.
  CHECK_FALSE(topo.OnProbeFailure(2, Failure::kProbeError, 2000).went_suspect);
  CHECK_FALSE(topo.snapshot()->nodes[2].suspect);
}

TEST_CASE("Topology: lag in bytes and estimated time") {
  Topology topo(ThreeNodes(), Options());
  // Primary writes 1 MB/s; probes every 500 ms.
  uint64_t t = 0;
  for (; t <= 5000; t += 500) topo.OnProbeSuccess(0, Primary(1'000'000 + t * 1000), t);
  // The eu replica is 2 s behind, the ap replica caught up.
  topo.OnProbeSuccess(1, Replica(1'000'000 + 3000 * 1000), 5000);
  topo.OnProbeSuccess(2, Replica(1'000'000 + 5000 * 1000), 5000);
  auto snap = topo.snapshot();
  CHECK(snap->nodes[1].lag_bytes == 2'000'000);
  CHECK(snap->nodes[1].lag_ms == 2000);
  CHECK(snap->nodes[2].lag_bytes == 0);
  CHECK(snap->nodes[2].lag_ms == 0);
  CHECK(snap->nodes[0].lag_bytes == 0);
  CHECK_FALSE(snap->nodes[0].lag_known);  // the primary has no lag

  // A replica ahead of the primary's last probe shows no lag.
  topo.OnProbeSuccess(2, Replica(1'000'000 + 5200 * 1000), 5200);
  CHECK(topo.snapshot()->nodes[2].lag_bytes == 0);

  // The primary goes away: lag unknown, reported as 0 (reads go on).
  for (int i = 0; i < 3; ++i) topo.OnProbeFailure(0, Failure::kProbeError, t += 500);
  snap = topo.snapshot();
  CHECK(snap->primary_state == PrimaryState::kNone);
  CHECK_FALSE(snap->nodes[1].lag_known);
  CHECK(snap->nodes[1].lag_bytes == 0);
  CHECK(snap->nodes[1].lag_ms == 0);
}

TEST_CASE("Topology: paused replica's lag grows while the primary writes") {
  Topology topo(ThreeNodes(), Options());
  ProbeResult paused = Replica(2000);
  paused.replay_paused = true;
  paused.replay_timestamp_us = 1'700'000'000'000'000;
  topo.OnProbeSuccess(0, Primary(2000), 0);
  topo.OnProbeSuccess(1, paused, 0);
  CHECK(topo.snapshot()->nodes[1].lag_ms == 0);
  CHECK(topo.snapshot()->nodes[1].replay_paused);
  CHECK(topo.snapshot()->nodes[1].replay_timestamp_us == 1'700'000'000'000'000);
  for (uint64_t t = 500; t <= 8000; t += 500) {
    topo.OnProbeSuccess(0, Primary(2000 + t), t);
    topo.OnProbeSuccess(1, paused, t);
  }
  const NodeStatus& r = topo.snapshot()->nodes[1];
  CHECK(r.lag_bytes == 8000);
  CHECK(r.lag_ms == 8000);
  // A primary cannot be "paused".
  ProbeResult p = Primary(10'500);
  p.replay_paused = true;
  topo.OnProbeSuccess(0, p, 8500);
  CHECK_FALSE(topo.snapshot()->nodes[0].replay_paused);
}

TEST_CASE("Topology: cached replay LSN is a lower bound, reset on reconnect or new timeline") {
  Topology topo(ThreeNodes(), Options());
  topo.OnProbeSuccess(0, Primary(0x9000), 0);
  topo.OnProbeSuccess(1, Replica(0x5000, 1000, /*epoch=*/1), 0);
  // The read-your-writes poller saw it further along.
  topo.OnReplayLsn(1, Lsn(0x6000), 10);
  CHECK(topo.snapshot()->nodes[1].lsn == Lsn(0x6000));
  // An older answer on the same connection does not lower it; nor does the poller.
  auto u = topo.OnProbeSuccess(1, Replica(0x5800, 1000, 1), 20);
  CHECK_FALSE(u.identity_reset);
  CHECK(topo.snapshot()->nodes[1].lsn == Lsn(0x6000));
  topo.OnReplayLsn(1, Lsn(0x5000), 30);
  CHECK(topo.snapshot()->nodes[1].lsn == Lsn(0x6000));
  // Reconnected (epoch 2): what it says now replaces the cache, even if lower.
  u = topo.OnProbeSuccess(1, Replica(0x4000, 1000, 2), 40);
  CHECK(u.identity_reset);
  CHECK(topo.snapshot()->nodes[1].lsn == Lsn(0x4000));
  // A new timeline resets as well.
  topo.OnReplayLsn(1, Lsn(0x7000), 50);
  u = topo.OnProbeSuccess(1, Replica(0x6500, 1000, 2, /*timeline=*/2), 60);
  CHECK(u.identity_reset);
  CHECK(topo.snapshot()->nodes[1].lsn == Lsn(0x6500));
  CHECK(topo.snapshot()->nodes[1].timeline == 2);
  // The poller's value is ignored for nodes that are down or not replicas.
  topo.OnReplayLsn(0, Lsn(0xFFFFF), 70);
  CHECK(topo.snapshot()->nodes[0].lsn == Lsn(0x9000));
  topo.OnProbeFailure(1, Failure::kDataPath, 80);
  topo.OnReplayLsn(1, Lsn(0xFFFFF), 90);
  CHECK(topo.snapshot()->nodes[1].lsn == Lsn(0x6500));
  // Out-of-range indexes are ignored.
  CHECK(topo.OnProbeSuccess(9, Primary(1), 100).health == Change::kNone);
  CHECK(topo.OnProbeFailure(9, Failure::kDataPath, 100).health == Change::kNone);
}

TEST_CASE("Topology: failover: primary lost, replica promoted, role changes and counts") {
  Topology topo(ThreeNodes(), Options());
  topo.OnProbeSuccess(0, Primary(0x1000), 0);
  topo.OnProbeSuccess(1, Replica(0x1000), 0);
  topo.OnProbeSuccess(2, Replica(0x1000), 0);
  // The primary dies.
  auto u = topo.OnProbeFailure(0, Failure::kDataPath, 500);
  CHECK(u.health == Change::kWentDown);
  CHECK(u.primary_changed);
  CHECK(topo.snapshot()->primary_state == PrimaryState::kNone);
  // pg_ctl promote on pg-eu: a new timeline, the same connection.
  u = topo.OnProbeSuccess(1, Primary(0x2000, 1000, 2), 1000);
  REQUIRE(u.role_change.has_value());
  CHECK(u.role_change->from == NodeRole::kReplica);
  CHECK(u.role_change->to == NodeRole::kPrimary);
  CHECK(u.primary_changed);
  CHECK(u.failover);
  auto snap = topo.snapshot();
  CHECK(snap->primary == 1);
  CHECK(snap->timeline == 2);
  CHECK(snap->failovers == 1);
  // The other replica follows; its lag is now measured against pg-eu.
  topo.OnProbeSuccess(2, Replica(0x1800, 1000, 1, 2), 1100);
  CHECK(topo.snapshot()->nodes[2].lag_bytes == 0x800);
  // The old primary comes back rewound as a replica: a role change, no new failover.
  uint64_t t = 1000;
  for (int i = 0; i < 30; ++i) {
    u = topo.OnProbeSuccess(0, Replica(0x2000, 1000, 2, 2), t += 500);
    if (i == 0) {
      REQUIRE(u.role_change.has_value());
      CHECK(u.role_change->from == NodeRole::kPrimary);
      CHECK(u.role_change->to == NodeRole::kReplica);
    } else {
      CHECK_FALSE(u.role_change.has_value());
    }
  }
  snap = topo.snapshot();
  CHECK(snap->nodes[0].up);
  CHECK(snap->nodes[0].is_replica());
  CHECK(snap->primary == 1);
  CHECK(snap->failovers == 1);
}

TEST_CASE("Topology: two primaries are a conflict until one remains") {
  Topology topo(ThreeNodes(), Options());
  topo.OnProbeSuccess(0, Primary(0x1000), 0);
  topo.OnProbeSuccess(1, Replica(0x1000), 0);
  // pg-eu promoted while pg-us still runs (split brain).
  auto u = topo.OnProbeSuccess(1, Primary(0x1100, 1000, 2), 500);
  CHECK(u.role_change.has_value());
  CHECK(u.primary_changed);
  CHECK_FALSE(u.failover);
  auto snap = topo.snapshot();
  CHECK(snap->primary_state == PrimaryState::kConflict);
  CHECK(snap->primary == -1);
  CHECK(snap->PrimaryNode() == nullptr);
  CHECK(snap->system_identifier == 0);
  // Still a conflict on the next probes.
  u = topo.OnProbeSuccess(0, Primary(0x1200), 1000);
  CHECK_FALSE(u.primary_changed);
  CHECK(topo.snapshot()->primary_state == PrimaryState::kConflict);
  // The old primary is fenced (stopped): pg-eu is the one.
  topo.OnProbeFailure(0, Failure::kProbeError, 1500);
  topo.OnProbeFailure(0, Failure::kProbeError, 2000);
  u = topo.OnProbeFailure(0, Failure::kProbeError, 2500);
  CHECK(u.primary_changed);
  CHECK(u.failover);
  snap = topo.snapshot();
  CHECK(snap->primary_state == PrimaryState::kOne);
  CHECK(snap->primary == 1);
  CHECK(snap->failovers == 1);
  CHECK(PrimaryStateName(PrimaryState::kConflict) == "conflict");
  CHECK(NodeRoleName(NodeRole::kReplica) == "replica");
}

TEST_CASE("Topology: the same primary returning is no failover and keeps its lag history") {
  Topology topo(ThreeNodes(), Options());
  for (uint64_t t = 0; t <= 2000; t += 500) topo.OnProbeSuccess(0, Primary(10'000 + t), t);
  topo.OnProbeFailure(0, Failure::kDataPath, 2500);
  uint64_t t = 2500;
  for (int i = 0; i < 30 && !topo.snapshot()->nodes[0].up; ++i) {
    topo.OnProbeSuccess(0, Primary(20'000, 1000, 1), t += 500);
  }
  CHECK(topo.snapshot()->primary == 0);
  CHECK(topo.snapshot()->failovers == 0);
  topo.OnProbeSuccess(1, Replica(12'000), t);
  // History from before the outage is kept (same node, same timeline): the
  // replica at 12'000 is behind since the primary passed it at t = 2000.
  CHECK(topo.snapshot()->nodes[1].lag_ms == t - 2000);
}

TEST_CASE("Topology: a reload adds a node at the end, unknown until probed") {
  Topology topo(ThreeNodes(), Options());
  topo.OnProbeSuccess(0, Primary(10'000), 100);
  const TopologySnapshotPtr before = topo.snapshot();
  CHECK(topo.AddNode(NodeSpec{"pg-sa", "sa-east"}, 200) == 3);
  CHECK(topo.size() == 4);
  const auto snap = topo.snapshot();
  REQUIRE(snap->nodes.size() == 4);
  CHECK(snap->nodes[3].name == "pg-sa");
  CHECK(snap->nodes[3].region == "sa-east");
  CHECK(snap->nodes[3].index == 3);
  CHECK_FALSE(snap->nodes[3].up);
  CHECK(snap->primary == 0);
  // A snapshot handed out before keeps its own names.
  CHECK(before->nodes.size() == 3);
  CHECK(before->nodes[2].name == "pg-ap");
  topo.OnProbeSuccess(3, Replica(9'000), 300);
  CHECK(topo.snapshot()->nodes[3].up);
  CHECK(topo.snapshot()->nodes[3].is_replica());
  CHECK(topo.snapshot()->nodes[3].lag_known);
}

TEST_CASE("Topology: a retired node is down for good and ignores probes") {
  Topology topo(ThreeNodes(), Options());
  topo.OnProbeSuccess(0, Primary(10'000), 100);
  topo.OnProbeSuccess(1, Replica(9'000), 100);
  TopologyUpdate u = topo.RetireNode(1, 200);
  CHECK_FALSE(u.primary_changed);
  auto snap = topo.snapshot();
  CHECK(snap->nodes[1].retired);
  CHECK_FALSE(snap->nodes[1].up);
  CHECK_FALSE(snap->nodes[1].lag_known);
  CHECK(snap->nodes[1].name == "pg-eu");  // the index stays
  CHECK(topo.size() == 3);
  for (uint64_t t = 300; t < 30'000; t += 500) {
    u = topo.OnProbeSuccess(1, Replica(9'500), t);
    CHECK(u.health == Change::kNone);
    topo.OnReplayLsn(1, Lsn(9'900), t);
  }
  CHECK_FALSE(topo.snapshot()->nodes[1].up);
  CHECK(topo.OnProbeFailure(1, Failure::kDataPath, 40'000).health == Change::kNone);
  CHECK(topo.RetireNode(1, 41'000).primary_changed == false);  // idempotent

  // Retiring the primary: no primary until another node reports the role.
  u = topo.RetireNode(0, 50'000);
  CHECK(u.primary_changed);
  CHECK(topo.snapshot()->primary_state == PrimaryState::kNone);
  topo.OnProbeSuccess(0, Primary(11'000), 50'500);
  CHECK(topo.snapshot()->primary == -1);
  // The same name added back is a new node at a new index.
  CHECK(topo.AddNode(NodeSpec{"pg-us", "us-east"}, 51'000) == 3);
  u = topo.OnProbeSuccess(3, Primary(11'000), 51'500);
  CHECK(u.primary_changed);
  CHECK(topo.snapshot()->primary == 3);
}

TEST_CASE("Topology: new health thresholds judge the next probes") {
  Topology topo(ThreeNodes(), Options());  // failures_to_down = 3
  topo.OnProbeSuccess(0, Primary(10'000), 0);
  topo.OnProbeFailure(0, Failure::kProbeError, 100);
  CHECK(topo.snapshot()->nodes[0].up);
  HealthPolicy quick{.failures_to_down = 2, .successes_to_up = 1, .recover_hold_ms = 0};
  topo.SetHealthPolicy(quick);
  CHECK(topo.OnProbeFailure(0, Failure::kProbeError, 200).health == Change::kWentDown);
  // Back after one success with no hold.
  CHECK(topo.OnProbeSuccess(0, Primary(10'000), 300).health == Change::kWentUp);
  // Nodes added later take the new policy too.
  topo.AddNode(NodeSpec{"pg-sa", "sa-east"}, 400);
  topo.OnProbeSuccess(3, Replica(9'000), 500);
  topo.OnProbeFailure(3, Failure::kProbeError, 600);
  CHECK(topo.OnProbeFailure(3, Failure::kProbeError, 700).health == Change::kWentDown);
}

TEST_CASE("Topology: a replica at the page boundary an idle primary is past is caught up") {
  Topology topo(ThreeNodes(), Options());
  for (uint64_t t = 0; t <= 20'000; t += 500) {
    topo.OnProbeSuccess(0, Primary(0x4000000 + 40), t);  // a segment's long header
    topo.OnProbeSuccess(1, Replica(0x4000000), t);
  }
  const auto snap = topo.snapshot();
  CHECK(snap->nodes[1].lag_known);
  CHECK(snap->nodes[1].lag_bytes == 0);
  CHECK(snap->nodes[1].lag_ms == 0);
}

}  // namespace
}  // namespace pgregion::routing
