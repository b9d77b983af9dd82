// What a configuration reload (SIGHUP, the console's RELOAD) may change while
// clients stay connected, decided from the old and the new Config alone. Pure.
//
// Applied live: users and their passwords (new logins; sessions already logged
// in keep going), pool sizes and timeouts, routing settings (the classifier is
// rebuilt when its function lists or cache size change), health-check interval,
// timeout and login (the checker restarts; the topology it feeds is kept),
// failover, log level and format, the admin bearer token, max_client_connections,
// timeouts. Refused (the old configuration stays, and the log names the keys):
// anything bound at startup: the listen addresses, the region, TLS on either
// side, the node list, the health-state thresholds.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proxy/config.h"
#include "routing/statement_classifier.h"

namespace pgregion::proxy {

struct ReloadPlan {
  std::vector<std::string> changed;       // every key that differs (secrets by name only)
  std::vector<std::string> need_restart;  // the changed keys a reload cannot apply
  bool users_changed = false;             // rebuild the SCRAM verifiers
  bool classifier_changed = false;        // rebuild the statement classifier
  bool health_changed = false;            // restart the health checker
  bool log_changed = false;               // apply level and format

  bool empty() const { return changed.empty(); }
  bool applicable() const { return need_restart.empty(); }
};

ReloadPlan PlanReload(const Config& current, const Config& next);

// The statement classifier's options from [routing] (at startup and on reload).
routing::ClassifierOptions ClassifierOptionsFrom(const RoutingSection& routing);

}  // namespace pgregion::proxy
