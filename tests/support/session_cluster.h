// A primary and a replica (scripted backends), a TestSessionEnv over them, and
// raw clients logged in through it: the fixture of the ClientSession tests.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/message_builder.h"
#include "tests/support/scripted_backend.h"
#include "tests/support/test_client.h"
#include "tests/support/test_session_env.h"

namespace pgregion::testing {

struct Cluster {
  explicit Cluster(proxy::Config config = TestConfig())
      : primary(loop.get(), {.name = "primary"}),
        replica(loop.get(), {.name = "replica", .replica = true}),
        env(loop.get(), {&primary, &replica}, std::move(config)) {}

  // A client logged in as the trust user "alice" (messages of the login cleared).
  std::unique_ptr<TestClient> Connect() {
    auto client = std::make_unique<TestClient>(loop.get(), env.port());
    REQUIRE(client->WaitConnected());
    client->SendStartup("alice", "appdb");
    REQUIRE(client->WaitReady(1));
    client->ClearMessages();
    return client;
  }

  // Every statement `backend` received on any connection, in connection order.
  static std::vector<std::string> Statements(const ScriptedBackend& backend) {
    return backend.AllStatements();
  }

  TestLoop loop;  // first: destroyed last, after everything closed
  ScriptedBackend primary;
  ScriptedBackend replica;
  TestSessionEnv env;
};

// Sends `text` as a simple Query and waits for its ReadyForQuery.
inline bool Run(TestClient& client, std::string_view text) {
  const size_t before = client.ready_count();
  client.SendQuery(text);
  return client.WaitReady(before + 1);
}

// The backend connection (of any backend given) that received `text`, or null.
inline BackendConnection* ConnectionThatRan(const ScriptedBackend& backend, std::string_view text) {
  for (const auto& c : backend.connections()) {
    if (c->CountStatement(text) > 0) return c.get();
  }
  return nullptr;
}

}  // namespace pgregion::testing
