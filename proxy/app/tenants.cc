#include "proxy/app/tenants.h"

#include <algorithm>
#include <utility>

namespace pgregion::proxy {

std::shared_ptr<const routing::TenantDirectory> TenantDirectoryFromConfig(
    const Config& config, std::shared_ptr<const routing::TenantMap> mapped,
    const routing::TenantDirectory* previous) {
  routing::TenantPolicy fallback;
  fallback.prefer_regions = config.tenancy.default_prefer_regions;
  fallback.allow_regions = config.tenancy.default_allow_regions;
  if (config.tenants.empty() && fallback.neutral() && config.tenancy.query.empty()) return nullptr;
  auto dir = std::make_shared<routing::TenantDirectory>();
  dir->SetDefault(std::move(fallback));
  if (!config.tenancy.query.empty()) dir->SetMapped(std::move(mapped));
  for (const TenantConfig& t : config.tenants) {
    routing::TenantPolicy policy;
    policy.prefer_regions = t.prefer_regions;
    policy.allow_regions = t.allow_regions;
    if (!t.consistency.empty()) {
      policy.consistency = routing::StatementHints::ParseConsistency(t.consistency);
    }
    dir->Add(t.id, std::move(policy));  // ids were checked unique and bounded by the parser
  }
  if (previous != nullptr) dir->ShareReads(*previous);
  return dir;
}

TenantMapLoaderOptions TenantMapOptionsFrom(const Config& config) {
  TenantMapLoaderOptions o;
  o.query = config.tenancy.query;
  o.refresh_ms = config.tenancy.refresh_s * 1000;
  o.timeout_ms = config.tenancy.query_timeout_ms;
  o.login = HealthOptionsFromConfig(config);
  // The connect deadline is the refresh's own (timeout_ms).
  o.login.connect_timeout_ms = o.timeout_ms;
  if (!config.tenancy.database.empty()) o.login.database = config.tenancy.database;
  for (const NodeConfig& n : config.nodes) {
    if (std::find(o.regions.begin(), o.regions.end(), n.region) == o.regions.end()) {
      o.regions.push_back(n.region);
    }
  }
  return o;
}

bool TenantMapOptionsDiffer(const TenantMapLoaderOptions& a, const TenantMapLoaderOptions& b) {
  const HealthCheckerOptions& x = a.login;
  const HealthCheckerOptions& y = b.login;
  return a.query != b.query || a.refresh_ms != b.refresh_ms || a.timeout_ms != b.timeout_ms ||
         a.regions != b.regions || x.user != y.user || x.password != y.password ||
         x.database != y.database || x.tls_mode != y.tls_mode || x.ca_file != y.ca_file;
}

}  // namespace pgregion::proxy
