// ServerConnection against a scripted backend on loopback: logins (trust, md5,
// SCRAM, refused, unreachable, hung), pipelined units on one bound
// connection, the proxy's own reset, and a backend lost mid-unit.

#include "proxy/backend/server_connection.h"

#include <doctest/doctest.h>

#include <string>

#include "protocol/md5.h"
#include "protocol/message_builder.h"
#include "proxy/backend/pool.h"
#include "tests/backend/test_backend_env.h"
#include "tests/support/scripted_backend.h"

namespace pgregion::testing {
namespace {

using proxy::Pool;
using proxy::ServerConnection;
using Auth = ScriptedBackend::Auth;

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  uv_ip4_addr("127.0.0.1", port, &a);
  return a;
}

// One client asks a fresh pool for a connection; the loop runs until it is
// assigned or refused.
struct LoginResult {
  bool assigned = false;
  std::vector<std::pair<std::string, bool>> failed;
};

LoginResult Login(uv_loop_t* loop, TestBackendEnv& env, Pool* pool) {
  FakeClient client;
  pool->Acquire(&client);
  RunUntil(loop, [&] { return client.assigned > 0 || !client.failed.empty(); });
  LoginResult r{client.assigned > 0, client.failed};
  if (client.server != nullptr) {
    client.server->Unbind();
    pool->Release(client.server);
  }
  return r;
}

bool HasSqlstate(const std::string& error_response, std::string_view sqlstate) {
  std::vector<BackendMessage> msgs = DecodeMessages(error_response);
  if (msgs.size() != 1 || msgs[0].type != 'E') return false;
  return msgs[0].body.find(std::string("C") + std::string(sqlstate)) != std::string::npos;
}

TEST_CASE("ServerConnection: trust login learns the backend's parameters") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {.name = "pg0"});
  TestBackendEnv env(loop.get());
  int node = env.AddNode("pg0", backend.address_in());
  proxy::SessionParams login;
  login.Set("DateStyle", "ISO, DMY");
  Pool* pool = env.MakePool(node, "alice", "", "appdb", login);
  LoginResult r = Login(loop.get(), env, pool);
  CHECK(r.assigned);
  CHECK(r.failed.empty());
  REQUIRE(backend.connections().size() == 1);
  const BackendConnection& conn = *backend.connections()[0];
  CHECK(conn.user == "alice");
  CHECK(conn.database == "appdb");
  // The pool's login parameters go into the StartupMessage.
  bool sent_datestyle = false;
  for (const auto& [k, v] : conn.startup) sent_datestyle |= k == "DateStyle" && v == "ISO, DMY";
  CHECK(sent_datestyle);
  CHECK(pool->has_params());
  REQUIRE(pool->params().Get("server_version") != nullptr);
  CHECK(*pool->params().Get("server_version") == "15.4 (scripted)");
  CHECK(pool->idle_count() == 1);
  CHECK(env.failures.empty());
}

TEST_CASE("ServerConnection: md5 and SCRAM-SHA-256 logins; a wrong password is no node failure") {
  TestLoop loop;
  ScriptedBackend md5(loop.get(), {.auth = Auth::kMd5, .password = "pw-md5"});
  ScriptedBackend scram(loop.get(), {.auth = Auth::kScram, .password = "pw-scram"});
  ScriptedBackend clear(loop.get(), {.auth = Auth::kCleartext, .password = "pw-clear"});
  TestBackendEnv env(loop.get());
  int n_md5 = env.AddNode("md5", md5.address_in());
  int n_scram = env.AddNode("scram", scram.address_in());
  int n_clear = env.AddNode("clear", clear.address_in());

  CHECK(Login(loop.get(), env, env.MakePool(n_md5, "bob", "pw-md5")).assigned);
  // An md5 hash stored in the config works against an md5 backend as well.
  CHECK(Login(loop.get(), env,
              env.MakePool(n_md5, "bob", protocol::Md5StoredPassword("bob", "pw-md5")))
            .assigned);
  CHECK(Login(loop.get(), env, env.MakePool(n_scram, "bob", "pw-scram")).assigned);
  CHECK(Login(loop.get(), env, env.MakePool(n_clear, "bob", "pw-clear")).assigned);

  for (int node : {n_md5, n_scram, n_clear}) {
    CAPTURE(node);
    LoginResult bad = Login(loop.get(), env, env.MakePool(node, "bob", "wrong"));
    CHECK_FALSE(bad.assigned);
    REQUIRE(bad.failed.size() == 1);
    CHECK(HasSqlstate(bad.failed[0].first, "28P01"));
    CHECK_FALSE(bad.failed[0].second);  // this login failed, not the node
  }
  CHECK(env.failures.empty());
}

TEST_CASE("ServerConnection: a refused login; 57P03 (cannot connect now) is a node failure") {
  TestLoop loop;
  ScriptedBackend no_role(loop.get(), {.auth = Auth::kRefuse, .refuse_sqlstate = "28000"});
  ScriptedBackend starting(loop.get(), {.auth = Auth::kRefuse,
                                        .refuse_sqlstate = "57P03",
                                        .refuse_message = "the database system is starting up"});
  TestBackendEnv env(loop.get());
  int a = env.AddNode("a", no_role.address_in());
  int b = env.AddNode("b", starting.address_in());

  LoginResult r = Login(loop.get(), env, env.MakePool(a));
  REQUIRE(r.failed.size() == 1);
  CHECK(HasSqlstate(r.failed[0].first, "28000"));  // the backend's own reason, as it was
  CHECK_FALSE(r.failed[0].second);
  CHECK(env.failures.empty());

  r = Login(loop.get(), env, env.MakePool(b));
  REQUIRE(r.failed.size() == 1);
  CHECK(HasSqlstate(r.failed[0].first, "57P03"));
  CHECK(r.failed[0].second);
  CHECK(env.failures == std::vector<std::pair<int, bool>>{{b, true}});
}

TEST_CASE("ServerConnection: connect refused and login timeout are node failures") {
  TestLoop loop;
  ScriptedBackend hung(loop.get(), {});
  hung.HoldAll(true);  // accepts, never answers the StartupMessage
  proxy::Config config = TestConfig();
  config.pool.connect_timeout_ms = 100;
  TestBackendEnv env(loop.get(), config);
  int refused = env.AddNode("refused", Loopback(UnusedPort()));
  int slow = env.AddNode("slow", hung.address_in());

  Pool* pool = env.MakePool(refused);
  LoginResult r = Login(loop.get(), env, pool);
  REQUIRE(r.failed.size() == 1);
  CHECK(HasSqlstate(r.failed[0].first, "08001"));
  CHECK(r.failed[0].second);
  CHECK(env.failures == std::vector<std::pair<int, bool>>{{refused, true}});
  CHECK(pool->total_count() == 0);
  CHECK(env.outstanding(refused) == 0);

  env.failures.clear();
  uv_update_time(loop.get());
  const uint64_t start = uv_now(loop.get());
  pool = env.MakePool(slow);
  r = Login(loop.get(), env, pool);
  REQUIRE(r.failed.size() == 1);
  CHECK(r.failed[0].first.find("timed out") != std::string::npos);
  CHECK(r.failed[0].second);
  CHECK(uv_now(loop.get()) - start >= 100);
  CHECK(env.failures == std::vector<std::pair<int, bool>>{{slow, true}});
  CHECK(pool->total_count() == 0);
  // The timed-out login's socket was closed.
  CHECK(RunUntil(loop.get(), [&] { return hung.open_count() == 0; }));
}

TEST_CASE("ServerConnection: pipelined queries answer in order, one unit done per ReadyForQuery") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {.name = "pg0"});
  TestBackendEnv env(loop.get());
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient client;
  client.release_on_done = false;
  pool->Acquire(&client);
  REQUIRE(RunUntil(loop.get(), [&] { return client.server != nullptr; }));
  CHECK(client.server->state() == ServerConnection::State::kActive);
  client.Queries({"SELECT 1", "BEGIN", "INSERT INTO t VALUES (1)", "COMMIT", "SELECT 2"});
  REQUIRE(RunUntil(loop.get(), [&] { return client.units_done == 5; }));
  RunFor(loop.get(), 20);
  CHECK(client.units_done == 5);
  CHECK(client.Types() == "TDCZCZCZCZTDCZ");
  CHECK(client.server->clean());
  CHECK(client.server->tx_status() == 'I');
  CHECK(backend.connections()[0]->Queries().size() == 5);
  CHECK(env.outstanding(0) == 1);  // still bound
  client.server->Unbind();
  pool->Release(client.server);
  CHECK(env.outstanding(0) == 0);
}

TEST_CASE("ServerConnection: Reset(DISCARD ALL) is the proxy's own, never forwarded") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  TestBackendEnv env(loop.get());
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a;
  a.release_on_done = false;
  pool->Acquire(&a);
  REQUIRE(RunUntil(loop.get(), [&] { return a.server != nullptr; }));
  a.Query("CREATE TEMP TABLE t (x int)");
  REQUIRE(RunUntil(loop.get(), [&] { return a.units_done == 1; }));
  a.forwarded.clear();
  ServerConnection* server = a.server;
  server->Reset("DISCARD ALL");
  CHECK(server->state() == ServerConnection::State::kResetting);
  CHECK(pool->idle_count() == 0);
  REQUIRE(RunUntil(loop.get(), [&] { return pool->idle_count() == 1; }));
  CHECK(server->state() == ServerConnection::State::kIdle);
  CHECK(a.forwarded.empty());
  CHECK(a.units_done == 1);
  CHECK(backend.connections()[0]->Queries().back() == "DISCARD ALL");
  // The next client gets the reset connection and sees only its own replies.
  FakeClient b;
  pool->Acquire(&b);
  CHECK(b.server == server);
  b.Query("SELECT 1");
  REQUIRE(RunUntil(loop.get(), [&] { return b.units_done == 1; }));
  CHECK(b.Types() == "TDCZ");
}

TEST_CASE("ServerConnection: a reset that leaves a transaction open closes the connection") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  TestBackendEnv env(loop.get());
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a;
  pool->Acquire(&a);
  REQUIRE(RunUntil(loop.get(), [&] { return a.server != nullptr; }));
  a.server->Reset("BEGIN");  // the backend answers 'T'
  REQUIRE(RunUntil(loop.get(), [&] { return pool->total_count() == 0; }));
  CHECK(pool->idle_count() == 0);
  CHECK(RunUntil(loop.get(), [&] { return backend.open_count() == 0; }));
}

TEST_CASE("ServerConnection: a backend lost mid-unit tells the bound client") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  backend.set_script([](BackendConnection&, const Statement& st) {
    return st.text == "SELECT crash" ? Reply::Drop() : Reply::Default();
  });
  TestBackendEnv env(loop.get());
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient client;
  client.release_on_done = false;
  pool->Acquire(&client);
  REQUIRE(RunUntil(loop.get(), [&] { return client.server != nullptr; }));
  client.Queries({"SELECT 1", "SELECT crash"});
  REQUIRE(RunUntil(loop.get(), [&] { return !client.lost.empty(); }));
  CHECK(client.units_done == 1);  // the first one finished
  CHECK(client.Types() == "TDCZ");
  CHECK(pool->total_count() == 0);
  CHECK(pool->idle_count() == 0);
  CHECK(env.outstanding(0) == 0);
  // The session reports the loss (ClientSession::OnServerLost), not the connection.
  CHECK(env.failures.empty());
}

TEST_CASE("ServerConnection: a backend error goes to the client's OnServerError and is forwarded") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  backend.set_script([](BackendConnection&, const Statement& st) {
    return st.text == "SELECT nope" ? Reply::Error("42P01", "no such table") : Reply::Default();
  });
  TestBackendEnv env(loop.get());
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient client;
  pool->Acquire(&client);
  REQUIRE(RunUntil(loop.get(), [&] { return client.server != nullptr; }));
  client.Query("SELECT nope");
  REQUIRE(RunUntil(loop.get(), [&] { return client.units_done == 1; }));
  CHECK(client.errors.size() == 1);
  CHECK(client.Types() == "EZ");
  CHECK(pool->idle_count() == 1);  // released clean
}

}  // namespace
}  // namespace pgregion::testing
