// Router: paused nodes (the admin console's PAUSE, nodes removed by a reload)
// get no new units.
#include <doctest/doctest.h>

#include <vector>

#include "routing/router.h"

namespace pgregion::routing {
namespace {

// A primary and two replicas, all in the proxy's region.
struct Cluster {
  Cluster() {
    for (size_t i = 0; i < 3; ++i) {
      NodeStatus n;
      n.name = i == 0 ? "primary" : (i == 1 ? "replica1" : "replica2");
      n.region = "local";
      n.index = i;
      n.up = true;
      n.role = i == 0 ? NodeRole::kPrimary : NodeRole::kReplica;
      n.rtt_known = true;
      n.rtt_us = 200;
      n.lsn = Lsn(0x1000);
      snap.nodes.push_back(n);
    }
    snap.primary_state = PrimaryState::kOne;
    snap.primary = 0;
    view.topology = &snap;
    view.roles_discovered = true;
    view.node_count = 3;
    view.local_region = "local";
    view.paused = paused;
    ctx.cluster = &view;
  }
  Route Write(Router& router) {
    RouteContext c = ctx;
    c.write = true;
    return router.Decide(c);
  }
  TopologySnapshot snap;
  std::vector<uint8_t> paused = std::vector<uint8_t>(3, 0);
  ClusterView view;
  RouteContext ctx;
};

TEST_CASE("Router: a paused replica gets no reads") {
  Cluster c;
  Router router;
  c.paused[1] = 1;
  for (int i = 0; i < 40; ++i) {
    Route r = router.Decide(c.ctx);
    CHECK(r.node == 2);
    CHECK(r.reason == RouteReason::kRead);
  }
  // Every replica paused: reads go to the primary, as when none is up.
  c.paused[2] = 1;
  Route r = router.Decide(c.ctx);
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kNoReplica);
  CHECK(c.Write(router).node == 0);
  // Resumed: both serve again.
  c.paused[1] = c.paused[2] = 0;
  bool saw[3] = {false, false, false};
  for (int i = 0; i < 100; ++i) saw[router.Decide(c.ctx).node] = true;
  CHECK(saw[1]);
  CHECK(saw[2]);
  CHECK_FALSE(saw[0]);
}

TEST_CASE("Router: a paused primary blocks what needs it (kPaused); reads go on") {
  Cluster c;
  Router router;
  c.paused[0] = 1;
  Route w = c.Write(router);
  CHECK(w.node == -1);
  CHECK(w.blocked == RouteBlock::kPaused);
  CHECK(RouteBlockName(w.blocked) == "paused");
  Route r = router.Decide(c.ctx);
  CHECK(r.node >= 1);
  CHECK(r.blocked == RouteBlock::kNone);
  // Everything paused: reads wait too.
  c.paused[1] = c.paused[2] = 1;
  r = router.Decide(c.ctx);
  CHECK(r.node == -1);
  CHECK(r.blocked == RouteBlock::kPaused);
  // A conflict is still refused as a conflict, never waited on.
  c.snap.nodes[1].role = NodeRole::kPrimary;
  c.snap.primary = -1;
  c.snap.primary_state = PrimaryState::kConflict;
  CHECK(c.Write(router).blocked == RouteBlock::kPrimaryConflict);
}

TEST_CASE("Router: before roles are discovered a paused first node blocks") {
  Cluster c;
  Router router;
  c.view.roles_discovered = false;
  c.paused[0] = 1;
  CHECK(c.Write(router).blocked == RouteBlock::kPaused);
  CHECK(router.Decide(c.ctx).blocked == RouteBlock::kPaused);
}

TEST_CASE("Router: a span shorter than the node list pauses nothing past it") {
  Cluster c;
  Router router;
  std::vector<uint8_t> one = {0};
  c.view.paused = one;
  CHECK(c.Write(router).node == 0);
  CHECK(router.Decide(c.ctx).node >= 1);
}

}  // namespace
}  // namespace pgregion::routing
