// Tenant routing's inputs from the configuration (issue 20): the directory
// [[tenants]] and [tenancy] describe, over the mapping read from the
// application's table, and the options of that mapping's loader.
#pragma once

#include <memory>

#include "proxy/backend/tenant_map_loader.h"
#include "proxy/config/config.h"
#include "routing/tenant_policy.h"

namespace pgregion::proxy {

// [[tenants]] entries over `mapped` (may be null) over [tenancy]'s default
// policy. Null when the configuration has no tenant with a policy, no default
// policy and no [tenancy] query: tenant routing is off and costs nothing per
// unit. `previous` (may be null): the directory this one replaces, whose read
// counts carry over.
std::shared_ptr<const routing::TenantDirectory> TenantDirectoryFromConfig(
    const Config& config, std::shared_ptr<const routing::TenantMap> mapped = nullptr,
    const routing::TenantDirectory* previous = nullptr);

// The loader's options from [tenancy], [health] and [[nodes]].
TenantMapLoaderOptions TenantMapOptionsFrom(const Config& config);

// The loader must start afresh: its query, login, timing or regions differ.
bool TenantMapOptionsDiffer(const TenantMapLoaderOptions& a, const TenantMapLoaderOptions& b);

}  // namespace pgregion::proxy
