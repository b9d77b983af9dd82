// ClientSession against a scripted primary and replica: the per-read deadline
// (routing.read_deadline_ms). A read that may still be retried and runs too
// long on a replica is cancelled there and answered by the primary; reads the
// client has seen part of, writes, and the primary's attempt run as long as
// they take.

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "protocol/message_builder.h"
#include "tests/support/session_cluster.h"

namespace pgregion::testing {
namespace {

using proxy::ReadRetryReason;
using Strings = std::vector<std::string>;

constexpr uint32_t kDeadlineMs = 150;

proxy::Config DeadlineConfig(uint32_t deadline_ms = kDeadlineMs) {
  proxy::Config config = TestConfig();
  config.routing.read_deadline_ms = deadline_ms;
  return config;
}

// The replica (and, when `primary_too`, the primary) holds the answer to `text`.
void HoldOn(ScriptedBackend& backend, std::string text) {
  backend.set_script([text = std::move(text)](BackendConnection&, const Statement& st) {
    return st.text == text ? Reply::Hold() : Reply::Default();
  });
}

std::string ExtendedRead(std::string_view text) {
  namespace p = ::pgregion::protocol;
  std::string batch;
  p::MessageWriter(&batch).Begin('P').AddCString("").AddCString(text).AddInt16(0).End();
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
  return batch;
}

TEST_CASE(
    "ClientSession: a read past read_deadline_ms on a replica is cancelled there and "
    "answered by the primary") {
  Cluster cluster(DeadlineConfig());
  HoldOn(cluster.replica, "SELECT slow");
  auto client = cluster.Connect();
  const uint64_t start = uv_now(cluster.loop.get());
  client->SendQuery("SELECT slow");
  REQUIRE(client->WaitReady(1));
  const uint64_t took = uv_now(cluster.loop.get()) - start;
  CHECK(took >= kDeadlineMs);
  CHECK(took < kDeadlineMs + 1000);
  CHECK(client->FirstColumns() == Strings{"primary"});
  CHECK(client->ErrorCodes().empty());
  CHECK(client->Types() == "TDCZ");  // one answer: nothing of the replica's
  CHECK(cluster.primary.CountStatement("SELECT slow") == 1);
  CHECK(cluster.env.metrics().read_retry_count(ReadRetryReason::kDeadline) == 1);

  // The replica's backend got a CancelRequest naming it, and its connection
  // was closed, not pooled.
  BackendConnection* slow = ConnectionThatRan(cluster.replica, "SELECT slow");
  REQUIRE(slow != nullptr);
  CHECK(cluster.env.cancelled == std::vector<std::pair<int, uint32_t>>{{1, slow->pid}});
  REQUIRE(RunUntil(cluster.loop.get(), [&] { return !cluster.replica.cancels().empty(); }));
  CHECK(cluster.replica.CancelledConnection(0) == slow);
  CHECK(RunUntil(cluster.loop.get(), [&] { return slow->closed; }));
  // A deadline is not a node failure: the replica serves the next read.
  CHECK(cluster.env.failures.empty());
  client->ClearMessages();
  REQUIRE(Run(*client, "SELECT 1"));
  CHECK(client->FirstColumns() == Strings{"replica"});
}

TEST_CASE("ClientSession: the read deadline holds across acknowledgements already delivered") {
  Cluster cluster(DeadlineConfig());
  HoldOn(cluster.replica, "SELECT slow");
  auto client = cluster.Connect();
  client->Send(ExtendedRead("SELECT slow"));
  // ParseComplete, BindComplete and RowDescription reach the client first.
  REQUIRE(RunUntil(cluster.loop.get(), [&] { return client->Types() == "12T"; }));
  REQUIRE(client->WaitReady(1));
  CHECK(client->Types() == "12TDCZ");  // the primary's repeats of them were dropped
  CHECK(client->FirstColumns() == Strings{"primary"});
  CHECK(cluster.env.metrics().read_retry_count(ReadRetryReason::kDeadline) == 1);
}

TEST_CASE("ClientSession: the primary's attempt has no deadline") {
  Cluster cluster(DeadlineConfig());
  HoldOn(cluster.replica, "SELECT slow");
  HoldOn(cluster.primary, "SELECT slow");
  auto client = cluster.Connect();
  client->SendQuery("SELECT slow");
  RunFor(cluster.loop.get(), 4 * kDeadlineMs);
  CHECK(client->ready_count() == 0);
  BackendConnection* on_primary = ConnectionThatRan(cluster.primary, "SELECT slow");
  REQUIRE(on_primary != nullptr);
  CHECK_FALSE(on_primary->closed);
  CHECK(cluster.env.cancelled.size() == 1);  // the replica's only
  cluster.primary.ReleaseHeld(on_primary);
  REQUIRE(client->WaitReady(1));
  CHECK(client->FirstColumns() == Strings{"primary"});
  CHECK(cluster.env.metrics().read_retry_count(ReadRetryReason::kDeadline) == 1);
}

TEST_CASE("ClientSession: a read whose first row reached the client is not cut short") {
  Cluster cluster(DeadlineConfig());
  std::string first;
  protocol::AppendRowDescription(&first, {"?column?"});
  protocol::AppendDataRow(&first, {"replica"});
  cluster.replica.set_script([&](BackendConnection&, const Statement& st) {
    return st.text == "SELECT rows" ? Reply::HoldAfter(first, "SELECT 2") : Reply::Default();
  });
  auto client = cluster.Connect();
  client->SendQuery("SELECT rows");
  REQUIRE(RunUntil(cluster.loop.get(), [&] { return !client->FirstColumns().empty(); }));
  RunFor(cluster.loop.get(), 4 * kDeadlineMs);
  CHECK(client->ready_count() == 0);
  CHECK(cluster.env.cancelled.empty());
  CHECK(cluster.primary.CountStatement("SELECT rows") == 0);
  BackendConnection* conn = ConnectionThatRan(cluster.replica, "SELECT rows");
  REQUIRE(conn != nullptr);
  cluster.replica.ReleaseHeld(conn);
  REQUIRE(client->WaitReady(1));
  CHECK(client->Types() == "TDCZ");
  CHECK(client->CommandTags() == Strings{"SELECT 2"});
  CHECK(cluster.env.metrics().read_retry_count(ReadRetryReason::kDeadline) == 0);
}

TEST_CASE("ClientSession: writes and reads with the deadline off run as long as they take") {
  SUBCASE("a write on the primary") {
    Cluster cluster(DeadlineConfig());
    HoldOn(cluster.primary, "INSERT INTO t VALUES (1)");
    auto client = cluster.Connect();
    client->SendQuery("INSERT INTO t VALUES (1)");
    RunFor(cluster.loop.get(), 4 * kDeadlineMs);
    CHECK(client->CommandTags().empty());
    BackendConnection* conn = ConnectionThatRan(cluster.primary, "INSERT INTO t VALUES (1)");
    REQUIRE(conn != nullptr);
    cluster.primary.ReleaseHeld(conn);
    REQUIRE(RunUntil(cluster.loop.get(), [&] { return !client->CommandTags().empty(); }));
    CHECK(client->CommandTags() == Strings{"INSERT 0 1"});
    CHECK(cluster.primary.CountStatement("INSERT INTO t VALUES (1)") == 1);
    CHECK(cluster.env.cancelled.empty());
  }
  SUBCASE("a read with read_deadline_ms = 0") {
    Cluster cluster(DeadlineConfig(0));
    HoldOn(cluster.replica, "SELECT slow");
    auto client = cluster.Connect();
    client->SendQuery("SELECT slow");
    RunFor(cluster.loop.get(), 4 * kDeadlineMs);
    CHECK(client->ready_count() == 0);
    BackendConnection* conn = ConnectionThatRan(cluster.replica, "SELECT slow");
    REQUIRE(conn != nullptr);
    cluster.replica.ReleaseHeld(conn);
    REQUIRE(client->WaitReady(1));
    CHECK(client->FirstColumns() == Strings{"replica"});
    CHECK(cluster.primary.CountStatement("SELECT slow") == 0);
    CHECK(cluster.env.cancelled.empty());
  }
}

TEST_CASE("ClientSession: a read pipelined behind another on the replica has no deadline") {
  // Two units in flight on one server: neither may be retried (the second's
  // replies would follow the first's), so neither is cut short.
  Cluster cluster(DeadlineConfig());
  HoldOn(cluster.replica, "SELECT slow");
  auto client = cluster.Connect();
  REQUIRE(Run(*client, "SELECT 0"));  // the replica's pool has a connection ready
  client->ClearMessages();
  std::string batch;
  protocol::AppendQuery(&batch, "SELECT slow");
  protocol::AppendQuery(&batch, "SELECT 2");
  client->Send(batch);
  RunFor(cluster.loop.get(), 4 * kDeadlineMs);
  CHECK(client->ready_count() == 0);
  CHECK(cluster.env.cancelled.empty());
  BackendConnection* conn = ConnectionThatRan(cluster.replica, "SELECT slow");
  REQUIRE(conn != nullptr);
  cluster.replica.ReleaseHeld(conn);
  REQUIRE(client->WaitReady(2));
  CHECK(client->FirstColumns() == Strings{"replica", "replica"});
}

}  // namespace
}  // namespace pgregion::testing
