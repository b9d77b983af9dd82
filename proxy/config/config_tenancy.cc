// [tenancy] and [[tenants]]: where each tenant's reads want to and may run
// (issue 20). Read with the same helpers as the rest of the file.

#include <string>
#include <vector>

#include "proxy/config/config_section.h"

namespace pgregion::proxy::config_internal {
namespace {

// A custom setting name as PostgreSQL accepts one for SET: "prefix.name",
// letters, digits, underscores and dots only (case folded by the caller).
bool ValidSettingName(std::string_view name) {
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == name.size()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return c == '.' || c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

void ReadTenant(Section& s, TenantConfig* t) {
  s.String("id", &t->id, Presence::kRequired);
  s.StringList("prefer_regions", &t->prefer_regions);
  s.StringList("allow_regions", &t->allow_regions);
  s.Enum<std::string>("consistency", &t->consistency,
                      {{"strong", "strong"},
                       {"causal", "causal"},
                       {"bounded", "bounded"},
                       {"eventual", "eventual"}});
  if (t->id.size() > 256) s.Error(s.Find("id"), "id", "must be at most 256 bytes");
}

}  // namespace

void ReadTenancy(Section& s, TenancySection* t) {
  if (s.String("setting", &t->setting)) {
    std::string lower = t->setting;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!t->setting.empty() && !ValidSettingName(lower)) {
      s.Error(s.Find("setting"), "setting",
              StrCat("must be a custom setting name such as \"app.tenant_id\" (got ",
                     Quoted(t->setting), ")"));
    } else if (lower.starts_with("pgregion.")) {
      s.Error(s.Find("setting"), "setting",
              "pgregion.tenant is always followed; name the application's own setting");
    }
    t->setting = lower;  // PostgreSQL folds setting names to lower case
  }
  s.StringList("default_prefer_regions", &t->default_prefer_regions);
  s.StringList("default_allow_regions", &t->default_allow_regions);
  s.String("query", &t->query);
  s.String("database", &t->database);
  if (s.Uint("refresh_s", &t->refresh_s, 1) && t->refresh_s > 86400) {
    s.Error(s.Find("refresh_s"), "refresh_s", "must be at most 86400 (a day)");
  }
  s.Uint("query_timeout_ms", &t->query_timeout_ms, 100);
  if (t->query.size() > 64 * 1024) {
    s.Error(s.Find("query"), "query", "must be at most 64 KiB");
  }
}

std::vector<TenantConfig> ReadTenants(Errors* errors, Section& top,
                                      std::vector<const toml::value*>* where_out) {
  return ReadEntries<TenantConfig>(errors, top, "tenants", ReadTenant, where_out, &TenantConfig::id,
                                   "id");
}

void CheckTenantRegions(Errors* errors, const Config& config,
                        const std::vector<const toml::value*>& tenant_tables,
                        const toml::value* tenancy_table) {
  std::vector<std::string_view> regions;
  for (const NodeConfig& n : config.nodes) regions.push_back(n.region);
  auto check = [&](const toml::value* table, const std::string& path, std::string_view key,
                   const std::vector<std::string>& list) {
    for (const std::string& region : list) {
      if (std::find(regions.begin(), regions.end(), region) != regions.end()) continue;
      const toml::value* at = table;
      if (table != nullptr && table->is_table() && table->as_table().count(std::string(key))) {
        at = &table->as_table().at(std::string(key));
      }
      errors->Add(at, StrCat(path, ".", key),
                  StrCat("no [[nodes]] entry is in region ", Quoted(region),
                         " (regions: ", StrJoin(regions, ", "), ")"));
    }
  };
  check(tenancy_table, "tenancy", "default_prefer_regions", config.tenancy.default_prefer_regions);
  check(tenancy_table, "tenancy", "default_allow_regions", config.tenancy.default_allow_regions);
  for (size_t i = 0; i < config.tenants.size() && i < tenant_tables.size(); ++i) {
    const std::string path = StrCat("tenants[", i, "]");
    check(tenant_tables[i], path, "prefer_regions", config.tenants[i].prefer_regions);
    check(tenant_tables[i], path, "allow_regions", config.tenants[i].allow_regions);
  }
}

}  // namespace pgregion::proxy::config_internal
