// ClientSession over a real loopback socket, with real routing and pools,
// against a scripted primary and replica: login, where reads and writes go,
// the deferred BEGIN, and pipelined queries.

#include "proxy/session/client_session.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "protocol/message_builder.h"
#include "tests/support/session_cluster.h"

namespace pgregion::testing {
namespace {

using routing::RouteReason;
using Strings = std::vector<std::string>;

TEST_CASE("ClientSession: a trust login sees the backend's parameters and a key") {
  Cluster cluster;
  TestClient client(cluster.loop.get(), cluster.env.port());
  REQUIRE(client.WaitConnected());
  client.SendStartup("alice", "appdb", {{"application_name", "unit"}});
  REQUIRE(client.WaitReady(1));
  const std::string types = client.Types();
  CHECK(types.front() == 'R');
  CHECK(types.substr(types.size() - 2) == "KZ");
  CHECK(client.ReadyStatuses() == "I");
  CHECK(client.Parameter("server_version") == "15.4 (scripted)");
  CHECK(client.Parameter("application_name") == "unit");  // the client's own value
  // The parameters were learned from one login to the primary (WelcomeNode).
  REQUIRE(cluster.primary.connections().size() == 1);
  CHECK(cluster.primary.connections()[0]->user == "alice");
  CHECK(cluster.primary.connections()[0]->database == "appdb");
  CHECK(cluster.replica.connections().empty());
  CHECK(cluster.env.session_count() == 1);
  client.Terminate();
  CHECK(RunUntil(cluster.loop.get(), [&] { return cluster.env.session_count() == 0; }));
}

TEST_CASE("ClientSession: a read goes to the replica, a write to the primary") {
  Cluster cluster;
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "SELECT 1"));
  CHECK(client->FirstColumns() == Strings{"replica"});
  CHECK(cluster.replica.CountStatement("SELECT 1") == 1);
  CHECK(cluster.env.routed(1, RouteReason::kRead) == 1);

  client->ClearMessages();
  REQUIRE(Run(*client, "INSERT INTO t VALUES (1)"));
  CHECK(client->CommandTags() == Strings{"INSERT 0 1"});
  CHECK(client->ErrorCodes().empty());
  CHECK(cluster.primary.CountStatement("INSERT INTO t VALUES (1)") == 1);
  CHECK(cluster.replica.CountStatement("INSERT INTO t VALUES (1)") == 0);
  CHECK(cluster.env.routed(0, RouteReason::kWrite) == 1);
  // Nothing but the unit itself and the LSN probe reached the primary.
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "INSERT INTO t VALUES (1)");
  REQUIRE(conn != nullptr);
  CHECK(conn->Queries() == Strings{"INSERT INTO t VALUES (1)"});
  CHECK(conn->Count('F') == 3);  // the probe: setting, flush and insert position
  // The server connections went back to their pools (transaction pooling).
  CHECK(RunUntil(cluster.loop.get(), [&] {
    return cluster.env.backend_env().outstanding(0) == 0 &&
           cluster.env.backend_env().outstanding(1) == 0;
  }));
}

TEST_CASE("ClientSession: a deferred BEGIN goes in front of the first statement, where it runs") {
  Cluster cluster;
  auto client = cluster.Connect();

  // BEGIN; INSERT; COMMIT: the whole transaction on the primary.
  REQUIRE(Run(*client, "BEGIN"));
  CHECK(client->CommandTags() == Strings{"BEGIN"});
  CHECK(client->ReadyStatuses() == "T");
  CHECK(cluster.primary.CountStatement("BEGIN") == 0);  // answered by the proxy
  CHECK(cluster.replica.CountStatement("BEGIN") == 0);
  REQUIRE(Run(*client, "INSERT INTO t VALUES (1)"));
  REQUIRE(Run(*client, "COMMIT"));
  CHECK(client->ReadyStatuses() == "TTI");
  CHECK(client->CommandTags() == Strings{"BEGIN", "INSERT 0 1", "COMMIT"});
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "INSERT INTO t VALUES (1)");
  REQUIRE(conn != nullptr);
  CHECK(conn->Queries() == Strings{"BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"});
  CHECK(cluster.replica.AllStatements().empty());

  // BEGIN READ ONLY; SELECT: the transaction starts on the replica (once it
  // has replayed the write above: read-your-writes).
  cluster.env.SetNodeLsn(1, routing::Lsn(0x4000000));
  client->ClearMessages();
  REQUIRE(Run(*client, "BEGIN READ ONLY"));
  REQUIRE(Run(*client, "SELECT 1"));
  REQUIRE(Run(*client, "COMMIT"));
  CHECK(client->ReadyStatuses() == "TTI");
  CHECK(client->FirstColumns() == Strings{"replica"});
  CHECK(cluster.replica.AllStatements() == Strings{"BEGIN READ ONLY", "SELECT 1", "COMMIT"});

  // BEGIN; COMMIT with nothing in between reaches no server.
  client->ClearMessages();
  const size_t primary_before = cluster.primary.AllStatements().size();
  REQUIRE(Run(*client, "BEGIN"));
  REQUIRE(Run(*client, "COMMIT"));
  CHECK(client->CommandTags() == Strings{"BEGIN", "COMMIT"});
  CHECK(client->ReadyStatuses() == "TI");
  CHECK(cluster.primary.AllStatements().size() == primary_before);
  CHECK(cluster.replica.AllStatements().size() == 3);
}

TEST_CASE("ClientSession: pipelined queries in one write are answered in order") {
  Cluster cluster;
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "SELECT 0"));  // the replica's pool has a connection ready
  client->ClearMessages();
  std::string batch;
  for (const char* q : {"SELECT 1", "SELECT 2", "INSERT INTO t VALUES (1)", "SELECT 3"}) {
    protocol::AppendQuery(&batch, q);
  }
  client->Send(batch);
  REQUIRE(client->WaitReady(4));
  CHECK(client->ReadyStatuses() == "IIII");
  CHECK(client->CommandTags() == Strings{"SELECT 1", "SELECT 1", "INSERT 0 1", "SELECT 1"});
  // The reads before the write stay on the bound replica; the write goes to
  // the primary, and the read after it must see it (read-your-writes: the
  // replica has not replayed the write's LSN).
  CHECK(client->FirstColumns() == Strings{"replica", "replica", "primary"});
  CHECK(cluster.primary.CountStatement("INSERT INTO t VALUES (1)") == 1);
  CHECK(cluster.replica.CountStatement("INSERT INTO t VALUES (1)") == 0);
  CHECK(client->ErrorCodes().empty());
  // The LSN probe follows the write on the primary.
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "INSERT INTO t VALUES (1)");
  REQUIRE(conn != nullptr);
  std::string order;
  for (const ReceivedMessage& m : conn->received) order += m.type;
  CHECK(order == "QFFFQ");
}

// Units that arrive while the first one waits for a server connection are
// dispatched together: the LSN probe goes behind the last of them, so the
// session's token covers its own write (it once went between SELECT 2 and the
// INSERT, and the token predated the write).
TEST_CASE("ClientSession: the LSN probe follows the write when the batch waited for a pool") {
  Cluster cluster;
  auto client = cluster.Connect();
  std::string batch;
  for (const char* q : {"SELECT 1", "SELECT 2", "INSERT INTO t VALUES (1)", "SELECT 3"}) {
    protocol::AppendQuery(&batch, q);
  }
  client->Send(batch);  // the replica's pool has no connection yet: SELECT 1 waits
  REQUIRE(client->WaitReady(4));
  CHECK(client->CommandTags() == Strings{"SELECT 1", "SELECT 1", "INSERT 0 1", "SELECT 1"});
  BackendConnection* conn = ConnectionThatRan(cluster.primary, "INSERT INTO t VALUES (1)");
  REQUIRE(conn != nullptr);
  std::string order;
  for (const ReceivedMessage& m : conn->received) order += m.type == 'Q' ? m.text + ";" : "F;";
  const size_t insert = order.find("INSERT INTO t VALUES (1);");
  REQUIRE(insert != std::string::npos);
  CHECK(order.find("F;") > insert);  // no probe before the write
  CHECK(order.find("F;", insert) != std::string::npos);
}

TEST_CASE("ClientSession: extended-protocol units route as a whole") {
  Cluster cluster;
  auto client = cluster.Connect();
  std::string batch;
  namespace p = ::pgregion::protocol;
  p::MessageWriter(&batch).Begin('P').AddCString("").AddCString("SELECT 42").AddInt16(0).End();
  p::MessageWriter(&batch)
      .Begin('B')
      .AddCString("")
      .AddCString("")
      .AddInt16(0)
      .AddInt16(0)
      .AddInt16(0)
      .End();
  p::MessageWriter(&batch).Begin('D').AddByte('P').AddCString("").End();
  p::MessageWriter(&batch).Begin('E').AddCString("").AddInt32(0).End();
  p::AppendSync(&batch);
  client->Send(batch);
  REQUIRE(client->WaitReady(1));
  CHECK(client->Types() == "12TDCZ");
  CHECK(client->FirstColumns() == Strings{"replica"});
  CHECK(cluster.replica.CountStatement("SELECT 42") == 1);
}

}  // namespace
}  // namespace pgregion::testing
