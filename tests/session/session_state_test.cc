// SessionState against PostgreSQL 15's own rules: what a session keeps after
// commits, rollbacks and savepoints, its identity, its pins, and the replay
// that brings a pooled server connection to it.
#include "proxy/session/session_state.h"

#include <doctest/doctest.h>

#include <string>

#include "routing/statement_classifier.h"

namespace pgregion::proxy {
namespace {

using routing::ClassifierOptions;
using routing::StatementClassifier;

// Runs `sql` (one unit, as a simple Query) through the session; `status` is
// the server's ReadyForQuery status after it.
class Session {
 public:
  Session() : classifier_(ClassifierOptions{}) {
    SessionParams reported;
    reported.Set("DateStyle", "ISO, MDY");
    reported.Set("session_authorization", "app");
    SessionParams startup;
    startup.Set("application_name", "test");
    startup.Set("search_path", "s1");
    state.Login(reported, startup);
    server_login.Set("DateStyle", "ISO, MDY");
    server_login.Set("search_path", "s1");  // the pool logs in with the startup parameters
    server = server_login;
    state.Replay(&server);  // bound once, as ClientSession does before the first unit
  }

  bool Unit(std::string_view sql, char status = 'I', bool failed = false) {
    bool pins = false;
    for (const routing::StatementInfo& s : classifier_.ClassifyUncached(sql).statements) {
      pins |= state.OnStatement(s);
    }
    state.OnUnitDone(status, failed, &server, &server_login);
    return pins;
  }
  std::string Param(std::string_view name) const {
    const std::string* v = state.params().Get(name);
    return v == nullptr ? "<none>" : *v;
  }

  SessionState state;
  SessionParams server;
  SessionParams server_login;

 private:
  StatementClassifier classifier_;
};

TEST_CASE("a SET counts once its transaction commits") {
  Session s;
  s.Unit("SET work_mem = '1MB'");
  CHECK(s.Param("work_mem") == "1MB");
  s.Unit("BEGIN", 'T');
  s.Unit("SET work_mem = '2MB'", 'T');
  CHECK(s.Param("work_mem") == "1MB");  // not yet committed
  s.Unit("ROLLBACK");
  CHECK(s.Param("work_mem") == "1MB");
  s.Unit("BEGIN", 'T');
  s.Unit("SET work_mem = '3MB'", 'T');
  s.Unit("COMMIT");
  CHECK(s.Param("work_mem") == "3MB");
}

TEST_CASE("savepoints: ROLLBACK TO drops what came after, RELEASE keeps it") {
  Session s;
  s.Unit("BEGIN", 'T');
  s.Unit("SET work_mem = '2MB'", 'T');
  s.Unit("SAVEPOINT a", 'T');
  s.Unit("SET work_mem = '3MB'", 'T');
  s.Unit("SAVEPOINT b", 'T');
  s.Unit("SET statement_timeout = '5s'", 'T');
  s.Unit("RELEASE b", 'T');
  s.Unit("ROLLBACK TO a", 'T');
  s.Unit("SAVEPOINT c", 'T');
  s.Unit("SET search_path = 'x'", 'T');
  s.Unit("RELEASE SAVEPOINT c", 'T');
  s.Unit("COMMIT");
  CHECK(s.Param("work_mem") == "2MB");
  CHECK(s.Param("statement_timeout") == "<none>");
  CHECK(s.Param("search_path") == "x");
}

TEST_CASE("an error aborts: COMMIT is then a rollback, ROLLBACK TO recovers") {
  Session s;
  s.Unit("BEGIN", 'T');
  s.Unit("SET work_mem = '2MB'", 'T');
  s.Unit("SELECT 1/0", 'E', /*failed=*/true);
  s.Unit("COMMIT");  // PostgreSQL answers ROLLBACK
  CHECK(s.Param("work_mem") == "<none>");

  s.Unit("BEGIN", 'T');
  s.Unit("SET work_mem = '2MB'", 'T');
  s.Unit("SAVEPOINT a", 'T');
  s.Unit("SET work_mem = '9MB'; SELECT 1/0", 'E', /*failed=*/true);
  s.Unit("ROLLBACK TO a", 'T');
  s.Unit("COMMIT");
  CHECK(s.Param("work_mem") == "2MB");
}

TEST_CASE("a failed autocommit unit changes nothing; one in a single query string is atomic") {
  Session s;
  s.Unit("SET work_mem = '2MB'; SELECT 1/0", 'I', /*failed=*/true);
  CHECK(s.Param("work_mem") == "<none>");
  s.Unit("SET work_mem = '2MB'; SET statement_timeout = 10");
  CHECK(s.Param("work_mem") == "2MB");
  CHECK(s.Param("statement_timeout") == "10");
}

TEST_CASE("RESET goes back to the startup value; RESET ALL keeps the identity") {
  Session s;
  s.Unit("SET search_path = 'other'");
  CHECK(s.Param("search_path") == "other");
  s.Unit("RESET search_path");
  CHECK(s.Param("search_path") == "s1");
  s.Unit("SET SESSION AUTHORIZATION alice");
  s.Unit("SET work_mem = '1MB'");
  s.Unit("RESET ALL");
  CHECK(s.Param("work_mem") == "<none>");
  CHECK(s.Param(SessionState::kSessionAuthorizationKey) == "alice");
  s.Unit("DISCARD ALL");
  CHECK(s.Param(SessionState::kSessionAuthorizationKey) == "<none>");
}

TEST_CASE("identity: SET SESSION AUTHORIZATION resets the role; ROLE NONE is the default") {
  Session s;
  s.Unit("SET ROLE bob");
  CHECK(s.Param(SessionState::kRoleKey) == "bob");
  s.Unit("SET SESSION AUTHORIZATION alice");
  CHECK(s.Param(SessionState::kRoleKey) == "<none>");
  s.Unit("SET ROLE carol");
  s.Unit("SET ROLE NONE");
  CHECK(s.Param(SessionState::kRoleKey) == "<none>");
  s.Unit("RESET SESSION AUTHORIZATION");
  CHECK(s.Param(SessionState::kSessionAuthorizationKey) == "<none>");
  // SET LOCAL ROLE ends with its transaction: nothing to keep.
  s.Unit("BEGIN", 'T');
  s.Unit("SET LOCAL ROLE bob", 'T');
  s.Unit("COMMIT");
  CHECK(s.Param(SessionState::kRoleKey) == "<none>");
}

TEST_CASE("replay: identity back to the login user first, settings, then the identity") {
  Session s;
  s.Unit("SET work_mem = '1MB'");
  s.Unit("SET SESSION AUTHORIZATION alice");
  s.Unit("SET ROLE bob");
  // The connection it ran on now has it all: nothing to replay there.
  CHECK(s.state.Replay(&s.server).empty());
  // A fresh connection gets everything, in an order PostgreSQL accepts; the
  // identity is its own query (the client's statements wait for it).
  SessionParams fresh = s.server_login;
  SessionState::ReplayPlan plan = s.state.Replay(&fresh);
  CHECK(plan.settings ==
        "SELECT pg_catalog.set_config('application_name', 'test', false), "
        "pg_catalog.set_config('work_mem', '1MB', false);");
  CHECK(plan.identity == "SET SESSION AUTHORIZATION 'alice';SET ROLE 'bob';");
  CHECK(s.state.Replay(&fresh).empty());
  // A setting to change on a connection that has the identity already: back to
  // the login user for it (it may be superuser-only), then the identity again.
  s.Unit("SET lo_compat_privileges = on");
  SessionParams had = fresh;
  plan = s.state.Replay(&had);
  CHECK(plan.settings ==
        "RESET SESSION AUTHORIZATION;SELECT pg_catalog.set_config('lo_compat_privileges', 'on', "
        "false);");
  CHECK(plan.identity == "SET SESSION AUTHORIZATION 'alice';SET ROLE 'bob';");
  // Another client (no identity, no settings) taking that connection resets it.
  Session other;
  plan = other.state.Replay(&fresh);
  CHECK(plan.settings == "RESET SESSION AUTHORIZATION;RESET \"work_mem\";");
  CHECK(plan.identity.empty());
}

TEST_CASE("RESET on a server goes to that server's login value") {
  Session s;
  s.server_login.Set("work_mem", "64kB");  // as if the pool logged in with it
  s.server = s.server_login;
  s.Unit("SET work_mem = '1MB'");
  CHECK(*s.server.Get("work_mem") == "1MB");
  s.Unit("RESET work_mem");
  CHECK(*s.server.Get("work_mem") == "64kB");
}

TEST_CASE("a reported parameter takes PostgreSQL's value, not the statement's text") {
  Session s;
  // SET datestyle TO ymd keeps the output style: PostgreSQL reports "ISO, YMD".
  routing::StatementClassifier classifier(ClassifierOptions{});
  for (const routing::StatementInfo& st :
       classifier.ClassifyUncached("SET datestyle TO ymd").statements) {
    s.state.OnStatement(st);
  }
  s.state.OnServerParameter("DateStyle", "ISO, YMD");
  s.state.OnUnitDone('I', false, &s.server, &s.server_login);
  CHECK(s.Param("DateStyle") == "ISO, YMD");
  // Nothing for the replay to redo from the text (ServerConnection records the
  // server's own report).
  CHECK(s.server.Get("DateStyle") != nullptr);
  CHECK(*s.server.Get("DateStyle") == "ISO, MDY");
}

TEST_CASE("pins: state on one connection keeps the client there and dirties it") {
  Session s;
  CHECK_FALSE(s.state.pinned());
  CHECK(s.Unit("CREATE TEMP TABLE t (x int)"));
  CHECK(s.state.pinned());
  CHECK(s.state.server_dirty());
  s.Unit("DISCARD TEMP");
  CHECK_FALSE(s.state.pinned());
  CHECK(s.state.server_dirty());  // reset before another client gets it, to be sure

  CHECK(s.Unit("LISTEN ch"));
  s.Unit("BEGIN", 'T');
  s.Unit("UNLISTEN ch", 'T');
  s.Unit("ROLLBACK");
  CHECK(s.state.pinned());  // the UNLISTEN rolled back
  s.Unit("UNLISTEN *");
  CHECK_FALSE(s.state.pinned());

  CHECK(s.Unit("SELECT pg_advisory_lock(1)"));
  s.Unit("SELECT pg_advisory_unlock_all()");
  CHECK_FALSE(s.state.pinned());

  CHECK(s.Unit("PREPARE p AS SELECT 1"));
  s.Unit("DISCARD ALL");
  CHECK_FALSE(s.state.pinned());
  CHECK_FALSE(s.state.server_dirty());
  CHECK(s.state.TakeProtocolStatementsDropped());
  CHECK_FALSE(s.state.TakeProtocolStatementsDropped());

  // set_config() and LOAD: state DISCARD ALL may not undo; pinned for good,
  // and the connection is closed when the client leaves.
  CHECK(s.Unit("LOAD 'auto_explain'"));
  s.Unit("DISCARD ALL");
  CHECK(s.state.pinned());
  CHECK(s.state.server_unresettable());
}

TEST_CASE("a pin that failed still pins (the state may exist), a failed unpin does not unpin") {
  Session s;
  CHECK(s.Unit("PREPARE p AS SELECT 1", 'I', /*failed=*/true));
  CHECK(s.state.pinned());
  s.Unit("DEALLOCATE p", 'I', /*failed=*/true);
  CHECK(s.state.pinned());
  s.Unit("DEALLOCATE p");
  CHECK_FALSE(s.state.pinned());
}

TEST_CASE("session defaults: read only and serializable") {
  Session s;
  s.Unit("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
  CHECK(s.state.default_read_only());
  s.Unit("SET default_transaction_isolation = 'serializable'");
  CHECK(s.state.default_serializable());
  s.Unit("RESET ALL");
  CHECK_FALSE(s.state.default_read_only());
  CHECK_FALSE(s.state.default_serializable());
}

}  // namespace
}  // namespace pgregion::proxy

namespace pgregion::proxy {
namespace {

TEST_CASE("a transaction's log is bounded: past it the session keeps its connection") {
  Session s;
  s.Unit("BEGIN", 'T');
  for (size_t i = 0; i < SessionState::kMaxLogEntries; ++i) s.Unit("SAVEPOINT a", 'T');
  CHECK(s.state.pinned());
  CHECK(s.state.server_unresettable());  // closed, not reset, when the client leaves
  s.Unit("SET work_mem = '1MB'", 'T');
  s.Unit("COMMIT");
  CHECK(s.state.pinned());
}

TEST_CASE("a statement too complex to classify may change anything: it pins") {
  routing::ClassifierOptions o;
  o.max_bytes = 16;
  routing::StatementClassifier classifier(o);
  SessionState state;
  const routing::ClassifyResult r = classifier.Classify("SET work_mem = '1MB'; SELECT 1, 2, 3");
  CHECK(r->too_complex);
  bool pins = false;
  for (const routing::StatementInfo& st : r->statements) pins |= state.OnStatement(st);
  CHECK(pins);
  CHECK(state.server_unresettable());
}

}  // namespace
TEST_CASE("custom parameter names: every SET, SET LOCAL or RESET of a dotted name counts") {
  Session s;
  CHECK(s.state.CustomNames() == 0);
  s.Unit("SET work_mem = '1MB'");
  CHECK(s.state.CustomNames() == 0);  // built-in parameters leave no placeholder
  s.Unit("BEGIN; SET LOCAL app.tenant = '5'; ROLLBACK");  // the placeholder stays anyway
  const uint64_t one = s.state.CustomNames();
  CHECK(one != 0);
  s.Unit("SET App.Tenant = '6'");  // folded: the same name
  CHECK(s.state.CustomNames() == one);
  s.Unit("RESET app.other");
  CHECK(s.state.CustomNames() != one);
  s.Unit("SET pgregion.consistency = 'strong'");  // the proxy's own: never reaches a server
  Session t;
  t.Unit("RESET app.other");
  t.Unit("SET app.tenant = '1'");
  CHECK(t.state.CustomNames() == s.state.CustomNames());  // a set of names, in any order
}

TEST_CASE("custom parameter names: the replay creates them on a connection that has none") {
  Session s;
  s.Unit("BEGIN; SET LOCAL app.tenant = '5'; COMMIT");
  s.Unit("SET app.mode = 'x'");
  SessionParams fresh = s.server_login;
  SessionState::ReplayPlan plan = s.state.Replay(&fresh, /*server_custom_names=*/0);
  // Each dotted name is its own query (an extension may reserve the prefix on
  // that backend: the one refused is dropped, the others stay).
  REQUIRE(plan.custom.size() == 2);
  CHECK(plan.custom[0].name == "app.mode");
  CHECK(plan.custom[0].sql == "SELECT pg_catalog.set_config('app.mode', 'x', false)");
  CHECK(plan.custom[1].name == "app.tenant");
  CHECK(plan.custom[1].sql == "RESET \"app.tenant\";");
  CHECK(plan.settings.find("app.") == std::string::npos);
  // A connection that already has them (the same names) needs nothing more.
  SessionParams same = s.server;
  CHECK(s.state.Replay(&same, s.state.CustomNames()).empty());
}

TEST_CASE("custom parameter names: a refused one is forgotten, as PostgreSQL drops a placeholder") {
  Session s;
  s.Unit("SET plpgsql.knob = 'on'");
  s.Unit("SET app.tenant = '5'");
  const uint64_t both = s.state.CustomNames();
  s.state.ForgetCustomParameter("plpgsql.knob");
  CHECK(s.Param("plpgsql.knob") == "<none>");
  CHECK(s.Param("app.tenant") == "5");
  CHECK(s.state.CustomNames() != both);
  CHECK(s.state.CustomNames() != 0);
  s.state.ForgetCustomParameter("app.tenant");
  CHECK(s.state.CustomNames() == 0);
}

TEST_CASE("custom parameter names are bounded: past the bound the session keeps its connection") {
  Session s;
  for (size_t i = 0; i < SessionState::kMaxCustomNames; ++i) {
    s.Unit("RESET app.n" + std::to_string(i));
  }
  CHECK_FALSE(s.state.pinned());
  s.Unit("RESET app.one_more");
  CHECK(s.state.pinned());
  CHECK(s.state.server_unresettable());
}

TEST_CASE("named pins are bounded: past the bound the session stays pinned until DISCARD ALL") {
  Session s;
  for (int i = 0; i < 4097; ++i) s.Unit("LISTEN ch" + std::to_string(i));
  CHECK(s.state.pinned());
  s.Unit("UNLISTEN *");  // the names are no longer known: still pinned
  CHECK(s.state.pinned());
  s.Unit("DISCARD ALL");
  CHECK_FALSE(s.state.pinned());
}

TEST_CASE("custom parameter names: only names a successful statement made count") {
  Session s;
  s.Unit("SET custom.\"bad-guc\" = 42", 'I', /*failed=*/true);  // not a valid name
  s.Unit("SET special.\"weird name\" = 'foo'", 'I', /*failed=*/true);
  CHECK(s.state.CustomNames() == 0);
  s.Unit("SET plpgsql.reserved_here = 1", 'I', /*failed=*/true);  // refused on that backend
  CHECK(s.state.CustomNames() == 0);
  s.Unit("SET custom.my_guc = 42");
  CHECK(s.state.CustomNames() != 0);
}

// What current_setting('app.tenant_id') would return now (issue 20), as
// PostgreSQL's GUC stack gives it: the running unit's statements included.
TEST_CASE("EffectiveValue: SET, SET LOCAL, set_config and RESET with transaction scope") {
  Session s;
  auto v = [&] { return s.state.EffectiveValue("app.tenant_id").value_or("<none>"); };
  CHECK(v() == "<none>");
  s.Unit("SET app.tenant_id = '42'");
  CHECK(v() == "42");
  // SET LOCAL lasts until the transaction ends.
  s.Unit("BEGIN", 'T');
  s.Unit("SET LOCAL app.tenant_id = '7'", 'T');
  CHECK(v() == "7");
  s.Unit("COMMIT");
  CHECK(v() == "42");
  // A SET inside a transaction that rolls back is undone.
  s.Unit("BEGIN", 'T');
  s.Unit("SET app.tenant_id = '9'", 'T');
  CHECK(v() == "9");
  s.Unit("ROLLBACK");
  CHECK(v() == "42");
  // SET then SET LOCAL: the commit keeps the SET.
  s.Unit("BEGIN; SET app.tenant_id = '5'; SET LOCAL app.tenant_id = '6'", 'T');
  CHECK(v() == "6");
  s.Unit("COMMIT");
  CHECK(v() == "5");
  // Savepoints: ROLLBACK TO undoes what followed, RELEASE keeps it.
  s.Unit("BEGIN; SAVEPOINT a; SET LOCAL app.tenant_id = '1'", 'T');
  CHECK(v() == "1");
  s.Unit("ROLLBACK TO a", 'T');
  CHECK(v() == "5");
  s.Unit("SAVEPOINT b; SET LOCAL app.tenant_id = '2'; RELEASE b", 'T');
  CHECK(v() == "2");
  s.Unit("COMMIT");
  CHECK(v() == "5");
  // set_config() of a custom setting, local or not.
  s.Unit("BEGIN", 'T');
  s.Unit("SELECT set_config('app.tenant_id', '11', true)", 'T');
  CHECK(v() == "11");
  s.Unit("COMMIT");
  CHECK(v() == "5");
  s.Unit("SELECT set_config('app.tenant_id', '12', false)");
  CHECK(v() == "12");
  CHECK_FALSE(s.state.pinned());  // tracked and replayable, not an unknown change
  // Outside a block, SET LOCAL lasts for its own unit only.
  s.Unit("SET LOCAL app.tenant_id = '13'");
  CHECK(v() == "12");
  // A failed transaction's changes are gone once it ends.
  s.Unit("BEGIN", 'T');
  s.Unit("SET app.tenant_id = '14'", 'T');
  s.Unit("SELECT 1/0", 'E', /*failed=*/true);
  s.Unit("COMMIT");  // of a failed transaction: a rollback
  CHECK(v() == "12");
  s.Unit("RESET app.tenant_id");
  CHECK(v() == "<none>");
}

TEST_CASE("EffectiveValue: the running unit's own statements count") {
  Session s;
  const auto& classifier_sql = "BEGIN; SET LOCAL app.tenant_id = '3'; SELECT 1";
  routing::StatementClassifier classifier{routing::ClassifierOptions{}};
  for (const routing::StatementInfo& st : classifier.ClassifyUncached(classifier_sql).statements) {
    s.state.OnStatement(st);
  }
  CHECK(s.state.EffectiveValue("app.tenant_id") == "3");  // before the unit has run
}

}  // namespace pgregion::proxy
