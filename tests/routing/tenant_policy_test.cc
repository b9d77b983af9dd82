// The tenant directory's layers (issue 20): [[tenants]] entries over the
// mapping read from the application's table over the default policy; the
// mapping's interned policies and bounds; read counts that survive a rebuild.
#include "routing/tenant_policy.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>

namespace pgregion::routing {
namespace {

TenantPolicy Prefer(std::string region) {
  TenantPolicy p;
  p.prefer_regions = {std::move(region)};
  return p;
}

TEST_CASE("TenantMap: rows share their distinct policies; ids are bounded") {
  TenantMap map;
  for (int i = 0; i < 1000; ++i) {
    CHECK(map.Add(std::to_string(i), Prefer(i % 2 == 0 ? "ap-south" : "eu-west")));
  }
  CHECK(map.size() == 1000);
  CHECK(map.policy_count() == 2);
  REQUIRE(map.Find("7") != nullptr);
  CHECK(*map.Find("7") == Prefer("eu-west"));
  CHECK(map.Find("7") == map.Find("9"));  // one stored policy
  CHECK(map.Find("1000") == nullptr);
  CHECK(map.Add("7", Prefer("us-east")));  // a later row replaces
  CHECK(*map.Find("7") == Prefer("us-east"));
  CHECK(map.size() == 1000);
  CHECK(map.policy_count() == 3);
  CHECK_FALSE(map.Add("", Prefer("us-east")));
  CHECK_FALSE(map.Add(std::string(TenantDirectory::kMaxIdBytes + 1, 'x'), Prefer("us-east")));
  TenantPolicy leveled = Prefer("ap-south");
  leveled.consistency = StatementHints::Consistency::kStrong;
  CHECK(map.Add("8", leveled));
  CHECK(map.policy_count() == 4);  // the level makes it another policy
  size_t seen = 0;
  map.ForEach([&](std::string_view, const TenantPolicy&) { return ++seen < 10; });
  CHECK(seen == 10);  // stops when told
}

TEST_CASE("TenantDirectory: config entries over mapping rows over the default") {
  auto map = std::make_shared<TenantMap>();
  map->Add("1", Prefer("ap-south"));
  map->Add("2", Prefer("ap-south"));
  TenantDirectory dir;
  dir.SetDefault(Prefer("us-east"));
  dir.SetMapped(map);
  dir.Add("2", Prefer("eu-west"));
  bool known = false;
  CHECK(dir.Lookup("1", &known) == Prefer("ap-south"));
  CHECK(known);
  CHECK(dir.Lookup("2") == Prefer("eu-west"));
  CHECK(dir.Lookup("3", &known) == Prefer("us-east"));
  CHECK_FALSE(known);
  CHECK(dir.SourceOf("1") == "mapping");
  CHECK(dir.SourceOf("2") == "config");
  CHECK(dir.SourceOf("3") == "");
  CHECK(dir.Lookup(std::string(100000, '1'), &known) == Prefer("us-east"));
  CHECK_FALSE(known);
}

TEST_CASE(
    "TenantDirectory: read counts carry over a rebuild, for ids still known; generations differ") {
  auto map = std::make_shared<TenantMap>();
  map->Add("1", Prefer("ap-south"));
  map->Add("2", Prefer("ap-south"));
  auto old_dir = std::make_shared<TenantDirectory>();
  old_dir->SetMapped(map);
  old_dir->CountRead("1", 2);
  old_dir->CountRead("1", 2);
  old_dir->CountRead("2", -1);  // refused
  REQUIRE(old_dir->reads("1") != nullptr);
  CHECK(old_dir->reads("1")->by_node == std::vector<uint64_t>{0, 0, 2});
  CHECK(old_dir->reads("2")->refused == 1);
  CHECK(old_dir->reads("nobody") == nullptr);
  CHECK(old_dir->counted_ids().size() == 2);

  // The next refresh drops tenant 2.
  auto next_map = std::make_shared<TenantMap>();
  next_map->Add("1", Prefer("eu-west"));
  TenantDirectory dir;
  dir.SetMapped(next_map);
  dir.ShareReads(*old_dir);
  REQUIRE(dir.reads("1") != nullptr);
  CHECK(dir.reads("1")->by_node[2] == 2);
  CHECK(dir.reads("2") == nullptr);
  // A unit still routed with the old directory counts where SHOW TENANTS looks.
  old_dir->CountRead("1", 2);
  CHECK(dir.reads("1")->by_node[2] == 3);
  dir.CountRead("1", 0);
  CHECK(dir.reads("1")->by_node[0] == 1);
  CHECK(dir.generation() != old_dir->generation());
}

}  // namespace
}  // namespace pgregion::routing
