// ClientSession: databases created and dropped through pgregion.
//
// A read routed to a replica that refuses the login because it has not
// replayed the CREATE DATABASE (or CREATE ROLE) yet goes to another node: the
// unit was sent nowhere, so it is the read retry's path (RetryRead), which
// ends on the primary. The pool told the ProxyApp first (NodesMissing), so
// this session's and other sessions' next reads skip that replica for a while.
// So does the first batch of an optimistic transaction (routed again, as a
// transaction's start). A unit that may not be retried (inside a
// transaction, routed before its end) gets the server's ErrorResponse, as
// does a refusal by the primary.
//
// DROP DATABASE and the statements like it (StatementInfo::databases) close
// the proxy's idle server connections to the databases concerned first.

#include "proxy/session/client_session.h"
#include "proxy/session/session_env.h"
#include "routing/missing_objects.h"

namespace pgregion::proxy {

bool ClientSession::RerouteRefusedLogin(const std::string& error_response) {
  // The first batch of an optimistic transaction was sent nowhere either.
  const bool optimistic_start = optimistic_ != nullptr &&
                                optimistic_->phase == Optimistic::Phase::kOnReplica &&
                                optimistic_->units == 0;
  // armed: a replica, nothing of the unit sent or shown
  if (!retry_.armed && !optimistic_start) return false;
  const routing::LoginRefusal refusal = routing::ClassifyLoginRefusal(error_response);
  if (!refusal.missing_object) return false;
  if (optimistic_start) {
    // Routed again, without that replica (NodesMissing): another replica, or
    // the primary as an ordinary transaction.
    const routing::RouteContext ctx = optimistic_->start_ctx;
    optimistic_.reset();
    Dispatch(ctx);
    return true;
  }
  RetryRead(ReadRetryReason::kLoginRefused, refusal.message);
  return true;
}

void ClientSession::VacateDatabases(const routing::StatementInfo& s) {
  for (const std::string& db : s.databases) env_->VacateDatabase(db);
}

uint64_t ClientSession::NodesMissing() const {
  if (user_ == nullptr) return 0;
  return env_->NodesMissing(database_, user_->name);
}

}  // namespace pgregion::proxy
