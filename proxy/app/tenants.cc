#include "proxy/app/tenants.h"

#include <utility>

namespace pgregion::proxy {

std::shared_ptr<const routing::TenantDirectory> TenantDirectoryFromConfig(const Config& config) {
  routing::TenantPolicy fallback;
  fallback.prefer_regions = config.tenancy.default_prefer_regions;
  fallback.allow_regions = config.tenancy.default_allow_regions;
  if (config.tenants.empty() && fallback.neutral()) return nullptr;
  auto dir = std::make_shared<routing::TenantDirectory>();
  dir->SetDefault(std::move(fallback));
  for (const TenantConfig& t : config.tenants) {
    routing::TenantPolicy policy;
    policy.prefer_regions = t.prefer_regions;
    policy.allow_regions = t.allow_regions;
    if (!t.consistency.empty()) {
      policy.consistency = routing::StatementHints::ParseConsistency(t.consistency);
    }
    dir->Add(t.id, std::move(policy));  // ids were checked unique and bounded by the parser
  }
  return dir;
}

}  // namespace pgregion::proxy
