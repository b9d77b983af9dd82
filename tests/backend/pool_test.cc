// Pool with real ServerConnections against a scripted backend on loopback:
// LIFO reuse, FIFO waiters within pool.size, the release deferred to the end
// of the server's read callback, Drain, Sweep, and what it reports to the
// process (requests in flight).

#include "proxy/backend/pool.h"

#include <doctest/doctest.h>

#include <string>

#include "protocol/message_builder.h"
#include "proxy/backend/server_connection.h"
#include "tests/backend/test_backend_env.h"
#include "tests/support/scripted_backend.h"

namespace pgregion::testing {
namespace {

using proxy::Pool;
using proxy::ServerConnection;

TEST_CASE("Pool: released connections are reused last-in first-out") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  TestBackendEnv env(loop.get());
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a(1), b(2), c(3);
  REQUIRE(AcquireNow(loop.get(), pool, &a));
  REQUIRE(AcquireNow(loop.get(), pool, &b));
  CHECK(a.server != b.server);
  CHECK(pool->total_count() == 2);
  CHECK(env.outstanding(0) == 2);
  ServerConnection* sa = a.server;
  ServerConnection* sb = b.server;
  Release(pool, &a);
  Release(pool, &b);
  CHECK(pool->idle_count() == 2);
  CHECK(env.outstanding(0) == 0);
  // The warmest (released last) first, synchronously.
  pool->Acquire(&c);
  CHECK(c.server == sb);
  Release(pool, &c);
  pool->Acquire(&c);
  CHECK(c.server == sb);
  FakeClient d(4);
  pool->Acquire(&d);
  CHECK(d.server == sa);
  CHECK(pool->total_count() == 2);  // no new connection was opened
  CHECK(backend.connections().size() == 2);
}

TEST_CASE("Pool: waiters are served first come first served, within pool.size") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  proxy::Config config = TestConfig();
  config.pool.size = 1;
  TestBackendEnv env(loop.get(), config);
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a(1), b(2), c(3);
  REQUIRE(AcquireNow(loop.get(), pool, &a));
  pool->Acquire(&b);
  pool->Acquire(&c);
  RunFor(loop.get(), 20);
  CHECK(pool->waiter_count() == 2);
  CHECK(pool->total_count() == 1);  // pool.size bounds the connections
  CHECK(backend.connections().size() == 1);
  CHECK(env.outstanding(0) == 3);  // one in use, two queued
  CHECK(b.assigned == 0);
  CHECK(c.assigned == 0);

  a.Query("SELECT 1");  // released when done (FakeClient::release_on_done)
  REQUIRE(RunUntil(loop.get(), [&] { return b.assigned == 1; }));
  CHECK(c.assigned == 0);
  b.Query("SELECT 1");
  REQUIRE(RunUntil(loop.get(), [&] { return c.assigned == 1; }));
  CHECK(pool->waiter_count() == 0);
  // A waiter that gives up is no longer served.
  FakeClient d(4);
  pool->Acquire(&d);
  pool->CancelWait(&d);
  CHECK(env.outstanding(0) == 1);
  Release(pool, &c);
  CHECK(d.assigned == 0);
  CHECK(pool->idle_count() == 1);
  CHECK(env.outstanding(0) == 0);
}

TEST_CASE("Pool: a release inside the server's read callback is handed over at its end") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  // The unit's ReadyForQuery and a NoticeResponse arrive in one read.
  std::string notice;
  protocol::AppendNoticeResponse(
      &notice, {.severity = "NOTICE", .sqlstate = "00000", .message = "late notice"});
  backend.set_script([&](BackendConnection&, const Statement& st) {
    Reply r;
    if (st.text == "SELECT with notice") r.after_ready = notice;
    return r;
  });
  proxy::Config config = TestConfig();
  config.pool.size = 1;
  TestBackendEnv env(loop.get(), config);
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a(1), b(2);
  REQUIRE(AcquireNow(loop.get(), pool, &a));
  ServerConnection* server = a.server;
  pool->Acquire(&b);
  int b_assigned_when_a_released = -1;
  a.after_done = [&] { b_assigned_when_a_released = b.assigned; };
  a.Query("SELECT with notice");
  REQUIRE(RunUntil(loop.get(), [&] { return b.assigned == 1; }));
  // A released the connection inside the read: B got it only afterwards...
  CHECK(b_assigned_when_a_released == 0);
  CHECK(b.server == server);
  // ...so the rest of that read (the notice) reached neither of them.
  CHECK(a.Types() == "TDCZ");
  CHECK(b.forwarded.empty());
  CHECK(pool->connecting_count() == 0);
  CHECK(pool->total_count() == 1);  // no second connection was opened meanwhile
  b.Query("SELECT 1");
  REQUIRE(RunUntil(loop.get(), [&] { return b.units_done == 1; }));
  CHECK(b.Types() == "TDCZ");
}

TEST_CASE("Pool: a connection released inside its read callback and then lost opens another") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  // After ReadyForQuery: a frame header whose length (1) is impossible.
  const std::string garbage("N\0\0\0\x01", 5);
  backend.set_script([&](BackendConnection&, const Statement& st) {
    Reply r;
    if (st.text == "SELECT then garbage") r.after_ready = garbage;
    return r;
  });
  proxy::Config config = TestConfig();
  config.pool.size = 1;
  TestBackendEnv env(loop.get(), config);
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a(1), b(2);
  REQUIRE(AcquireNow(loop.get(), pool, &a));
  ServerConnection* first = a.server;
  pool->Acquire(&b);
  a.Query("SELECT then garbage");
  // The first connection dies on the garbage before its hand-over; the
  // waiter gets a new one (Pool::FinishRelease with usable = false).
  REQUIRE(RunUntil(loop.get(), [&] { return b.assigned == 1; }));
  CHECK(b.server != first);
  CHECK(backend.connections().size() == 2);
  CHECK(b.forwarded.empty());
  CHECK(a.lost.empty());  // it had let go of the connection already
}

TEST_CASE("Pool: Drain closes idle connections now and busy ones when they come back") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  TestBackendEnv env(loop.get());
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a(1), b(2);
  REQUIRE(AcquireNow(loop.get(), pool, &a));
  REQUIRE(AcquireNow(loop.get(), pool, &b));
  Release(pool, &b);
  Pool::DrainResult r = pool->Drain("role changed");
  CHECK(r.closed == 1);
  CHECK(r.draining == 1);
  CHECK(pool->idle_count() == 0);
  CHECK(pool->total_count() == 1);
  CHECK(RunUntil(loop.get(), [&] { return backend.open_count() == 1; }));
  // The busy one still works for its client, and closes on release.
  a.Query("SELECT 1");
  REQUIRE(RunUntil(loop.get(), [&] { return a.units_done == 1; }));
  CHECK(a.Types() == "TDCZ");
  CHECK(pool->total_count() == 0);
  CHECK(RunUntil(loop.get(), [&] { return backend.open_count() == 0; }));
  // A new client gets a new connection.
  FakeClient c(3);
  REQUIRE(AcquireNow(loop.get(), pool, &c));
  CHECK(backend.connections().size() == 3);
}

TEST_CASE("Pool: Sweep closes connections idle past idle_timeout_s and keeps min_idle") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  proxy::Config config = TestConfig();
  config.pool.idle_timeout_s = 10;
  config.pool.min_idle = 1;
  TestBackendEnv env(loop.get(), config);
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a(1), b(2);
  REQUIRE(AcquireNow(loop.get(), pool, &a));
  REQUIRE(AcquireNow(loop.get(), pool, &b));
  Release(pool, &a);
  Release(pool, &b);
  const uint64_t now = uv_now(loop.get());
  pool->Sweep(now + 5'000);  // not idle long enough
  CHECK(pool->total_count() == 2);
  pool->Sweep(now + 10'000);
  CHECK(pool->total_count() == 1);  // min_idle keeps one
  CHECK(pool->idle_count() == 1);
  CHECK(RunUntil(loop.get(), [&] { return backend.open_count() == 1; }));

  // Below min_idle, Sweep opens connections (the janitor's upkeep).
  pool->Drain("test");
  CHECK(pool->total_count() == 0);
  pool->Sweep(now + 10'000);
  CHECK(pool->total_count() == 1);
  CHECK(RunUntil(loop.get(), [&] { return pool->idle_count() == 1; }));
  CHECK(env.outstanding(0) == 0);
}

TEST_CASE("Pool: a paused node keeps no idle connection; CloseAll") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  TestBackendEnv env(loop.get());
  int node = env.AddNode("pg0", backend.address_in());
  Pool* pool = env.MakePool(node);
  FakeClient a(1), b(2);
  REQUIRE(AcquireNow(loop.get(), pool, &a));
  REQUIRE(AcquireNow(loop.get(), pool, &b));
  env.set_paused(node, true);
  Release(pool, &a);  // nobody waits: closed
  CHECK(pool->total_count() == 1);
  pool->CloseAll();
  CHECK(pool->total_count() == 0);
  CHECK(RunUntil(loop.get(), [&] { return backend.open_count() == 0; }));
  // Closed connections said goodbye.
  CHECK(backend.connections()[0]->Count('X') == 1);
}

}  // namespace
}  // namespace pgregion::testing
