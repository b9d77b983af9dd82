#include "routing/router.h"

#include <doctest/doctest.h>

#include <map>
#include <string_view>
#include <vector>

namespace pgregion::routing {
namespace {

constexpr uint64_t kMs = 1000;  // RTTs are in microseconds

// The three-region example, seen from the eu-west proxy:
//   0 pg-us   primary  us-east   80 ms
//   1 pg-eu   replica  eu-west    0.3 ms
//   2 pg-ap   replica  ap-south 180 ms
struct Fixture {
  Fixture() {
    Add("pg-us", "us-east", NodeRole::kPrimary, 80 * kMs);
    Add("pg-eu", "eu-west", NodeRole::kReplica, 300);
    Add("pg-ap", "ap-south", NodeRole::kReplica, 180 * kMs);
    snap.primary_state = PrimaryState::kOne;
    snap.primary = 0;
    snap.system_identifier = 7;
    outstanding.assign(snap.nodes.size(), 0);
    view.topology = &snap;
    view.roles_discovered = true;
    view.node_count = snap.nodes.size();
    view.local_region = "eu-west";
    view.max_replica_lag_ms = 1000;
    view.outstanding = outstanding;
    ctx.cluster = &view;
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
    n.system_identifier = 7;
    n.timeline = 1;
    snap.nodes.push_back(n);
  }
  NodeStatus& node(size_t i) { return snap.nodes[i]; }
  void Conflict() {  // pg-eu was promoted while pg-us stays up
    node(1).role = NodeRole::kPrimary;
    snap.primary = -1;
    snap.primary_state = PrimaryState::kConflict;
    snap.system_identifier = 0;
    for (NodeStatus& n : snap.nodes) n.lag_known = false;
  }
  void NoPrimary() {  // pg-us went down, nobody promoted yet
    node(0).up = false;
    node(0).health = NodeHealth::State::kDown;
    snap.primary = -1;
    snap.primary_state = PrimaryState::kNone;
    snap.system_identifier = 0;
    for (NodeStatus& n : snap.nodes) n.lag_known = false;
  }
  Route Read() {
    RouteContext c = ctx;
    return router.Decide(c);
  }
  Route Write() {
    RouteContext c = ctx;
    c.write = true;
    return router.Decide(c);
  }

  TopologySnapshot snap;
  std::vector<uint32_t> outstanding;
  ClusterView view;
  RouteContext ctx;
  Router router{1};
};

TEST_CASE("Router: reads go to the nearest replica, writes to the discovered primary") {
  Fixture f;
  for (int i = 0; i < 50; ++i) {
    const Route r = f.Read();
    CHECK(r.node == 1);
    CHECK(r.reason == RouteReason::kRead);
    CHECK(r.blocked == RouteBlock::kNone);
  }
  const Route w = f.Write();
  CHECK(w.node == 0);
  CHECK(w.reason == RouteReason::kWrite);
  // The primary is discovered, not configured: here it is listed last.
  f.node(0).role = NodeRole::kReplica;
  f.node(2).role = NodeRole::kPrimary;
  f.snap.primary = 2;
  CHECK(f.Write().node == 2);
  CHECK(f.Read().node == 1);
  // With the local replica gone, the next-nearest replica (pg-us at 80 ms).
  f.node(1).up = false;
  CHECK(f.Read().node == 0);
  CHECK(f.Read().reason == RouteReason::kRead);
}

TEST_CASE("Router: every unit that needs the primary goes there, with its reason") {
  Fixture f;
  struct Case {
    const char* what;
    RouteContext ctx;
    RouteReason reason;
  };
  std::vector<Case> cases;
  RouteContext c = f.ctx;
  c.parse_error = true;
  cases.push_back({"parse error", c, RouteReason::kParseError});
  c = f.ctx;
  c.too_complex = true;
  c.preference = RoutePreference::kReplica;  // a hint cannot send an unparsed text to a replica
  cases.push_back({"over the classifier budget", c, RouteReason::kTooComplex});
  c = f.ctx;
  c.session_pooling = true;
  cases.push_back({"session pooling", c, RouteReason::kSession});
  c = f.ctx;
  c.pinned = true;
  cases.push_back({"pinned", c, RouteReason::kPinned});
  c = f.ctx;
  c.write = true;
  c.preference = RoutePreference::kReplica;  // a replica hint never moves a write
  cases.push_back({"write with replica hint", c, RouteReason::kWrite});
  c = f.ctx;
  c.preference = RoutePreference::kPrimary;
  c.preference_from_hint = true;
  cases.push_back({"primary hint", c, RouteReason::kHint});
  c = f.ctx;
  c.begins_transaction = true;
  cases.push_back({"read-write BEGIN", c, RouteReason::kTransaction});
  for (const Case& k : cases) {
    INFO(k.what);
    const Route r = f.router.Decide(k.ctx);
    CHECK(r.node == 0);
    CHECK(r.reason == k.reason);
  }
  // Read-only transactions and replica hints are reads.
  c = f.ctx;
  c.begins_transaction = true;
  c.read_only_transaction = true;
  CHECK(f.router.Decide(c).node == 1);
  CHECK(f.router.Decide(c).reason == RouteReason::kRead);
  c = f.ctx;
  c.preference = RoutePreference::kReplica;
  c.preference_from_hint = true;
  CHECK(f.router.Decide(c).node == 1);
  CHECK(f.router.Decide(c).reason == RouteReason::kHint);
  c.preference_from_hint = false;  // SET pgregion.route = replica
  CHECK(f.router.Decide(c).reason == RouteReason::kRead);
}

TEST_CASE("Router: no replica up -> the primary, no_replica") {
  Fixture f;
  f.node(1).up = false;
  f.node(2).up = false;
  const Route r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kNoReplica);
  CHECK(RouteReasonName(r.reason) == "no_replica");
}

TEST_CASE("Router: every replica beyond max_replica_lag_ms -> the primary, lag_fallback") {
  Fixture f;
  f.node(1).lag_ms = 1001;
  CHECK(f.Read().node == 2);  // the far replica is fresh: it serves
  f.node(2).lag_ms = 5000;
  const Route r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kLagFallback);
  CHECK(RouteReasonName(r.reason) == "lag_fallback");
  f.view.max_replica_lag_ms = 10'000;  // the view is read at each decision
  CHECK(f.Read().node == 1);
  CHECK(f.Read().reason == RouteReason::kRead);
}

TEST_CASE("Router: two primaries -> writes blocked as a conflict, reads go on") {
  Fixture f;
  f.Conflict();
  for (bool pinned : {false, true}) {
    RouteContext c = f.ctx;
    c.write = !pinned;
    c.pinned = pinned;
    const Route r = f.router.Decide(c);
    CHECK(r.node == -1);
    CHECK(r.blocked == RouteBlock::kPrimaryConflict);
    CHECK(RouteBlockName(r.blocked) == "primary_conflict");
  }
  // pg-ap is still a replica: it serves every read.
  for (int i = 0; i < 20; ++i) CHECK(f.Read().node == 2);
  // Without a replica, a read has nowhere safe to go either.
  f.node(2).up = false;
  const Route r = f.Read();
  CHECK(r.node == -1);
  CHECK(r.blocked == RouteBlock::kPrimaryConflict);
}

TEST_CASE("Router: no primary -> writes wait (kNoPrimary), reads go on") {
  Fixture f;
  f.NoPrimary();
  const Route w = f.Write();
  CHECK(w.node == -1);
  CHECK(w.blocked == RouteBlock::kNoPrimary);
  CHECK(RouteBlockName(w.blocked) == "no_primary");
  CHECK(f.Read().node == 1);
  f.node(1).up = false;
  f.node(2).up = false;
  const Route r = f.Read();
  CHECK(r.node == -1);
  CHECK(r.blocked == RouteBlock::kNoPrimary);
  CHECK(r.reason == RouteReason::kNoReplica);
}

TEST_CASE("Router: before roles are discovered the first node serves everything") {
  Fixture f;
  f.view.roles_discovered = false;
  f.NoPrimary();  // whatever the snapshot says
  CHECK(f.Write().node == 0);
  CHECK(f.Write().blocked == RouteBlock::kNone);
  const Route r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kNoReplica);
  // No cluster, or no node at all.
  RouteContext c;
  CHECK(f.router.Decide(c).node == -1);
  CHECK(f.router.Decide(c).blocked == RouteBlock::kNoNode);
  f.view.node_count = 0;
  CHECK(f.Read().blocked == RouteBlock::kNoNode);
}

TEST_CASE("Router: requests in flight spread reads over equally near replicas") {
  Fixture f;
  f.Add("pg-eu-2", "eu-west", NodeRole::kReplica, 700);  // both under 1 ms: one class
  f.outstanding.assign(f.snap.nodes.size(), 0);
  f.view.outstanding = f.outstanding;
  f.view.node_count = f.snap.nodes.size();
  std::map<int, int> counts;
  for (int i = 0; i < 400; ++i) ++counts[f.Read().node];
  CHECK(counts.size() == 2);
  CHECK(counts[1] > 100);
  CHECK(counts[3] > 100);
  // A replica with requests piling up gets nothing while the other is idle.
  f.outstanding[1] = 5;
  for (int i = 0; i < 50; ++i) CHECK(f.Read().node == 3);
  // The latency tracker's slow start after a re-admission counts too.
  f.outstanding[1] = 0;
  LatencyTracker latency(f.snap.nodes.size());
  latency.Readmit(3, 0);
  f.view.latency = &latency;
  f.ctx.now_ms = 1;
  for (int i = 0; i < 50; ++i) CHECK(f.Read().node == 1);
}

TEST_CASE("Router: reason and block names") {
  CHECK(RouteReasonName(RouteReason::kRead) == "read");
  CHECK(RouteReasonName(RouteReason::kWrite) == "write");
  CHECK(RouteReasonName(RouteReason::kRywFallback) == "ryw_fallback");
  CHECK(RouteReasonName(RouteReason::kTooComplex) == "too_complex");
  CHECK(RouteBlockName(RouteBlock::kNone) == "none");
  CHECK(RouteBlockName(RouteBlock::kNoNode) == "no_node");
}

}  // namespace
}  // namespace pgregion::routing
