// The tenant directory a configuration describes (issue 20): [[tenants]]
// entries and [tenancy]'s default policy, as routing::TenantDirectory.
#pragma once

#include <memory>

#include "proxy/config/config.h"
#include "routing/tenant_policy.h"

namespace pgregion::proxy {

// Null when the configuration has no tenant with a policy and no default
// policy: tenant routing is off and costs nothing per unit.
std::shared_ptr<const routing::TenantDirectory> TenantDirectoryFromConfig(const Config& config);

}  // namespace pgregion::proxy
