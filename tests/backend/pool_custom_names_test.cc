// Pool::Acquire's matching of custom-parameter placeholders
// (SessionState::CustomNames): a connection serves clients that made the same
// names, or any client while it holds none; never a client without them.

#include <doctest/doctest.h>

#include "proxy/backend/pool.h"
#include "proxy/backend/server_connection.h"
#include "tests/backend/test_backend_env.h"
#include "tests/support/scripted_backend.h"

namespace pgregion::testing {
namespace {

using proxy::Pool;
using proxy::ServerConnection;

constexpr uint64_t kTenant = 0x1001;  // stands for the hash of {"app.tenant"}
constexpr uint64_t kOther = 0x2001;

ServerConnection* Take(uv_loop_t* loop, Pool* pool, FakeClient* client, uint64_t names) {
  if (!AcquireNow(loop, pool, client, names)) return nullptr;
  client->server->set_custom_names(names);  // what the client's replay and statements leave there
  return client->server;
}

TEST_CASE("Pool: a connection with placeholders serves only clients with the same names") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  TestBackendEnv env(loop.get());
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a(1), b(2), c(3);
  ServerConnection* tagged = Take(loop.get(), pool, &a, kTenant);
  REQUIRE(tagged != nullptr);
  Release(pool, &a);
  // B made no names: it must not get A's connection, a new one is opened.
  ServerConnection* plain = Take(loop.get(), pool, &b, 0);
  REQUIRE(plain != nullptr);
  CHECK(plain != tagged);
  Release(pool, &b);
  CHECK(pool->idle_count() == 2);
  // C made the same names as A: A's connection first (nothing to create).
  CHECK(Take(loop.get(), pool, &c, kTenant) == tagged);
  Release(pool, &c);
  // A client with other names may take the connection without any (its
  // replay creates them there), never the one with kTenant.
  FakeClient d(4);
  CHECK(Take(loop.get(), pool, &d, kOther) == plain);
  CHECK(pool->total_count() == 2);
}

TEST_CASE("Pool: when the pool is full of other clients' names the oldest idle one gives way") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  proxy::Config config = TestConfig();
  config.pool.size = 1;
  TestBackendEnv env(loop.get(), config);
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a(1), b(2);
  ServerConnection* tagged = Take(loop.get(), pool, &a, kTenant);
  REQUIRE(tagged != nullptr);
  Release(pool, &a);
  ServerConnection* fresh = Take(loop.get(), pool, &b, 0);
  REQUIRE(fresh != nullptr);
  CHECK(pool->total_count() == 1);
  CHECK(backend.connections().size() == 2);  // the tagged one was closed, a new one opened
}

TEST_CASE("Pool: a released connection goes to the first waiter it fits") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  proxy::Config config = TestConfig();
  config.pool.size = 1;
  TestBackendEnv env(loop.get(), config);
  Pool* pool = env.MakePool(env.AddNode("pg0", backend.address_in()));
  FakeClient a(1), plain(2), same(3);
  REQUIRE(Take(loop.get(), pool, &a, kTenant) != nullptr);
  ServerConnection* tagged = a.server;
  pool->Acquire(&plain, 0);  // queued first, but A's connection does not fit it
  pool->Acquire(&same, kTenant);
  Release(pool, &a);
  CHECK(same.server == tagged);
  CHECK(plain.server == nullptr);
  CHECK(pool->waiter_count() == 1);
  // When it comes back with only the plain client waiting, it is closed so
  // that the slot can serve that client.
  Release(pool, &same);
  REQUIRE(RunUntil(loop.get(), [&] { return plain.server != nullptr; }));
  CHECK(plain.server != tagged);
  CHECK(pool->total_count() == 1);
}

}  // namespace
}  // namespace pgregion::testing
