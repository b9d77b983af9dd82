// ProxyApp: databases created and dropped through pgregion.
//
// A replica that has not replayed a CREATE DATABASE (or CREATE ROLE) yet
// refuses logins to it; reads of that database (as that user) avoid it for
// routing::MissingObjects::kDefaultRecheckMs, then try it again. A refusal by
// the primary means the database really is missing: the client sees it.
//
// DROP DATABASE, ALTER DATABASE ... RENAME / SET TABLESPACE and CREATE
// DATABASE ... TEMPLATE x refuse to run while other sessions are connected to
// the database (PostgreSQL waits up to 5 s for them to leave): pgregion's own
// idle pooled connections must not be those sessions, so they are closed
// (Terminate) before the statement is sent, on every node.

#include "proxy/app/proxy_app.h"
#include "proxy/backend/pool.h"
#include "proxy/net/log.h"

namespace pgregion::proxy {

namespace {
// No min_idle connection is opened to a vacated database for this long: the
// statement that needed it empty waits at most 5 s for others to leave.
constexpr uint64_t kVacateHoldMs = 10'000;
}  // namespace

void ProxyApp::OnLoginRefusedMissing(int node, const std::string& database,
                                     const std::string& user) {
  if (node == routed_topology_->primary) return;  // really missing: the client is told
  missing_.Mark(node, database, user, NowMs());
  LogInfo("node_lacks_database")
      .Kv("node", nodes_[static_cast<size_t>(node)].config.name)
      .Kv("database", database)
      .Kv("user", user)
      .Kv("recheck_ms", routing::MissingObjects::kDefaultRecheckMs);
}

void ProxyApp::OnLoginAccepted(int node, const std::string& database, const std::string& user) {
  missing_.Clear(node, database, user);
}

uint64_t ProxyApp::NodesMissing(const std::string& database, const std::string& user) {
  return missing_.AvoidMask(database, user, NowMs());
}

void ProxyApp::VacateDatabase(const std::string& database) {
  const uint64_t until = NowMs() + kVacateHoldMs;
  size_t closed = 0;
  size_t in_use = 0;
  for (auto& [key, pool] : pools_) {
    if (pool->database() != database) continue;
    closed += pool->Vacate("the database is being dropped, renamed or copied", until);
    in_use += pool->total_count();
  }
  LogInfo("database_vacated")
      .Kv("database", database)
      .Kv("closed_idle", static_cast<uint64_t>(closed))
      .Kv("in_use", static_cast<uint64_t>(in_use));
}

}  // namespace pgregion::proxy
