// [tenancy] and [[tenants]] (issue 20): what loads, what is refused, and the
// directory the proxy builds from them.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "proxy/app/tenants.h"
#include "proxy/config/config.h"

namespace pgregion::proxy {
namespace {

constexpr std::string_view kBase = R"(
[[users]]
name = "app"
password = "secret"

[[nodes]]
name = "us"
region = "us-east"
host = "127.0.0.1"

[[nodes]]
name = "ap"
region = "ap-south"
host = "127.0.0.2"
)";

absl::StatusOr<std::shared_ptr<const Config>> LoadWith(std::string_view extra) {
  return LoadConfigString(std::string(kBase) + std::string(extra), "tenants.toml");
}

std::string ErrorOf(std::string_view extra) {
  auto config = LoadWith(extra);
  REQUIRE_FALSE(config.ok());
  return std::string(config.status().message());
}

bool Has(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

TEST_CASE("tenancy: keys load into the directory") {
  auto config = LoadWith(R"(
[tenancy]
setting = "App.Tenant_Id"
default_prefer_regions = ["us-east"]

[[tenants]]
id = "42"
prefer_regions = ["ap-south", "us-east"]
allow_regions = ["ap-south"]
consistency = "eventual"

[[tenants]]
id = "acme"
prefer_regions = ["ap-south"]
)");
  REQUIRE(config.ok());
  const Config& c = **config;
  CHECK(c.tenancy.setting == "app.tenant_id");  // folded as PostgreSQL folds names
  REQUIRE(c.tenants.size() == 2);
  auto dir = TenantDirectoryFromConfig(c);
  REQUIRE(dir != nullptr);
  bool known = false;
  const routing::TenantPolicy& t42 = dir->Lookup("42", &known);
  CHECK(known);
  CHECK(t42.prefer_regions == std::vector<std::string>{"ap-south", "us-east"});
  CHECK(t42.allow_regions == std::vector<std::string>{"ap-south"});
  CHECK(t42.consistency == routing::StatementHints::Consistency::kEventual);
  CHECK(dir->Lookup("acme").prefer_regions == std::vector<std::string>{"ap-south"});
  CHECK_FALSE(dir->Lookup("acme").consistency.has_value());
  CHECK(dir->Lookup("nobody", &known).prefer_regions == std::vector<std::string>{"us-east"});
  CHECK_FALSE(known);
}

TEST_CASE("tenancy: nothing configured, no directory (no cost per unit)") {
  auto config = LoadWith("");
  REQUIRE(config.ok());
  CHECK(TenantDirectoryFromConfig(**config) == nullptr);
  config = LoadWith("[tenancy]\nsetting = \"app.tenant_id\"\n");
  REQUIRE(config.ok());
  CHECK(TenantDirectoryFromConfig(**config) == nullptr);  // a setting but no policy anywhere
}

TEST_CASE("tenancy: bad entries are refused with the key and line") {
  CHECK(Has(ErrorOf("[[tenants]]\nid = \"1\"\nallow_regions = [\"ap-suoth\"]\n"),
            "tenants[0].allow_regions: no [[nodes]] entry is in region \"ap-suoth\""));
  CHECK(Has(ErrorOf("[tenancy]\ndefault_prefer_regions = [\"mars\"]\n"),
            "tenancy.default_prefer_regions: no [[nodes]] entry is in region \"mars\""));
  CHECK(Has(ErrorOf("[[tenants]]\nid = \"1\"\n[[tenants]]\nid = \"1\"\n"), "duplicate id \"1\""));
  CHECK(Has(ErrorOf("[[tenants]]\nprefer_regions = [\"us-east\"]\n"),
            "tenants[0].id: missing required key"));
  CHECK(Has(ErrorOf("[[tenants]]\nid = \"1\"\nconsistency = \"sometimes\"\n"),
            "tenants[0].consistency: must be one of"));
  CHECK(Has(ErrorOf("[tenancy]\nsetting = \"tenant_id\"\n"),
            "tenancy.setting: must be a custom setting name"));
  CHECK(Has(ErrorOf("[tenancy]\nsetting = \"pgregion.tenant\"\n"), "tenancy.setting:"));
  CHECK(Has(ErrorOf("[[tenants]]\nid = \"1\"\nregion = \"us-east\"\n"), "unknown key"));
  CHECK(Has(ErrorOf("[tenancy]\nquery = \"select 1, 2\"\nrefresh_s = 0\n"),
            "tenancy.refresh_s: must be at least 1"));
  CHECK(Has(ErrorOf("[tenancy]\nquery = \"select 1, 2\"\nrefresh_s = 90000\n"),
            "tenancy.refresh_s: must be at most 86400"));
  CHECK(Has(ErrorOf("[tenancy]\nquery_timeout_ms = 5\n"), "tenancy.query_timeout_ms"));
}

TEST_CASE("tenancy: a mapping query makes a directory and its loader's options") {
  auto config = LoadWith(R"(
[health]
database = "postgres"

[tenancy]
setting = "app.tenant_id"
query = "select id::text, region from tenants"
refresh_s = 7
database = "appdb"

[[tenants]]
id = "42"
prefer_regions = ["us-east"]
)");
  REQUIRE(config.ok());
  const Config& c = **config;
  auto map = std::make_shared<routing::TenantMap>();
  routing::TenantPolicy ap;
  ap.prefer_regions = {"ap-south"};
  map->Add("42", ap);
  map->Add("7", ap);
  // Even before the first refresh there is a directory: the mapping may come.
  REQUIRE(TenantDirectoryFromConfig(c) != nullptr);
  auto dir = TenantDirectoryFromConfig(c, map);
  CHECK(dir->Lookup("7").prefer_regions == std::vector<std::string>{"ap-south"});
  CHECK(dir->Lookup("42").prefer_regions == std::vector<std::string>{"us-east"});  // config wins
  TenantMapLoaderOptions o = TenantMapOptionsFrom(c);
  CHECK(o.query == "select id::text, region from tenants");
  CHECK(o.refresh_ms == 7000);
  CHECK(o.timeout_ms == 10000);
  CHECK(o.login.database == "appdb");
  CHECK(o.login.user == "app");
  CHECK(o.regions == std::vector<std::string>{"us-east", "ap-south"});
  TenantMapLoaderOptions same = TenantMapOptionsFrom(c);
  CHECK_FALSE(TenantMapOptionsDiffer(o, same));
  same.login.database = "other";
  CHECK(TenantMapOptionsDiffer(o, same));
}

}  // namespace
}  // namespace pgregion::proxy
