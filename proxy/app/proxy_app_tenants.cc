// ProxyApp: the tenant directory (issue 20). [[tenants]] and [tenancy] from
// the configuration, over the mapping the TenantMapLoader reads from the
// application's table. Each change builds a new directory and swaps the
// pointer: units already routed keep the one they hold.

#include "protocol/str_util.h"
#include "proxy/app/proxy_app.h"
#include "proxy/app/tenants.h"
#include "proxy/net/log.h"

namespace pgregion::proxy {

void ProxyApp::ApplyTenancy() {
  tenants_ = TenantDirectoryFromConfig(*config_, tenant_map_, tenants_.get());
}

void ProxyApp::StartTenantMap() {
  TenantMapLoaderOptions options = TenantMapOptionsFrom(*config_);
  Metrics::TenantMapState& state = metrics_.tenant_map();
  if (options.query.empty()) {
    if (tenant_loader_ != nullptr) tenant_loader_->Stop();
    tenant_loader_.reset();
    if (tenant_map_ != nullptr) {
      tenant_map_.reset();
      ApplyTenancy();
    }
    state = Metrics::TenantMapState{};
    return;
  }
  if (tenant_loader_ != nullptr && !TenantMapOptionsDiffer(options, tenant_map_options_)) return;
  // A new query or login: the last good map stays in use until the new
  // loader's first refresh replaces it.
  if (tenant_loader_ != nullptr) tenant_loader_->Stop();
  state.configured = true;
  tenant_map_options_ = options;
  tenant_loader_ = std::make_unique<TenantMapLoader>(loop_, std::move(options),
                                                     static_cast<TenantMapLoader::Observer*>(this));
  tenant_loader_->Start();
}

std::optional<HealthTarget> ProxyApp::TenantMapTarget() {
  if (nodes_.empty()) return std::nullopt;
  const int node = WelcomeNode();  // the primary, else an up node
  if (node < 0 || nodes_[static_cast<size_t>(node)].retired) return std::nullopt;
  return TargetOf(static_cast<size_t>(node));
}

void ProxyApp::OnTenantMapLoaded(std::shared_ptr<const routing::TenantMap> map,
                                 const TenantMapLoadStats& stats) {
  tenant_map_ = std::move(map);
  ApplyTenancy();
  Metrics::TenantMapState& state = metrics_.tenant_map();
  const bool first = state.loaded_unix_ms == 0;
  const uint64_t before = state.entries;
  state.entries = tenant_map_->size();
  state.policies = tenant_map_->policy_count();
  ++state.refreshes;
  state.loaded_unix_ms = UnixNowMs();
  state.rows = stats.rows;
  state.skipped = stats.skipped;
  state.unknown_regions = stats.unknown_regions;
  state.duration_ms = stats.duration_ms;
  state.node = stats.node;
  // Every refresh_s: logged at info only when something may have changed.
  const bool notable = first || before != state.entries || stats.skipped > 0;
  LogLine line(notable ? LogLevel::kInfo : LogLevel::kDebug, "tenant_map_loaded");
  line.Kv("node", stats.node)
      .Kv("entries", static_cast<uint64_t>(state.entries))
      .Kv("policies", static_cast<uint64_t>(state.policies))
      .Kv("rows", stats.rows)
      .Kv("skipped", stats.skipped)
      .Kv("duration_ms", stats.duration_ms);
  if (stats.unknown_regions > 0) {
    LogWarn("tenant_map_unknown_regions")
        .Kv("rows", stats.unknown_regions)
        .Kv("example", stats.example_unknown)
        .Kv("detail",
            "rows name a region no [[nodes]] entry is in: those preferences are skipped, "
            "and a tenant allowed only there is refused unless the primary is");
  }
}

void ProxyApp::OnTenantMapFailed(const std::string& why) {
  Metrics::TenantMapState& state = metrics_.tenant_map();
  ++state.refresh_errors;
  state.last_error = why;
  state.last_error_unix_ms = UnixNowMs();
  LogWarn("tenant_map_refresh_failed")
      .Kv("error", why)
      .Kv("entries_kept", static_cast<uint64_t>(tenant_map_ ? tenant_map_->size() : 0))
      .Kv("detail", tenant_map_ ? "the last good mapping stays in use"
                                : "no mapping yet: tenants without a [[tenants]] entry get the "
                                  "default policy");
}

}  // namespace pgregion::proxy
