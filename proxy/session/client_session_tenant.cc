// Tenant-aware read routing (issue 20): which tenant a unit of work is for,
// its region policy for the router, the refusal when no node in its allowed
// regions can serve a read, and the tenant_reads_total metric.
//
// The tenant of a unit, in this order: a statement hint (/* pgregion:
// tenant=42 */), the session's pgregion.tenant (SET LOCAL's value until the
// transaction ends, then the session's), and the application's own setting
// named by [tenancy] setting, as PostgreSQL would have it now
// (SessionState::EffectiveValue: SET, SET LOCAL, set_config(), RESET, with
// rollbacks and savepoints). None: today's routing.

#include <algorithm>

#include "protocol/sqlstate.h"
#include "protocol/str_util.h"
#include "proxy/net/log.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_env.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;
namespace r = ::pgregion::routing;

void ClientSession::ResolveTenant(r::RouteContext* ctx) {
  const std::shared_ptr<const r::TenantDirectory>& dir = env_->tenants();
  if (dir == nullptr) return;  // tenant routing is off
  // SET LOCAL pgregion.tenant TO DEFAULT: no pgregion.tenant in this transaction.
  const std::string& own = tenant_local_ ? *tenant_local_ : tenant_;
  std::string_view id;
  std::optional<std::string> setting_value;
  if (unit_.tenant) {
    id = *unit_.tenant;
  } else if (!own.empty()) {
    id = own;
  } else if (const std::string& setting = env_->config().tenancy.setting; !setting.empty()) {
    setting_value = session_.EffectiveValue(setting);
    if (setting_value) id = *setting_value;
  }
  if (id.empty()) return;
  // A session's units mostly name the same tenant: look it up again only when
  // the tenant or the directory changed.
  if (tenant_cache_.generation != dir->generation() || tenant_cache_.id != id) {
    bool known = false;
    tenant_cache_.policy = &dir->Lookup(id, &known);
    tenant_cache_.known = known;
    tenant_cache_.generation = dir->generation();
    tenant_cache_.id.assign(id.data(), id.size());
  }
  if (tenant_cache_.policy->neutral()) return;
  ctx->tenant = tenant_cache_.policy;
  ctx->tenant_directory = dir;
  ctx->tenant_id.assign(id.data(), id.size());
  ctx->tenant_known = tenant_cache_.known;
}

void ClientSession::RefuseResidency(const r::RouteContext& ctx) {
  CountTenantRead(ctx, r::Route{.node = -1, .blocked = r::RouteBlock::kResidency});
  const r::TenantPolicy& t = *ctx.tenant;
  const r::TopologySnapshot& topo = *env_->topology();
  std::string primary_region = "unknown";
  if (topo.primary >= 0 && static_cast<size_t>(topo.primary) < topo.nodes.size()) {
    primary_region = std::string(topo.nodes[static_cast<size_t>(topo.primary)].region);
  }
  LogInfo("tenant_read_refused")
      .Kv("client", peer_)
      .Kv("tenant", ctx.tenant_id)
      .Kv("allow_regions", StrJoin(t.allow_regions, ", "))
      .Kv("primary_region", primary_region);
  // The unit's messages are already buffered behind this decision; the
  // connection ends cleanly (FATAL), as when no primary is known.
  Fatal(p::sqlstate::kCannotConnectNow,
        StrCat("pgregion: tenant \"", ctx.tenant_id, "\" may be served only in ",
               StrJoin(t.allow_regions, ", "),
               ", and no node there can serve this read now (the "
               "primary is in ",
               primary_region, "); the read is refused rather than processed elsewhere"));
}

void ClientSession::CountTenantRead(const r::RouteContext& ctx, const r::Route& route) {
  if (ctx.tenant == nullptr || ctx.write) return;
  const r::TenantPolicy& t = *ctx.tenant;
  const std::string_view tenant_region =
      t.prefer_regions.empty() ? std::string_view() : std::string_view(t.prefer_regions[0]);
  if (route.blocked == r::RouteBlock::kResidency) {
    env_->metrics().TenantRead(tenant_region, -1, TenantReadOutcome::kRefused);
    if (ctx.tenant_known) ctx.tenant_directory->CountRead(ctx.tenant_id, -1);
    return;
  }
  const r::TopologySnapshot& topo = *env_->topology();
  if (route.node < 0 || static_cast<size_t>(route.node) >= topo.nodes.size()) return;
  const r::NodeStatus& node = topo.nodes[static_cast<size_t>(route.node)];
  TenantReadOutcome outcome = TenantReadOutcome::kElsewhere;
  if (route.node == topo.primary) {
    outcome = TenantReadOutcome::kPrimary;
  } else if (std::find(t.prefer_regions.begin(), t.prefer_regions.end(), node.region) !=
             t.prefer_regions.end()) {
    outcome = TenantReadOutcome::kPreferred;
  }
  env_->metrics().TenantRead(tenant_region, route.node, outcome);
  if (ctx.tenant_known) ctx.tenant_directory->CountRead(ctx.tenant_id, route.node);
}

}  // namespace pgregion::proxy
