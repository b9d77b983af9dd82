// ClientSession's optimistic read transactions against a scripted primary and
// replica: where each statement ran, that a write is sent once, and what the
// client sees when the replay on the primary agrees or differs.

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/support/session_cluster.h"

namespace pgregion::testing {
namespace {

using proxy::OptimisticMoveReason;
using proxy::OptimisticOutcome;
using Strings = std::vector<std::string>;

// Both nodes answer `SELECT v` alike (the scripted default answers with the
// node's name, which a replay compares as a change).
Reply SameOnBothNodes(BackendConnection&, const Statement& st) {
  if (st.text == "SELECT v") return Reply::Rows({"v"}, {{"42"}}, "SELECT 1");
  return Reply::Default();
}

TEST_CASE("Optimistic: a transaction that only reads runs and ends on the replica") {
  Cluster cluster;
  auto client = cluster.Connect();
  for (const char* q : {"BEGIN", "SELECT 1", "SELECT 2", "COMMIT"}) REQUIRE(Run(*client, q));
  CHECK(client->FirstColumns() == Strings{"replica", "replica"});
  CHECK(client->ReadyStatuses() == "TTTI");
  CHECK(Cluster::Statements(cluster.replica) == Strings{"BEGIN", "SELECT 1", "SELECT 2", "COMMIT"});
  CHECK(cluster.primary.CountStatement("SELECT 1") == 0);
  proxy::Metrics& m = cluster.env.metrics();
  CHECK(m.optimistic_count(OptimisticOutcome::kStarted) == 1);
  CHECK(m.optimistic_count(OptimisticOutcome::kCommittedOnReplica) == 1);
}

TEST_CASE("Optimistic: a write after equal reads moves to the primary and is sent once") {
  Cluster cluster;
  cluster.primary.set_script(SameOnBothNodes);
  cluster.replica.set_script(SameOnBothNodes);
  auto client = cluster.Connect();
  for (const char* q : {"BEGIN", "SELECT v", "INSERT INTO t VALUES (1)", "SELECT 9", "COMMIT"}) {
    REQUIRE(Run(*client, q));
  }
  CHECK(client->ErrorCodes().empty());
  CHECK(client->FirstColumns() == Strings{"42", "primary"});
  CHECK(client->ReadyStatuses() == "TTTTI");
  CHECK(Cluster::Statements(cluster.replica) == Strings{"BEGIN", "SELECT v", "ROLLBACK"});
  CHECK(cluster.primary.CountStatement("BEGIN") == 1);
  CHECK(cluster.primary.CountStatement("SELECT v") == 1);
  CHECK(cluster.primary.CountStatement("INSERT INTO t VALUES (1)") == 1);
  CHECK(cluster.replica.CountStatement("INSERT INTO t VALUES (1)") == 0);
  proxy::Metrics& m = cluster.env.metrics();
  CHECK(m.optimistic_count(OptimisticOutcome::kMoved) == 1);
  CHECK(m.optimistic_move_count(OptimisticMoveReason::kWrite) == 1);
}

TEST_CASE("Optimistic: statements pipelined behind the write follow it after the move") {
  Cluster cluster;
  cluster.primary.set_script(SameOnBothNodes);
  cluster.replica.set_script(SameOnBothNodes);
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "BEGIN"));
  REQUIRE(Run(*client, "SELECT v"));
  const size_t before = client->ready_count();
  client->SendQuery("INSERT INTO t VALUES (2)");
  client->SendQuery("SELECT 8");
  client->SendQuery("COMMIT");
  REQUIRE(client->WaitReady(before + 3));
  CHECK(client->ErrorCodes().empty());
  CHECK(client->FirstColumns() == Strings{"42", "primary"});
  CHECK(client->ReadyStatuses() == "TTTTI");
  CHECK(cluster.primary.CountStatement("INSERT INTO t VALUES (2)") == 1);
  CHECK(cluster.primary.CountStatement("COMMIT") == 1);
}

TEST_CASE("Optimistic: a transaction pipelined behind COMMIT is routed on its own") {
  // The second transaction must not ride along on the replica untracked: its
  // INSERT would fail there (a read-only transaction).
  Cluster cluster;
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "BEGIN"));
  REQUIRE(Run(*client, "SELECT 1"));
  const size_t before = client->ready_count();
  for (const char* q : {"COMMIT", "BEGIN", "INSERT INTO t VALUES (3)", "COMMIT"}) {
    client->SendQuery(q);
  }
  REQUIRE(client->WaitReady(before + 4));
  CHECK(client->ErrorCodes().empty());
  CHECK(client->ReadyStatuses() == "TTITTI");
  CHECK(cluster.primary.CountStatement("INSERT INTO t VALUES (3)") == 1);
  CHECK(cluster.replica.CountStatement("INSERT INTO t VALUES (3)") == 0);
}

TEST_CASE("Optimistic: reads that differ on the primary fail the transaction with 40001") {
  Cluster cluster;
  // The statement that fails the primary's transaction after a mismatch.
  cluster.primary.set_script([](BackendConnection&, const Statement& st) {
    if (st.text.find("pgregion: optimistic") != std::string_view::npos) {
      return Reply::Error("22P02", "invalid input syntax for type integer");
    }
    return Reply::Default();
  });
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "BEGIN"));
  REQUIRE(Run(*client, "SELECT 1"));  // "replica" here, "primary" on the replay
  REQUIRE(Run(*client, "UPDATE t SET x = 1"));
  CHECK(client->ErrorCodes() == Strings{"40001"});
  REQUIRE(Run(*client, "SELECT 2"));  // the transaction is failed, as after any error
  CHECK(client->ErrorCodes() == Strings{"40001", "25P02"});
  REQUIRE(Run(*client, "ROLLBACK"));
  CHECK(client->ReadyStatuses() == "TTEEI");
  CHECK(cluster.primary.CountStatement("UPDATE t SET x = 1") == 0);
  CHECK(cluster.replica.CountStatement("UPDATE t SET x = 1") == 0);
  CHECK(cluster.env.metrics().optimistic_count(OptimisticOutcome::kMismatch) == 1);
  // The retry starts on the primary; the one after it is optimistic again.
  client->ClearMessages();
  for (const char* q : {"BEGIN", "SELECT 3", "COMMIT", "BEGIN", "SELECT 4", "COMMIT"}) {
    REQUIRE(Run(*client, q));
  }
  CHECK(client->FirstColumns() == Strings{"primary", "replica"});
}

TEST_CASE("Optimistic: off by SET pgregion.optimistic, by hint, for READ WRITE and SERIALIZABLE") {
  Cluster cluster;
  auto client = cluster.Connect();
  const std::vector<Strings> transactions = {
      {"SET pgregion.optimistic = off", "BEGIN", "SELECT 1", "COMMIT", "RESET pgregion.optimistic"},
      {"BEGIN /* pgregion: optimistic=off */", "SELECT 2", "COMMIT"},
      {"BEGIN READ WRITE", "SELECT 3", "COMMIT"},
      {"BEGIN ISOLATION LEVEL SERIALIZABLE", "SELECT 4", "COMMIT"},
  };
  for (const Strings& t : transactions) {
    for (const std::string& q : t) REQUIRE(Run(*client, q));
  }
  CHECK(client->ErrorCodes().empty());
  CHECK(client->FirstColumns() == Strings{"primary", "primary", "primary", "primary"});
  CHECK(cluster.env.metrics().optimistic_count(OptimisticOutcome::kStarted) == 0);
}

TEST_CASE("Optimistic: past optimistic_max_statements the transaction moves (reason cap)") {
  proxy::Config config = TestConfig();
  config.routing.optimistic_max_statements = 2;
  Cluster cluster(std::move(config));
  cluster.primary.set_script(SameOnBothNodes);
  cluster.replica.set_script(SameOnBothNodes);
  auto client = cluster.Connect();
  for (const char* q : {"BEGIN", "SELECT v", "SELECT v", "SELECT v", "COMMIT"}) {
    REQUIRE(Run(*client, q));
  }
  CHECK(client->ErrorCodes().empty());
  CHECK(client->ReadyStatuses() == "TTTTI");
  CHECK(cluster.replica.CountStatement("SELECT v") == 2);
  CHECK(cluster.primary.CountStatement("SELECT v") == 3);  // two replayed, the third
  CHECK(cluster.env.metrics().optimistic_move_count(OptimisticMoveReason::kCap) == 1);
}

}  // namespace
}  // namespace pgregion::testing
