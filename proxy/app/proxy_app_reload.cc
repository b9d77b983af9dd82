// ProxyApp: configuration reload (SIGHUP, the admin console's RELOAD).

#include "protocol/str_util.h"
#include "proxy/app/config_reload.h"
#include "proxy/app/proxy_app.h"
#include "proxy/net/log.h"

namespace pgregion::proxy {

absl::Status ProxyApp::Reload(std::string_view trigger) {
  if (shutting_down_ || draining_) return absl::FailedPreconditionError("shutting down");
  // RELOAD also re-reads the tenant mapping, whatever becomes of the file.
  if (tenant_loader_ != nullptr) tenant_loader_->RefreshNow();
  absl::StatusOr<std::shared_ptr<const Config>> next = LoadConfigFile(config_->source_path);
  if (!next.ok()) {
    LogError("reload_failed")
        .Kv("trigger", trigger)
        .Kv("error", ToStd(next.status().message()))
        .Kv("detail", "the previous configuration stays in effect");
    return absl::Status(
        next.status().code(),
        StrCat(ToStd(next.status().message()), "; the previous configuration stays in effect"));
  }
  ReloadPlan plan = PlanReload(*config_, **next);
  if (!plan.applicable()) {
    std::string keys = StrJoin(plan.need_restart, ",");
    LogError("reload_failed")
        .Kv("trigger", trigger)
        .Kv("restart_needed", keys)
        .Kv("detail",
            "these settings change only with a restart; the previous configuration "
            "stays in effect");
    return absl::FailedPreconditionError(StrCat("these settings change only with a restart: ", keys,
                                                "; the previous configuration stays in effect"));
  }
  if (plan.empty()) {
    LogInfo("config_reloaded").Kv("trigger", trigger).Kv("changed", "nothing");
    return absl::OkStatus();
  }
  // Every new node's address before anything changes: all or nothing.
  std::vector<NodeRuntime> added;
  for (const std::string& name : plan.nodes_added) {
    for (const NodeConfig& n : (*next)->nodes) {
      if (n.name != name) continue;
      absl::StatusOr<NodeRuntime> rt = ResolveNode(n);
      if (!rt.ok()) {
        LogError("reload_failed")
            .Kv("trigger", trigger)
            .Kv("error", ToStd(rt.status().message()))
            .Kv("detail", "the previous configuration stays in effect");
        return absl::InvalidArgumentError(
            StrCat(ToStd(rt.status().message()), "; the previous configuration stays in effect"));
      }
      added.push_back(*std::move(rt));
    }
  }
  std::shared_ptr<const Config> previous = config_;
  config_ = *std::move(next);
  if (plan.users_changed) {
    absl::flat_hash_map<std::string, protocol::ScramVerifier> kept;
    kept.swap(verifiers_);
    if (absl::Status st = BuildCredentials(); !st.ok()) {
      config_ = previous;
      verifiers_.swap(kept);
      LogError("reload_failed")
          .Kv("trigger", trigger)
          .Kv("error", ToStd(st.message()))
          .Kv("detail", "the previous configuration stays in effect");
      return st;
    }
  }
  retired_configs_.push_back(std::move(previous));
  ApplyRoutingConfig();  // routing.max_replica_lag_ms applies to the next read
  StartTenantMap();      // only if [tenancy] query, its login or the regions changed
  if (plan.log_changed) {
    LogLevel level = LogLevel::kInfo;
    ParseLogLevel(config_->log.level, &level);
    SetLogLevel(level);
    SetLogJson(config_->log.format == "json");
  }
  if (plan.classifier_changed) {
    // Sessions hold their classifications by shared_ptr; the old cache just goes.
    classifier_ =
        std::make_unique<routing::StatementClassifier>(ClassifierOptionsFrom(config_->routing));
  }
  // Removed first: a node whose address changed is retired, then added anew.
  for (const std::string& name : plan.nodes_removed) {
    const int i = ActiveNode(name);
    if (i >= 0) RetireNode(static_cast<size_t>(i));
  }
  for (NodeRuntime& n : added) AddNode(std::move(n));
  if (plan.health_policy_changed)
    topology_.SetHealthPolicy(HealthPolicyFromConfig(config_->health));
  if ((plan.health_changed || plan.nodes_changed()) && health_ != nullptr) {
    // The topology stays: the new probes continue it (their new connections
    // reset only what each node's cached LSN state was). New nodes are probed
    // from now on, removed ones no longer.
    RestartHealthChecker();
  }
  LogLine line(LogLevel::kInfo, "config_reloaded");
  line.Kv("trigger", trigger).Kv("changed", StrJoin(plan.changed, ","));
  if (!plan.nodes_added.empty()) line.Kv("nodes_added", StrJoin(plan.nodes_added, ","));
  if (!plan.nodes_removed.empty()) line.Kv("nodes_removed", StrJoin(plan.nodes_removed, ","));
  return absl::OkStatus();
}

}  // namespace pgregion::proxy
