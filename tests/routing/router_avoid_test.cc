// Router: a retried read avoids the replicas it failed on, then falls to the primary.
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
    ctx.cluster = &view;
  }
  TopologySnapshot snap;
  ClusterView view;
  RouteContext ctx;
};

TEST_CASE("Router: a read avoids the nodes in avoid_nodes") {
  Cluster c;
  Router router;
  for (int i = 0; i < 20; ++i) {
    c.ctx.avoid_nodes = uint64_t{1} << 1;
    Route r = router.Decide(c.ctx);
    CHECK(r.node == 2);
    CHECK(r.reason == RouteReason::kRead);
    c.ctx.avoid_nodes = uint64_t{1} << 2;
    CHECK(router.Decide(c.ctx).node == 1);
  }
  // Every replica avoided: the primary, as when none is up.
  c.ctx.avoid_nodes = ~uint64_t{0};
  Route r = router.Decide(c.ctx);
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kNoReplica);
}

TEST_CASE("Router: avoid_nodes never redirects a write") {
  Cluster c;
  Router router;
  c.ctx.write = true;
  c.ctx.avoid_nodes = ~uint64_t{0};
  Route r = router.Decide(c.ctx);
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kWrite);
}

}  // namespace
}  // namespace pgregion::routing
