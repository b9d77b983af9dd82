// Router: a retried read avoids the replicas it failed on, then falls to the primary.
#include <doctest/doctest.h>

#include <vector>

#include "routing/router.h"

namespace pgregion::routing {
namespace {

std::vector<NodeView> PrimaryAndTwoReplicas() {
  return {{.up = true, .primary = true},
          {.up = true, .primary = false},
          {.up = true, .primary = false}};
}

TEST_CASE("Router: a read avoids the nodes in avoid_nodes") {
  std::vector<NodeView> nodes = PrimaryAndTwoReplicas();
  Router router;
  RouteContext ctx;
  ctx.nodes = &nodes;
  for (uint64_t spread = 0; spread < 4; ++spread) {
    ctx.spread = spread;
    ctx.avoid_nodes = uint64_t{1} << 1;
    Route r = router.Decide(ctx);
    CHECK(r.node == 2);
    CHECK(r.reason == RouteReason::kRead);
    ctx.avoid_nodes = uint64_t{1} << 2;
    CHECK(router.Decide(ctx).node == 1);
  }
  // Every replica avoided: the primary, as when none is up.
  ctx.avoid_nodes = ~uint64_t{0};
  Route r = router.Decide(ctx);
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kNoReplica);
}

TEST_CASE("Router: avoid_nodes never redirects a write") {
  std::vector<NodeView> nodes = PrimaryAndTwoReplicas();
  Router router;
  RouteContext ctx;
  ctx.nodes = &nodes;
  ctx.write = true;
  ctx.avoid_nodes = ~uint64_t{0};
  Route r = router.Decide(ctx);
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kWrite);
}

}  // namespace
}  // namespace pgregion::routing
