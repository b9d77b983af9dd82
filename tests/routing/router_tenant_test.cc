// Router and ReplicaSelector with a tenant (issue 20): preferred regions in
// order, allowed regions only, and a read refused rather than served outside them.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "routing/router.h"
#include "routing/tenant_policy.h"

namespace pgregion::routing {
namespace {

constexpr uint64_t kMs = 1000;  // RTTs are in microseconds

// The proxy runs in eu-west.
//   0 pg-us   primary  us-east   80 ms
//   1 pg-eu   replica  eu-west    1 ms
//   2 pg-ap   replica  ap-south 180 ms
//   3 pg-ap2  replica  ap-south 180 ms
struct Cluster {
  Cluster() {
    Add("pg-us", "us-east", NodeRole::kPrimary, 80 * kMs);
    Add("pg-eu", "eu-west", NodeRole::kReplica, 1 * kMs);
    Add("pg-ap", "ap-south", NodeRole::kReplica, 180 * kMs);
    Add("pg-ap2", "ap-south", NodeRole::kReplica, 180 * kMs);
    snap.primary_state = PrimaryState::kOne;
    snap.primary = 0;
    view.topology = &snap;
    view.roles_discovered = true;
    view.node_count = snap.nodes.size();
    view.local_region = "eu-west";
    ctx.cluster = &view;
    ctx.tenant = &tenant;
  }
  void Add(const char* name, const char* region, NodeRole role, uint64_t rtt) {
    NodeStatus n;
    n.name = name;
    n.region = region;
    n.index = snap.nodes.size();
    n.up = true;
    n.role = role;
    n.rtt_known = true;
    n.rtt_us = rtt;
    n.lsn = Lsn(0x5000);
    snap.nodes.push_back(n);
  }
  void Down(size_t i) { snap.nodes[i].up = false; }
  std::map<int, int> Count(Router& router, int picks) {
    std::map<int, int> counts;
    for (int i = 0; i < picks; ++i) ++counts[router.Decide(ctx).node];
    return counts;
  }
  TopologySnapshot snap;
  ClusterView view;
  TenantPolicy tenant;
  RouteContext ctx;
};

TEST_CASE("Tenant routing: no preference is today's routing") {
  Cluster c;
  Router router;
  CHECK(c.Count(router, 200) == std::map<int, int>{{1, 200}});
  c.ctx.tenant = nullptr;
  CHECK(c.Count(router, 200) == std::map<int, int>{{1, 200}});
}

TEST_CASE("Tenant routing: the first preferred region that can serve the read") {
  Cluster c;
  Router router;
  c.tenant.prefer_regions = {"ap-south", "eu-west"};
  const auto counts = c.Count(router, 400);
  CHECK(counts.size() == 2);  // both ap-south replicas share the reads
  CHECK(counts.count(2) == 1);
  CHECK(counts.count(3) == 1);
  CHECK(router.Decide(c.ctx).reason == RouteReason::kRead);
  // ap-south down: the next preferred region.
  c.Down(2);
  c.Down(3);
  CHECK(c.Count(router, 50) == std::map<int, int>{{1, 50}});
  // A preferred region with no node at all is skipped.
  c.tenant.prefer_regions = {"sa-east"};
  CHECK(c.Count(router, 50) == std::map<int, int>{{1, 50}});
}

TEST_CASE("Tenant routing: a preferred replica that lacks the token yields to one that has it") {
  Cluster c;
  Router router;
  c.tenant.prefer_regions = {"ap-south"};
  c.snap.system_identifier = 7;
  for (NodeStatus& n : c.snap.nodes) n.system_identifier = 7;
  c.snap.nodes[2].lsn = Lsn(0x1000);
  c.snap.nodes[3].lsn = Lsn(0x1000);
  c.ctx.session_token = RywToken{.system_identifier = 7, .timeline = 0, .lsn = Lsn(0x4000)};
  Route r = router.Decide(c.ctx);
  CHECK(r.node == 1);  // eu-west has replayed it: served at once
  // Nobody has it: wait on the preferred region's replica.
  c.snap.nodes[1].lsn = Lsn(0x1000);
  r = router.Decide(c.ctx);
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kRywFallback);
  CHECK((r.wait_node == 2 || r.wait_node == 3));
}

TEST_CASE("Tenant routing: replicas outside the allowed regions never serve") {
  Cluster c;
  Router router;
  c.tenant.allow_regions = {"ap-south", "us-east"};
  // eu-west is nearer but not allowed: the nearest allowed replica.
  const auto counts = c.Count(router, 200);
  CHECK(counts.count(0) == 0);
  CHECK(counts.count(1) == 0);
  CHECK(counts.size() == 2);  // the two ap-south replicas
  // No allowed replica: the primary, which is in an allowed region.
  c.Down(2);
  c.Down(3);
  Route r = router.Decide(c.ctx);
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kNoReplica);
  CHECK(r.blocked == RouteBlock::kNone);
}

TEST_CASE("Tenant routing: refused when neither an allowed replica nor the primary can serve") {
  Cluster c;
  Router router;
  c.tenant.prefer_regions = {"ap-south"};
  c.tenant.allow_regions = {"ap-south"};
  CHECK(router.Decide(c.ctx).node >= 2);
  c.Down(2);
  c.Down(3);
  Route r = router.Decide(c.ctx);
  CHECK(r.node == -1);
  CHECK(r.blocked == RouteBlock::kResidency);
  CHECK(RouteBlockName(r.blocked) == "residency");
  // strong sends reads to the primary: refused too.
  c.snap.nodes[2].up = true;
  c.ctx.consistency = Consistency::kStrong;
  r = router.Decide(c.ctx);
  CHECK(r.blocked == RouteBlock::kResidency);
  // Writes and read-write transactions still run on the primary.
  c.ctx.consistency = Consistency::kCausal;
  c.ctx.write = true;
  r = router.Decide(c.ctx);
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kWrite);
  c.ctx.write = false;
  c.ctx.begins_transaction = true;
  CHECK(router.Decide(c.ctx).node == 0);
  // Served again once its region's replica is back.
  c.ctx.begins_transaction = false;
  r = router.Decide(c.ctx);
  CHECK(r.node == 2);
  CHECK(r.blocked == RouteBlock::kNone);
}

TEST_CASE("Tenant routing: a causal read waits on an allowed replica before it is refused") {
  Cluster c;
  Router router;
  c.tenant.allow_regions = {"ap-south"};
  c.snap.nodes[2].lsn = Lsn(0x1000);
  c.snap.nodes[3].lsn = Lsn(0x1000);
  c.ctx.session_token = RywToken{.system_identifier = 0, .timeline = 0, .lsn = Lsn(0x4000)};
  c.view.ryw_wait_ms = 500;
  c.snap.nodes[0].rtt_us = 400 * kMs;  // the detour costs more than the wait
  Route r = router.Decide(c.ctx);
  CHECK(r.blocked == RouteBlock::kResidency);
  CHECK((r.wait_node == 2 || r.wait_node == 3));
  CHECK(r.wait_ms > 0);
  c.ctx.ryw_wait_over = true;
  r = router.Decide(c.ctx);
  CHECK(r.blocked == RouteBlock::kResidency);
  CHECK(r.wait_ms == 0);
}

TEST_CASE("Tenant policy: regions, lists and the directory") {
  TenantPolicy p;
  CHECK(p.Allows("anywhere"));
  CHECK(p.neutral());
  p.allow_regions = {"eu-west"};
  CHECK(p.restricted());
  CHECK(p.Allows("eu-west"));
  CHECK_FALSE(p.Allows("us-east"));

  CHECK(ParseRegionList("{eu-west,ap-south}") == std::vector<std::string>{"eu-west", "ap-south"});
  CHECK(ParseRegionList("eu-west, ap-south eu-west") ==
        std::vector<std::string>{"eu-west", "ap-south"});
  CHECK(ParseRegionList("{\"eu-west\"}") == std::vector<std::string>{"eu-west"});
  CHECK(ParseRegionList("").empty());
  CHECK(ParseRegionList("{}").empty());

  TenantDirectory dir;
  TenantPolicy fallback;
  fallback.prefer_regions = {"us-east"};
  dir.SetDefault(fallback);
  TenantPolicy t42;
  t42.prefer_regions = {"ap-south"};
  CHECK(dir.Add("42", t42));
  CHECK_FALSE(dir.Add("", t42));
  CHECK_FALSE(dir.Add(std::string(TenantDirectory::kMaxIdBytes + 1, 'x'), t42));
  bool known = false;
  CHECK(dir.Lookup("42", &known) == t42);
  CHECK(known);
  CHECK(dir.Lookup("43", &known) == fallback);
  CHECK_FALSE(known);
  CHECK(dir.Lookup(std::string(100000, '4'), &known) == fallback);
  t42.prefer_regions = {"eu-west"};
  CHECK(dir.Add("42", t42));  // replaces
  CHECK(dir.Lookup("42").prefer_regions == std::vector<std::string>{"eu-west"});
  CHECK(dir.size() == 1);
}

}  // namespace
}  // namespace pgregion::routing
