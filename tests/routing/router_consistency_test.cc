// Router: consistency levels, read-your-writes tokens and the wait budget.
#include <doctest/doctest.h>

#include <string_view>
#include <vector>

#include "routing/router.h"

namespace pgregion::routing {
namespace {

constexpr uint64_t kMs = 1000;  // RTTs are in microseconds
constexpr uint64_t kSysId = 7;

// Seen from the eu-west proxy:
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
    snap.system_identifier = kSysId;
    snap.timeline = 1;
    outstanding.assign(snap.nodes.size(), 0);
    view.topology = &snap;
    view.roles_discovered = true;
    view.node_count = snap.nodes.size();
    view.local_region = "eu-west";
    view.max_replica_lag_ms = 1000;
    view.outstanding = outstanding;
    view.ryw_wait_ms = 50;
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
    n.system_identifier = kSysId;
    n.timeline = 1;
    snap.nodes.push_back(n);
  }
  NodeStatus& node(size_t i) { return snap.nodes[i]; }
  static RywToken Token(uint64_t lsn, uint32_t timeline = 1, uint64_t sysid = kSysId) {
    return RywToken{sysid, timeline, Lsn(lsn)};
  }
  Route Read() { return router.Decide(ctx); }

  TopologySnapshot snap;
  std::vector<uint32_t> outstanding;
  ClusterView view;
  RouteContext ctx;
  Router router{3};
};

TEST_CASE("Consistency: strong reads go to the primary, whatever else the unit says") {
  Fixture f;
  f.ctx.consistency = Consistency::kStrong;
  Route r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kConsistency);
  CHECK(RouteReasonName(r.reason) == "consistency");
  f.ctx.begins_transaction = true;
  f.ctx.read_only_transaction = true;  // BEGIN READ ONLY
  CHECK(f.Read().reason == RouteReason::kConsistency);
  f.ctx.preference = RoutePreference::kReplica;  // route=replica does not weaken strong
  CHECK(f.Read().node == 0);
  // Writes keep their own reason.
  f.ctx.write = true;
  CHECK(f.Read().reason == RouteReason::kWrite);
}

TEST_CASE("Consistency: causal reads need a replica that replayed the token") {
  Fixture f;
  // No token: any replica within the lag limit.
  CHECK(f.Read().node == 1);
  // The local replica is behind the token, the far one has it: the far replica
  // serves (a replica that has it beats the primary).
  f.ctx.session_token = Fixture::Token(0x6000);
  f.node(2).lsn = Lsn(0x7000);
  Route r = f.Read();
  CHECK(r.node == 2);
  CHECK(r.reason == RouteReason::kRead);
  // Nobody has it: the primary, and the local replica is worth a wait of
  // min(50, 80 - 0.3) ms.
  f.node(2).lsn = Lsn(0x5000);
  r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kRywFallback);
  CHECK(r.wait_node == 1);
  CHECK(r.wait_ms == 50);
  // After the wait: the primary, no second wait.
  f.ctx.ryw_wait_over = true;
  r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.wait_ms == 0);
  f.ctx.ryw_wait_over = false;
  // The replica catches up: served there.
  f.node(1).lsn = Lsn(0x6000);
  CHECK(f.Read().node == 1);
  // A hint token beyond the session's counts too (the later of the two).
  f.ctx.hint_token = Fixture::Token(0x6100);
  CHECK(f.Read().reason == RouteReason::kRywFallback);
  f.ctx.hint_token = Fixture::Token(0x5100);
  CHECK(f.Read().node == 1);
}

TEST_CASE("Consistency: a write whose token is not known yet keeps causal reads on the primary") {
  Fixture f;
  f.ctx.write_pending = true;
  Route r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kRywFallback);
  CHECK(r.wait_node == -1);
  CHECK(r.wait_ms == 0);
  // Other levels do not promise read-your-writes.
  f.ctx.consistency = Consistency::kEventual;
  CHECK(f.Read().node == 1);
  f.ctx.consistency = Consistency::kBounded;
  CHECK(f.Read().node == 1);
}

TEST_CASE("Consistency: with a single node a pending write is no fallback") {
  // A single-node instance never probes for tokens (nothing to read from).
  Fixture f;
  f.snap.nodes.resize(1);
  f.outstanding.resize(1);
  f.view.node_count = 1;
  f.view.outstanding = f.outstanding;
  f.ctx.write_pending = true;
  const Route r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kNoReplica);
  CHECK(r.wait_ms == 0);
}

TEST_CASE("Consistency: tokens from another cluster or a newer timeline never wait") {
  Fixture f;
  f.ctx.session_token = Fixture::Token(0x100, 1, kSysId + 1);
  Route r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kConsistency);
  // A token from timeline 2 (made after a failover this proxy has not seen
  // yet, or whose replicas have not switched): no replica can serve or be
  // waited on, so the primary at once.
  f.ctx.session_token = Fixture::Token(0x100, 2);
  r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kRywFallback);
  CHECK(r.wait_node == -1);
  CHECK(r.wait_ms == 0);
  // Once a replica follows timeline 2 and has replayed past the token, it serves.
  f.node(1).timeline = 2;
  CHECK(f.Read().node == 1);
}

TEST_CASE("Consistency: bounded and eventual use the lag limits") {
  Fixture f;
  f.node(1).lag_ms = 400;
  f.node(2).lag_ms = 100;
  f.ctx.consistency = Consistency::kBounded;
  f.ctx.max_staleness_ms = 500;
  CHECK(f.Read().node == 1);
  f.ctx.max_staleness_ms = 200;  // only the far replica is fresh enough
  CHECK(f.Read().node == 2);
  f.ctx.max_staleness_ms = 50;
  Route r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kLagFallback);
  // bounded never loosens max_replica_lag_ms.
  f.ctx.max_staleness_ms = 100'000;
  f.node(1).lag_ms = 5000;
  CHECK(f.Read().node == 2);
  // eventual: the lag limit is off, tokens do not matter.
  f.ctx.consistency = Consistency::kEventual;
  f.ctx.session_token = Fixture::Token(0x9000);
  CHECK(f.Read().node == 1);
}

TEST_CASE("Consistency: the wait budget is min(ryw_wait_ms, RTT(primary) - RTT(replica))") {
  Fixture f;
  CHECK(RywWaitBudgetMs(f.snap, 1, 50) == 50);
  CHECK(RywWaitBudgetMs(f.snap, 1, 30) == 30);
  CHECK(RywWaitBudgetMs(f.snap, 1, 1000) == 79);  // (80 ms - 0.3 ms), whole ms
  CHECK(RywWaitBudgetMs(f.snap, 1, 0) == 0);      // ryw_wait_ms = 0: never wait
  // The far replica is further than the primary: waiting costs more than the detour.
  CHECK(RywWaitBudgetMs(f.snap, 2, 50) == 0);
  f.node(2).rtt_us = 80 * kMs;  // as far as the primary
  CHECK(RywWaitBudgetMs(f.snap, 2, 50) == 0);
  f.node(2).rtt_us = 79'500;  // half a millisecond nearer: rounds down to nothing
  CHECK(RywWaitBudgetMs(f.snap, 2, 50) == 0);
  // Unknown RTTs, paused replay, bad indexes: no wait.
  f.node(1).rtt_known = false;
  CHECK(RywWaitBudgetMs(f.snap, 1, 50) == 0);
  f.node(1).rtt_known = true;
  f.node(1).replay_paused = true;
  CHECK(RywWaitBudgetMs(f.snap, 1, 50) == 0);
  f.node(1).replay_paused = false;
  CHECK(RywWaitBudgetMs(f.snap, -1, 50) == 0);
  CHECK(RywWaitBudgetMs(f.snap, 9, 50) == 0);
  f.node(0).rtt_known = false;
  CHECK(RywWaitBudgetMs(f.snap, 1, 50) == 0);
  // No primary (a failover): the detour is unbounded, the configured wait applies.
  f.snap.primary = -1;
  f.snap.primary_state = PrimaryState::kNone;
  CHECK(RywWaitBudgetMs(f.snap, 1, 50) == 50);
}

TEST_CASE("Consistency: a primary next door leaves nothing to wait for") {
  Fixture f;
  f.node(0).rtt_us = 200;  // the primary is nearer than the replica
  f.ctx.session_token = Fixture::Token(0x6000);
  Route r = f.Read();
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kRywFallback);
  CHECK(r.wait_node == 1);
  CHECK(r.wait_ms == 0);
  f.view.ryw_wait_ms = 0;
  f.node(0).rtt_us = 80 * kMs;
  CHECK(f.Read().wait_ms == 0);
}

TEST_CASE("Consistency: tokens exactly at page and segment starts") {
  Fixture f;
  // A commit that ended exactly at a page boundary: the token (the insert LSN)
  // points past the next page's header, an idle replica stops at the boundary.
  const uint64_t page = 0x3000000 + 5 * 8192;
  f.ctx.session_token = Fixture::Token(page + kWalShortPageHeaderSize);
  f.node(1).lsn = Lsn(page);
  Route r = f.Read();
  CHECK(r.node == 1);
  CHECK(r.reason == RouteReason::kRead);
  f.node(1).lsn = Lsn(page - 8);  // the commit record not replayed yet
  CHECK(f.Read().reason == RouteReason::kRywFallback);
  // The first page of a segment has the long header (40 bytes).
  const uint64_t segment = uint64_t{9} * 16 * 1024 * 1024;
  f.ctx.session_token = Fixture::Token(segment + kWalLongPageHeaderSize);
  f.node(1).lsn = Lsn(segment);
  CHECK(f.Read().node == 1);
  f.node(1).lsn = Lsn(segment - 8);
  CHECK(f.Read().reason == RouteReason::kRywFallback);
  // 24 bytes into a segment's first page is inside its long header: the plain
  // rule applies, a replica at the segment start has not replayed it.
  f.ctx.session_token = Fixture::Token(segment + kWalShortPageHeaderSize);
  f.node(1).lsn = Lsn(segment);
  CHECK(f.Read().reason == RouteReason::kRywFallback);
}

}  // namespace
}  // namespace pgregion::routing
