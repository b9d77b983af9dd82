// ClientSession against a scripted primary and replica: the read retry, the
// read-your-writes hold, pins, and what happens to a server connection when
// its client leaves.

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "protocol/message_builder.h"
#include "tests/support/session_cluster.h"

namespace pgregion::testing {
namespace {

using routing::RouteReason;
using Strings = std::vector<std::string>;

TEST_CASE("ClientSession: a read whose replica drops the connection is re-sent elsewhere once") {
  Cluster cluster;
  int drops = 0;
  cluster.replica.set_script([&](BackendConnection&, const Statement& st) {
    if (st.text == "SELECT flaky" && drops++ == 0) return Reply::Drop();
    return Reply::Default();
  });
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "SELECT flaky"));
  // One answer, from the primary (the only node left), and no error.
  CHECK(client->FirstColumns() == Strings{"primary"});
  CHECK(client->ErrorCodes().empty());
  CHECK(client->ReadyStatuses() == "I");
  CHECK(cluster.replica.CountStatement("SELECT flaky") == 1);
  CHECK(cluster.primary.CountStatement("SELECT flaky") == 1);
  CHECK(cluster.env.failures == std::vector<std::pair<int, bool>>{{1, false}});
  // The session goes on.
  client->ClearMessages();
  REQUIRE(Run(*client, "SELECT 1"));
  CHECK(client->FirstColumns() == Strings{"replica"});
}

TEST_CASE("ClientSession: a read retried before it was sent is the read, not the one before it") {
  // The first read is sent to the replica; the second waits for a new replica
  // connection that is refused (the node failed): it is retried on the primary
  // from to_server_. The retry state of the first read must not be taken for
  // the second's (a stale "sent" flag once re-sent nothing, and the read hung).
  Cluster cluster;
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "SELECT 1"));
  CHECK(client->FirstColumns() == Strings{"replica"});
  std::vector<BackendConnection*> conns;
  for (const auto& conn : cluster.replica.connections()) conns.push_back(conn.get());
  for (BackendConnection* conn : conns) cluster.replica.Drop(conn);
  cluster.replica.StopListening();
  RunFor(cluster.loop.get(), 50);  // the pool sees its idle connection go
  client->ClearMessages();
  REQUIRE(Run(*client, "SELECT 2"));
  CHECK(client->ErrorCodes().empty());
  CHECK(client->FirstColumns() == Strings{"primary"});
  CHECK(cluster.primary.CountStatement("SELECT 2") == 1);
  CHECK(cluster.primary.CountStatement("SELECT 1") == 0);
}

TEST_CASE("ClientSession: a read failing with 57P01 on the replica is retried, unseen") {
  Cluster cluster;
  cluster.replica.set_script([](BackendConnection&, const Statement& st) {
    if (st.text == "SELECT shutdown") {
      return Reply::Error("57P01", "terminating connection due to administrator command");
    }
    return Reply::Default();
  });
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "SELECT shutdown"));
  CHECK(client->ErrorCodes().empty());
  CHECK(client->FirstColumns() == Strings{"primary"});
  CHECK(client->Types() == "TDCZ");
}

TEST_CASE("ClientSession: a write is never re-sent when its connection is lost") {
  Cluster cluster;
  cluster.primary.set_script([](BackendConnection&, const Statement& st) {
    return st.text == "INSERT INTO crash VALUES (1)" ? Reply::Drop() : Reply::Default();
  });
  auto client = cluster.Connect();
  client->SendQuery("INSERT INTO crash VALUES (1)");
  REQUIRE(client->WaitClosed());
  CHECK(client->ErrorCodes() == Strings{"08006"});
  CHECK(cluster.primary.CountStatement("INSERT INTO crash VALUES (1)") == 1);
  CHECK(cluster.replica.CountStatement("INSERT INTO crash VALUES (1)") == 0);
}

TEST_CASE("ClientSession: after a write, ReadyForQuery waits for the pipelined LSN probe") {
  Cluster cluster;
  int probes = 0;
  cluster.primary.set_script([&](BackendConnection&, const Statement& st) {
    if (st.via == 'F' && probes++ == 0) return Reply::Hold();
    return Reply::Default();
  });
  auto client = cluster.Connect();
  client->SendQuery("INSERT INTO t VALUES (1)");
  REQUIRE(RunUntil(cluster.loop.get(), [&] { return !client->CommandTags().empty(); }));
  RunFor(cluster.loop.get(), 50);
  CHECK(client->CommandTags() == Strings{"INSERT 0 1"});
  CHECK(client->ready_count() == 0);  // held until the probe answers
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "INSERT INTO t VALUES (1)");
  REQUIRE(conn != nullptr);
  CHECK(conn->holding);
  // The probe was pipelined right behind the unit: FunctionCalls, never a Query.
  CHECK(conn->received.back().type == 'F');
  cluster.primary.ReleaseHeld(conn);
  REQUIRE(client->WaitReady(1));
  // The new token, then the ReadyForQuery.
  const std::string types = client->Types();
  CHECK(types.substr(types.size() - 2) == "SZ");
  const std::string token = client->Parameter("pgregion.ryw_token");
  CHECK(token.find(std::to_string(kTestSystemId)) != std::string::npos);
  CHECK(token.find("3000060") != std::string::npos);

  // The replica has not replayed 0/3000060: the next read goes to the primary.
  client->ClearMessages();
  REQUIRE(Run(*client, "SELECT 1"));
  CHECK(client->FirstColumns() == Strings{"primary"});
  CHECK(cluster.env.routed(0, RouteReason::kRywFallback) == 1);
  // Once it has, reads go to the replica again.
  cluster.env.SetNodeLsn(1, routing::Lsn(0x4000000));
  client->ClearMessages();
  REQUIRE(Run(*client, "SELECT 1"));
  CHECK(client->FirstColumns() == Strings{"replica"});
}

TEST_CASE("ClientSession: the token is the flush position after a synchronous commit") {
  Cluster cluster;
  ScriptedBackend::Options& primary = cluster.primary.options();
  auto client = cluster.Connect();
  auto write_and_token = [&](std::string_view flush, std::string_view insert, std::string_view sync,
                             std::initializer_list<std::string_view> sql) {
    primary.flush_lsn = flush;
    primary.lsn = insert;
    primary.synchronous_commit = sync;
    for (std::string_view q : sql) REQUIRE(Run(*client, q));
    return client->Parameter("pgregion.ryw_token");
  };
  // The probe: the setting, the flush and the insert position, in that order.
  CHECK(write_and_token("0/3000040", "0/3000a00", "on", {"INSERT INTO t VALUES (1)"})
            .ends_with("0000000003000040"));
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "INSERT INTO t VALUES (1)");
  REQUIRE(conn != nullptr);
  std::vector<std::string> calls;
  for (const ReceivedMessage& m : conn->received) {
    if (m.type == 'F') calls.push_back(m.text);
  }
  CHECK(calls ==
        std::vector<std::string>{"FunctionCall(2077)", "FunctionCall(3330)", "FunctionCall(2852)"});
  // The session's setting is off (per role, database, postgresql.conf or SET):
  // the commit may not be flushed yet.
  CHECK(write_and_token("0/3000b00", "0/3000c00", "off", {"INSERT INTO t VALUES (2)"})
            .ends_with("0000000003000C00"));
  CHECK(write_and_token("0/3000c80", "0/3000d00", "local", {"INSERT INTO t VALUES (3)"})
            .ends_with("0000000003000C80"));
  // SET LOCAL synchronous_commit in the transaction: after the commit the
  // setting reads 'on' again, but the commit was asynchronous.
  CHECK(write_and_token(
            "0/3000e00", "0/3000f00", "on",
            {"BEGIN", "SET LOCAL synchronous_commit = off", "INSERT INTO t VALUES (4)", "COMMIT"})
            .ends_with("0000000003000F00"));
  // The next transaction is judged on its own.
  CHECK(write_and_token("0/3001000", "0/3001100", "on", {"INSERT INTO t VALUES (5)"})
            .ends_with("0000000003001000"));
  // User code may lower the setting unseen: a function call, DO, CALL.
  CHECK(write_and_token("0/3001200", "0/3001300", "on", {"SELECT app.place_order(1)"})
            .ends_with("0000000003001300"));
  // An answer the proxy does not understand: the insert position.
  CHECK(write_and_token("0/3001400", "0/3001500", "", {"INSERT INTO t VALUES (6)"})
            .ends_with("0000000003001500"));
}

TEST_CASE(
    "ClientSession: a temporary table pins the session to its connection; DISCARD ALL at exit") {
  Cluster cluster;
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "CREATE TEMP TABLE tmp (x int)"));
  REQUIRE(Run(*client, "SELECT 1"));
  REQUIRE(Run(*client, "SELECT 2"));
  CHECK(client->FirstColumns() == Strings{"primary", "primary"});
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "CREATE TEMP TABLE tmp (x int)");
  REQUIRE(conn != nullptr);
  CHECK(conn->CountStatement("SELECT 1") == 1);
  CHECK(conn->CountStatement("SELECT 2") == 1);
  CHECK(cluster.replica.AllStatements().empty());
  CHECK(cluster.env.backend_env().outstanding(0) == 1);  // kept while pinned

  client->Terminate();
  REQUIRE(RunUntil(cluster.loop.get(), [&] { return conn->CountStatement("DISCARD ALL") == 1; }));
  CHECK(
      RunUntil(cluster.loop.get(), [&] { return cluster.env.backend_env().outstanding(0) == 0; }));
  CHECK_FALSE(conn->closed);  // reset and returned to the pool
  // The next client gets that connection and sees nothing of the first.
  auto next = cluster.Connect();
  REQUIRE(Run(*next, "INSERT INTO t VALUES (1)"));
  CHECK(conn->CountStatement("INSERT INTO t VALUES (1)") == 1);
}

TEST_CASE("ClientSession: LISTEN pins; the connection is reset when the client leaves") {
  Cluster cluster;
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "LISTEN jobs"));
  REQUIRE(Run(*client, "SELECT 1"));
  CHECK(client->FirstColumns() == Strings{"primary"});
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "LISTEN jobs");
  REQUIRE(conn != nullptr);
  CHECK(conn->CountStatement("SELECT 1") == 1);
  client->Close();  // vanishes without a Terminate
  CHECK(RunUntil(cluster.loop.get(), [&] { return conn->CountStatement("DISCARD ALL") == 1; }));
}

TEST_CASE("ClientSession: LOAD cannot be undone: the connection is closed when the client leaves") {
  Cluster cluster;
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "LOAD 'auto_explain'"));
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "LOAD 'auto_explain'");
  REQUIRE(conn != nullptr);
  client->Terminate();
  CHECK(RunUntil(cluster.loop.get(), [&] { return conn->closed; }));
  CHECK(conn->CountStatement("DISCARD ALL") == 0);
}

TEST_CASE("ClientSession: a client leaving mid-transaction closes its server connection") {
  Cluster cluster;
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "BEGIN"));
  REQUIRE(Run(*client, "INSERT INTO t VALUES (1)"));
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "INSERT INTO t VALUES (1)");
  REQUIRE(conn != nullptr);
  client->Close();
  CHECK(RunUntil(cluster.loop.get(), [&] { return conn->closed; }));
  CHECK(conn->CountStatement("COMMIT") == 0);
}

TEST_CASE("ClientSession: a plain SET is not reset at exit; the next client's replay undoes it") {
  Cluster cluster;
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "SET work_mem = '64MB'"));
  const bool on_replica = ConnectionThatRan(cluster.replica, "SET work_mem = '64MB'") != nullptr;
  const ScriptedBackend& node = on_replica ? cluster.replica : cluster.primary;
  BackendConnection* conn = ConnectionThatRan(node, "SET work_mem = '64MB'");
  REQUIRE(conn != nullptr);
  client->Terminate();
  RunFor(cluster.loop.get(), 20);
  CHECK(conn->CountStatement("DISCARD ALL") == 0);
  CHECK_FALSE(conn->closed);
  // The next client's unit on that connection is preceded by a replay that
  // takes work_mem back to what this client has (the login default).
  auto second = cluster.Connect();
  const std::string text = on_replica ? "SELECT 7" : "INSERT INTO t VALUES (7)";
  REQUIRE(Run(*second, text));
  REQUIRE(conn->CountStatement(text) == 1);
  const Strings queries = conn->Queries();
  REQUIRE(queries.size() >= 2);
  CHECK(queries.back() == text);
  CHECK(queries[queries.size() - 2].find("work_mem") != std::string::npos);
}

}  // namespace
}  // namespace pgregion::testing
