#include "proxy/app/config_reload.h"

#include <algorithm>
#include <map>
#include <string_view>

#include "protocol/str_util.h"
#include "proxy/admin/console_command.h"
#include "proxy/backend/health_checker.h"

namespace pgregion::proxy {

namespace {

// Keys (as SHOW CONFIG names them) a running proxy cannot change: the sockets
// and TLS contexts made at startup.
bool NeedsRestart(std::string_view key) {
  return key == "proxy.listen" || key == "admin.listen" || StartsWith(key, "tls.") ||
         StartsWith(key, "server_tls.");
}

const NodeConfig* FindNode(const Config& c, std::string_view name) {
  for (const NodeConfig& n : c.nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

bool SameNode(const NodeConfig& a, const NodeConfig& b) {
  return a.region == b.region && a.host == b.host && a.port == b.port;
}

std::map<std::string, std::string> Settings(const Config& c) {
  std::map<std::string, std::string> out;
  for (const auto& row : ConfigTable(c).rows) out[*row[0]] = row[1].value_or("");
  // SHOW CONFIG hides secrets; a reload must still notice them change.
  for (const UserConfig& u : c.users) {
    out[StrCat("users.", u.name, ".password")] = u.password;
    out[StrCat("users.", u.name, ".server_password")] = u.server_password;
  }
  out["health.password"] = c.health.password;
  out["admin.bearer_token"] = c.admin.bearer_token;
  // The order of [[nodes]] means nothing once running (a node is its name).
  return out;
}

}  // namespace

routing::ClassifierOptions ClassifierOptionsFrom(const RoutingSection& r) {
  routing::ClassifierOptions o;
  o.cache_capacity = r.statement_cache_size;
  o.max_bytes = r.classify_max_bytes;
  o.max_depth = r.classify_max_depth;
  o.unknown_functions = r.unknown_functions == "replica" ? routing::UnknownFunctionPolicy::kReplica
                                                         : routing::UnknownFunctionPolicy::kPrimary;
  o.write_functions = r.write_functions;
  o.read_only_functions = r.read_only_functions;
  return o;
}

ReloadPlan PlanReload(const Config& current, const Config& next) {
  std::map<std::string, std::string> a = Settings(current);
  std::map<std::string, std::string> b = Settings(next);
  ReloadPlan plan;
  std::vector<std::string> keys;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second != v) keys.push_back(k);
  }
  for (const auto& [k, v] : b) {
    if (!a.contains(k)) keys.push_back(k);
  }
  std::sort(keys.begin(), keys.end());
  for (const std::string& k : keys) {
    plan.changed.push_back(k);
    if (NeedsRestart(k)) plan.need_restart.push_back(k);
    if (StartsWith(k, "users.")) plan.users_changed = true;
    if (StartsWith(k, "routing.") && k != "routing.consistency" &&
        k != "routing.max_staleness_ms" && k != "routing.max_replica_lag_ms" &&
        k != "routing.ryw_wait_ms" && k != "routing.read_deadline_ms") {
      plan.classifier_changed = true;
    }
    if (StartsWith(k, "log.")) plan.log_changed = true;
  }
  HealthCheckerOptions h1 = HealthOptionsFromConfig(current);
  HealthCheckerOptions h2 = HealthOptionsFromConfig(next);
  plan.health_changed = h1.interval_ms != h2.interval_ms || h1.timeout_ms != h2.timeout_ms ||
                        h1.connect_timeout_ms != h2.connect_timeout_ms || h1.user != h2.user ||
                        h1.password != h2.password || h1.database != h2.database;
  const HealthSection& a1 = current.health;
  const HealthSection& a2 = next.health;
  plan.health_policy_changed = a1.failures_to_down != a2.failures_to_down ||
                               a1.successes_to_up != a2.successes_to_up ||
                               a1.recover_hold_s != a2.recover_hold_s;
  for (const NodeConfig& n : current.nodes) {
    const NodeConfig* m = FindNode(next, n.name);
    if (m == nullptr || !SameNode(n, *m)) plan.nodes_removed.push_back(n.name);
  }
  for (const NodeConfig& n : next.nodes) {
    const NodeConfig* m = FindNode(current, n.name);
    if (m == nullptr || !SameNode(n, *m)) plan.nodes_added.push_back(n.name);
  }
  return plan;
}

}  // namespace pgregion::proxy
