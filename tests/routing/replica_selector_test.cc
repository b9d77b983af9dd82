#include "routing/replica_selector.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string_view>
#include <vector>

namespace pgregion::routing {
namespace {

constexpr uint64_t kSysId = 42;
constexpr uint64_t kMs = 1000;  // RTTs are in microseconds

// Five nodes; the proxy runs in eu-west.
//   0 pg-us    primary  us-east   80 ms
//   1 pg-eu-a  replica  eu-west    1 ms
//   2 pg-eu-b  replica  eu-west    1 ms
//   3 pg-us-r  replica  us-east   80 ms
//   4 pg-ap    replica  ap-south 180 ms
struct Fixture {
  Fixture() {
    Add("pg-us", "us-east", NodeRole::kPrimary, 80 * kMs);
    Add("pg-eu-a", "eu-west", NodeRole::kReplica, 1 * kMs);
    Add("pg-eu-b", "eu-west", NodeRole::kReplica, 1 * kMs);
    Add("pg-us-r", "us-east", NodeRole::kReplica, 80 * kMs);
    Add("pg-ap", "ap-south", NodeRole::kReplica, 180 * kMs);
    snap.primary_state = PrimaryState::kOne;
    snap.primary = 0;
    snap.system_identifier = kSysId;
    snap.timeline = 1;
    req.topology = &snap;
    req.local_region = "eu-west";
    req.max_replica_lag_ms = 5000;
  }
  void Add(std::string_view name, std::string_view region, NodeRole role, uint64_t rtt) {
    NodeStatus n;
    n.name = name;
    n.region = region;
    n.index = snap.nodes.size();
    n.up = true;
    n.health = NodeHealth::State::kUp;
    n.role = role;
    n.rtt_known = true;
    n.rtt_us = rtt;
    n.lsn = Lsn(0x5000);
    n.lag_known = role == NodeRole::kReplica;
    n.system_identifier = kSysId;
    n.timeline = 1;
    snap.nodes.push_back(n);
  }
  NodeStatus& node(size_t i) { return snap.nodes[i]; }
  void Down(std::initializer_list<size_t> nodes) {
    for (size_t i : nodes) {
      snap.nodes[i].up = false;
      snap.nodes[i].health = NodeHealth::State::kDown;
    }
  }
  // How often each node is chosen over `picks` selections (outstanding unchanged).
  std::map<int, int> Count(ReplicaSelector& sel, int picks) {
    std::map<int, int> counts;
    for (int i = 0; i < picks; ++i) ++counts[sel.Select(req).node];
    return counts;
  }

  TopologySnapshot snap;
  ReadRequest req;
};

TEST_CASE("Replica selection: the local region's replicas are preferred") {
  Fixture f;
  ReplicaSelector sel(1);
  const auto counts = f.Count(sel, 1000);
  CHECK(counts.size() == 2);
  CHECK(counts.count(1) == 1);
  CHECK(counts.count(2) == 1);
  const ReadSelection s = sel.Select(f.req);
  CHECK(s.choice == ReadChoice::kReplica);
  CHECK(s.wait_node == -1);
}

TEST_CASE("Replica selection: local replicas down -> the nearest other region") {
  Fixture f;
  f.Down({1, 2});
  ReplicaSelector sel(2);
  const auto counts = f.Count(sel, 200);
  CHECK(counts.size() == 1);
  CHECK(counts.at(3) == 200);  // us-east at 80 ms, not ap-south at 180 ms
  // And when that region is gone too: spill to the next.
  f.Down({3});
  CHECK(sel.Select(f.req).node == 4);
}

TEST_CASE("Replica selection: a suspect replica gets no reads; all suspect -> the primary") {
  Fixture f;
  f.node(1).suspect = true;  // up, but its last probe timed out
  ReplicaSelector sel(3);
  const auto counts = f.Count(sel, 200);
  CHECK(counts.size() == 1);
  CHECK(counts.at(2) == 200);
  for (size_t i = 2; i < f.snap.nodes.size(); ++i) f.node(i).suspect = true;
  const ReadSelection s = sel.Select(f.req);
  CHECK(s.node == 0);
  CHECK(s.choice == ReadChoice::kNoReplica);
}

TEST_CASE("Replica selection: a remote tier is every candidate within 1.5 x best + 2 ms") {
  Fixture f;
  f.Down({1, 2});
  f.node(3).rtt_us = 40 * kMs;
  f.node(4).rtt_us = 62 * kMs;  // 1.5 x 40 + 2 = 62: in the tier
  ReplicaSelector sel(3);
  // Inside the tier the scores decide: with no load the 40 ms replica wins...
  CHECK(f.Count(sel, 100)[3] == 100);
  // ...and once it has requests in flight the 62 ms one is a candidate too.
  std::vector<uint32_t> outstanding(f.snap.nodes.size(), 0);
  outstanding[3] = 2;  // 40 x 3 > 62 x 1
  f.req.outstanding = outstanding;
  CHECK(f.Count(sel, 100)[4] == 100);
  f.node(4).rtt_us = 62 * kMs + 1;  // just outside: never, whatever the load
  outstanding[3] = 1000;
  CHECK(f.Count(sel, 100)[3] == 100);
}

TEST_CASE("Replica selection: the local tier wins even when a remote replica has a lower RTT") {
  Fixture f;
  f.node(1).rtt_us = 30 * kMs;  // a slow local link
  f.node(2).up = false;
  f.node(3).rtt_us = 5 * kMs;
  ReplicaSelector sel(4);
  CHECK(sel.Select(f.req).node == 1);
  // A proxy whose region has no node at all: pure RTT tiers.
  f.req.local_region = "sa-east";
  CHECK(sel.Select(f.req).node == 3);
}

TEST_CASE("Replica selection: equal RTT spreads load with two choices, no herding") {
  Fixture f;
  f.Add("pg-eu-c", "eu-west", NodeRole::kReplica, 1 * kMs);
  f.Add("pg-eu-d", "eu-west", NodeRole::kReplica, 1 * kMs);
  const std::vector<size_t> local = {1, 2, 5, 6};
  ReplicaSelector sel(5);

  // Requests that never finish: each pick adds one outstanding request.
  std::vector<uint32_t> outstanding(f.snap.nodes.size(), 0);
  f.req.outstanding = outstanding;
  for (int i = 0; i < 1000; ++i) {
    const ReadSelection s = sel.Select(f.req);
    REQUIRE(s.node >= 0);
    ++outstanding[static_cast<size_t>(s.node)];
  }
  uint32_t lo = UINT32_MAX, hi = 0;
  for (size_t i : local) {
    lo = std::min(lo, outstanding[i]);
    hi = std::max(hi, outstanding[i]);
  }
  CHECK(outstanding[1] + outstanding[2] + outstanding[5] + outstanding[6] == 1000);
  CHECK(hi - lo <= 3);  // two choices keep the spread tiny
  CHECK(outstanding[0] + outstanding[3] + outstanding[4] == 0);

  // Requests that finish before the next one: ties broken at random, still spread.
  std::fill(outstanding.begin(), outstanding.end(), 0);
  const auto counts = f.Count(sel, 4000);
  for (size_t i : local) {
    INFO(i);
    CHECK(counts.at(static_cast<int>(i)) > 700);
    CHECK(counts.at(static_cast<int>(i)) < 1300);
  }
}

TEST_CASE("Replica selection: RTTs within 2 ms or 20% are the same distance") {
  Fixture f;
  f.node(1).rtt_us = 150;  // probe noise on a LAN, not a real difference
  f.node(2).rtt_us = 2900;
  ReplicaSelector sel(14);
  auto counts = f.Count(sel, 1000);
  CHECK(counts.at(1) > 350);
  CHECK(counts.at(2) > 350);
  // Beyond the noise, the nearer one wins while neither is loaded...
  f.node(2).rtt_us = 3100;
  CHECK(f.Count(sel, 100)[1] == 100);
  // ...and load decides between equally near ones.
  f.node(1).rtt_us = 40 * kMs;
  f.node(2).rtt_us = 47 * kMs;  // within 20%
  std::vector<uint32_t> outstanding(f.snap.nodes.size(), 0);
  outstanding[1] = 1;
  f.req.outstanding = outstanding;
  CHECK(f.Count(sel, 100)[2] == 100);
  outstanding[1] = 0;
  counts = f.Count(sel, 1000);
  CHECK(counts.at(1) > 350);
  CHECK(counts.at(2) > 350);
}

TEST_CASE("Replica selection: two choices compare latency x (outstanding + 1)") {
  Fixture f;  // exactly two local candidates: both are always compared
  LatencyTracker latency(f.snap.nodes.size());
  std::vector<uint32_t> outstanding(f.snap.nodes.size(), 0);
  f.req.latency = &latency;
  f.req.outstanding = outstanding;
  f.req.now_ms = 1000;
  latency.Observe(1, 10 * kMs, 1000);  // pg-eu-a answers in 10 ms
  latency.Observe(2, 1 * kMs, 1000);   // pg-eu-b in 1 ms
  ReplicaSelector sel(6);
  CHECK(f.Count(sel, 100)[2] == 100);
  outstanding[2] = 9;  // 1 x 10 = 10 x 1: a tie, either
  auto counts = f.Count(sel, 400);
  CHECK(counts[1] > 100);
  CHECK(counts[2] > 100);
  outstanding[2] = 20;  // 1 x 21 > 10 x 1
  CHECK(f.Count(sel, 100)[1] == 100);
  // A short outstanding span counts the rest as 0.
  f.req.outstanding = std::span<const uint32_t>(outstanding.data(), 2);
  CHECK(f.Count(sel, 100)[2] == 100);
}

TEST_CASE("Replica selection: a re-admitted replica starts slow") {
  Fixture f;
  LatencyTracker latency(f.snap.nodes.size());
  f.req.latency = &latency;
  ReplicaSelector sel(7);
  latency.Readmit(2, 0);
  f.req.now_ms = 5000;  // halfway through the ramp: scores x 2.5
  CHECK(f.Count(sel, 200)[1] == 200);
  f.req.now_ms = 20'000;  // ramp over: shared again
  const auto counts = f.Count(sel, 1000);
  CHECK(counts.at(1) > 350);
  CHECK(counts.at(2) > 350);
}

TEST_CASE("Replica selection: lagging replicas are excluded; all lagging -> lag_fallback") {
  Fixture f;
  f.node(1).lag_ms = 5001;
  ReplicaSelector sel(8);
  CHECK(f.Count(sel, 100)[2] == 100);
  f.node(2).lag_ms = 5000;  // at the limit: still serves
  CHECK(sel.Select(f.req).node == 2);
  f.node(2).lag_ms = 9000;
  CHECK(sel.Select(f.req).node == 3);  // spill to the next tier
  f.node(3).lag_ms = 9000;
  f.node(4).lag_ms = 9000;
  ReadSelection s = sel.Select(f.req);
  CHECK(s.node == 0);
  CHECK(s.choice == ReadChoice::kLagFallback);
  CHECK(ReadChoiceName(s.choice) == "lag_fallback");
  // `eventual`: any healthy replica, however far behind.
  f.req.max_replica_lag_ms = kNoLagLimit;
  s = sel.Select(f.req);
  CHECK(s.choice == ReadChoice::kReplica);
  CHECK((s.node == 1 || s.node == 2));
}

TEST_CASE("Replica selection: bounded staleness tightens the lag limit") {
  Fixture f;
  f.node(1).lag_ms = 300;
  f.node(2).lag_ms = 50;
  f.req.max_staleness_ms = 100;
  ReplicaSelector sel(9);
  CHECK(f.Count(sel, 50)[2] == 50);
  f.node(2).lag_ms = 150;
  f.node(3).lag_ms = 150;
  f.node(4).lag_ms = 150;
  const ReadSelection s = sel.Select(f.req);
  CHECK(s.node == 0);
  CHECK(s.choice == ReadChoice::kLagFallback);
  // A looser staleness does not loosen max_replica_lag_ms.
  f.req.max_staleness_ms = 100'000;
  f.node(2).lag_ms = 6000;
  CHECK(f.Count(sel, 50)[1] == 50);
}

TEST_CASE("Replica selection: a paused replica serves while fresh, never waited on") {
  Fixture f;
  f.node(1).replay_paused = true;
  ReplicaSelector sel(10);
  // Within the lag limit a paused replica is as good as any.
  auto counts = f.Count(sel, 400);
  CHECK(counts[1] > 100);
  // Once its lag passes the limit it gets nothing.
  f.node(1).lag_ms = 6000;
  CHECK(f.Count(sel, 100)[2] == 100);
  // With a token neither local replica has replayed: only pg-eu-b is worth waiting on.
  f.node(1).lag_ms = 0;
  f.req.token = Lsn(0x9000);
  for (size_t i : {3, 4}) f.node(i).lsn = Lsn(0x8000);
  ReadSelection s = sel.Select(f.req);
  CHECK(s.choice == ReadChoice::kRywFallback);
  CHECK(s.node == 0);
  CHECK(s.wait_node == 2);
  f.node(2).replay_paused = true;
  s = sel.Select(f.req);
  CHECK(s.wait_node == 3);  // the nearest unpaused one, in the next tier
  f.node(3).replay_paused = true;
  f.node(4).replay_paused = true;
  s = sel.Select(f.req);
  CHECK(s.choice == ReadChoice::kRywFallback);
  CHECK(s.wait_node == -1);
}

TEST_CASE("Replica selection: read-your-writes token freshness") {
  Fixture f;
  f.req.token = Lsn(0x6000);
  f.node(1).lsn = Lsn(0x5000);  // local, not there yet
  f.node(2).lsn = Lsn(0x6000);  // local, exactly there
  f.node(3).lsn = Lsn(0x7000);
  f.node(4).lsn = Lsn(0x7000);
  ReplicaSelector sel(11);
  CHECK(f.Count(sel, 100)[2] == 100);
  // Only a remote replica has it: served there rather than by the primary.
  f.node(2).lsn = Lsn(0x5000);
  CHECK(f.Count(sel, 100)[3] == 100);
  // Nobody has it: the primary, reason ryw_fallback, wait on the nearest.
  f.node(3).lsn = Lsn(0x5000);
  f.node(4).lsn = Lsn(0x5000);
  ReadSelection s = sel.Select(f.req);
  CHECK(s.node == 0);
  CHECK(s.choice == ReadChoice::kRywFallback);
  CHECK(ReadChoiceName(s.choice) == "ryw_fallback");
  CHECK((s.wait_node == 1 || s.wait_node == 2));
  f.node(1).rtt_us = 2 * kMs;
  CHECK(sel.Select(f.req).wait_node == 2);
  // Lag excludes first: lagging replicas make it lag_fallback, not ryw_fallback.
  for (size_t i : {1, 2, 3, 4}) f.node(i).lag_ms = 9000;
  CHECK(sel.Select(f.req).choice == ReadChoice::kLagFallback);
}

TEST_CASE("Replica selection: the token page-boundary rule and the token timeline") {
  Fixture f;
  const uint64_t page = 0x3000000 + 3 * 8192;
  f.req.token = Lsn(page + kWalShortPageHeaderSize);
  for (size_t i : {1, 2, 3, 4}) f.node(i).lsn = Lsn(page - 8);
  f.node(2).lsn = Lsn(page);  // an idle replica stopped at the boundary
  ReplicaSelector sel(12);
  CHECK(sel.Select(f.req).node == 2);
  // A token from timeline 2 (after a failover): replicas still on timeline 1 can
  // neither serve it nor be waited on.
  f.req.token_timeline = 2;
  ReadSelection s = sel.Select(f.req);
  CHECK(s.choice == ReadChoice::kRywFallback);
  CHECK(s.node == 0);
  CHECK(s.wait_node == -1);
  f.node(1).timeline = 2;  // on the new timeline, not at the token yet: wait on it
  s = sel.Select(f.req);
  CHECK(s.choice == ReadChoice::kRywFallback);
  CHECK(s.wait_node == 1);
  f.node(2).timeline = 2;
  CHECK(sel.Select(f.req).node == 2);
}

TEST_CASE("Replica selection: no replica, no primary, conflicts and strangers") {
  Fixture f;
  ReplicaSelector sel(13);
  // Replicas all down: the primary, no_replica.
  f.Down({1, 2, 3, 4});
  ReadSelection s = sel.Select(f.req);
  CHECK(s.node == 0);
  CHECK(s.choice == ReadChoice::kNoReplica);
  CHECK(ReadChoiceName(s.choice) == "no_replica");
  // And no primary either: nothing can serve.
  f.Down({0});
  f.snap.primary = -1;
  f.snap.primary_state = PrimaryState::kNone;
  s = sel.Select(f.req);
  CHECK(s.node == -1);
  CHECK(s.choice == ReadChoice::kNoReplica);

  // No primary (failover in progress) but replicas up: reads go on, lag unknown.
  Fixture g;
  g.Down({0});
  g.snap.primary = -1;
  g.snap.primary_state = PrimaryState::kNone;
  g.snap.system_identifier = 0;
  for (size_t i : {1, 2, 3, 4}) {
    g.node(i).lag_known = false;
    g.node(i).lag_ms = 0;
  }
  CHECK(g.Count(sel, 100).count(-1) == 0);
  CHECK(sel.Select(g.req).choice == ReadChoice::kReplica);

  // Two primaries: replicas still serve reads; without replicas there is no node.
  Fixture h;
  h.node(3).role = NodeRole::kPrimary;
  h.snap.primary = -1;
  h.snap.primary_state = PrimaryState::kConflict;
  h.Down({1, 2, 4});
  s = sel.Select(h.req);
  CHECK(s.node == -1);
  CHECK(s.choice == ReadChoice::kNoReplica);

  // A standby of another cluster, or one without a replay position, is no candidate.
  Fixture k;
  k.node(1).system_identifier = 99;
  k.node(2).lsn = Lsn();
  CHECK(k.Count(sel, 100)[3] == 100);
  k.Down({3, 4});
  s = sel.Select(k.req);
  CHECK(s.node == 0);
  CHECK(s.choice == ReadChoice::kLagFallback);  // pg-eu-b is up but has no position

  // No snapshot at all.
  ReadRequest empty;
  CHECK(sel.Select(empty).node == -1);
  CHECK(ReadChoiceName(ReadChoice::kReplica) == "read");
}

TEST_CASE("Replica selection: the same seed gives the same choices") {
  Fixture f;
  f.Add("pg-eu-c", "eu-west", NodeRole::kReplica, 1 * kMs);
  ReplicaSelector a(77), b(77), c(78);
  std::vector<int> sa, sb, sc;
  for (int i = 0; i < 64; ++i) {
    sa.push_back(a.Select(f.req).node);
    sb.push_back(b.Select(f.req).node);
    sc.push_back(c.Select(f.req).node);
  }
  CHECK(sa == sb);
  CHECK(sa != sc);
}

}  // namespace
}  // namespace pgregion::routing
