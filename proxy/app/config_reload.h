// What a configuration reload (SIGHUP, the console's RELOAD) may change while
// clients stay connected, decided from the old and the new Config alone. Pure.
//
// Applied live: users and their passwords (new logins; sessions already logged
// in keep going), pool sizes and timeouts, routing settings (the classifier is
// rebuilt when its function lists or cache size change), the region, every
// [health] setting (interval, timeout and login restart the checker; the
// topology it feeds is kept, and the up/down thresholds apply to the next
// probe), failover, log level and format, the admin bearer token,
// max_client_connections, timeouts, and the node list: a node is its name, so
// a name that appears is added, one that disappears is removed, and one whose
// region, host or port changed is removed and added again. Refused (the old
// configuration stays, and the log names the keys): what is bound at startup:
// the listen addresses and TLS on either side.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "routing/statement_classifier.h"

namespace pgregion::proxy {

struct ReloadPlan {
  std::vector<std::string> changed;       // every key that differs (secrets by name only)
  std::vector<std::string> need_restart;  // the changed keys a reload cannot apply
  bool users_changed = false;             // rebuild the SCRAM verifiers
  bool classifier_changed = false;        // rebuild the statement classifier
  bool health_changed = false;            // restart the health checker
  bool health_policy_changed = false;     // failures_to_down, successes_to_up, recover_hold_s
  bool log_changed = false;               // apply level and format
  // Node names, in the order of the file they come from. A node whose region,
  // host or port changed is in both: removed, then added under a new index.
  std::vector<std::string> nodes_removed;
  std::vector<std::string> nodes_added;

  bool nodes_changed() const { return !nodes_removed.empty() || !nodes_added.empty(); }
  bool empty() const { return changed.empty(); }
  bool applicable() const { return need_restart.empty(); }
};

ReloadPlan PlanReload(const Config& current, const Config& next);

// The statement classifier's options from [routing] (at startup and on reload).
routing::ClassifierOptions ClassifierOptionsFrom(const RoutingSection& routing);

}  // namespace pgregion::proxy
