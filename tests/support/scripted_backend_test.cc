// The scripted backend itself, driven by the raw TestClient: what the unit
// tests of tests/backend and tests/session rely on it to do.

#include "tests/support/scripted_backend.h"

#include <doctest/doctest.h>

#include <string>

#include "protocol/message_builder.h"
#include "tests/support/test_client.h"

namespace pgregion::testing {
namespace {

namespace p = ::pgregion::protocol;

TEST_CASE("scripted backend: login, defaults for simple queries, transaction status") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {.name = "pg0"});
  TestClient client(loop.get(), backend.port());
  REQUIRE(client.WaitConnected());
  client.SendStartup("alice", "appdb");
  REQUIRE(client.WaitReady(1));
  CHECK(client.Parameter("server_version") == "15.4 (scripted)");
  CHECK(client.Types().find('K') != std::string::npos);
  REQUIRE(backend.connections().size() == 1);
  CHECK(backend.connections()[0]->user == "alice");
  CHECK(backend.connections()[0]->database == "appdb");

  client.ClearMessages();
  // Pipelined: answered in order, each with its ReadyForQuery.
  std::string batch;
  for (const char* q : {"SELECT 1", "BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"}) {
    p::AppendQuery(&batch, q);
  }
  client.Send(batch);
  REQUIRE(client.WaitReady(4));
  CHECK(client.ReadyStatuses() == "ITTI");
  CHECK(client.FirstColumns() == std::vector<std::string>{"pg0"});
  CHECK(client.CommandTags() ==
        std::vector<std::string>{"SELECT 1", "BEGIN", "INSERT 0 1", "COMMIT"});
  CHECK(backend.connections()[0]->Queries().size() == 4);
}

TEST_CASE("scripted backend: script errors abort a transaction; extended protocol") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  backend.set_script([](BackendConnection&, const Statement& st) {
    if (st.text == "SELECT broken") return Reply::Error("42P01", "relation does not exist");
    if (st.text == "SELECT two") return Reply::Rows({"a"}, {{"x"}, {"y"}}, "SELECT 2");
    return Reply::Default();
  });
  TestClient client(loop.get(), backend.port());
  REQUIRE(client.WaitConnected());
  client.SendStartup("u", "d");
  REQUIRE(client.WaitReady(1));
  client.ClearMessages();
  std::string batch;
  p::AppendQuery(&batch, "BEGIN");
  p::AppendQuery(&batch, "SELECT broken");
  p::AppendQuery(&batch, "SELECT 1");
  p::AppendQuery(&batch, "ROLLBACK");
  client.Send(batch);
  REQUIRE(client.WaitReady(4));
  CHECK(client.ReadyStatuses() == "TEEI");
  CHECK(client.ErrorCodes() == std::vector<std::string>{"42P01", "25P02"});

  client.ClearMessages();
  std::string ext;
  p::MessageWriter(&ext).Begin('P').AddCString("s1").AddCString("SELECT two").AddInt16(0).End();
  p::MessageWriter(&ext)
      .Begin('B')
      .AddCString("")
      .AddCString("s1")
      .AddInt16(0)
      .AddInt16(0)
      .AddInt16(0)
      .End();
  p::MessageWriter(&ext).Begin('D').AddByte('P').AddCString("").End();
  p::MessageWriter(&ext).Begin('E').AddCString("").AddInt32(0).End();
  p::AppendSync(&ext);
  client.Send(ext);
  REQUIRE(client.WaitReady(1));
  CHECK(client.Types() == "12TDDCZ");
  CHECK(backend.connections()[0]->CountStatement("SELECT two") == 1);
}

TEST_CASE("scripted backend: a refused login gets the ErrorResponse and is closed") {
  TestLoop loop;
  ScriptedBackend refused(loop.get(), {.auth = ScriptedBackend::Auth::kRefuse,
                                       .refuse_sqlstate = "57P03",
                                       .refuse_message = "the database system is starting up"});
  TestClient client(loop.get(), refused.port());
  REQUIRE(client.WaitConnected());
  client.SendStartup("u", "d");
  REQUIRE(client.WaitClosed());
  CHECK(client.ErrorCodes() == std::vector<std::string>{"57P03"});
}

TEST_CASE("scripted backend: held replies, dropped connections") {
  TestLoop loop;
  ScriptedBackend backend(loop.get(), {});
  backend.set_script([](BackendConnection&, const Statement& st) {
    if (st.text == "SELECT hang") return Reply::Hold();
    if (st.text == "SELECT crash") return Reply::Drop();
    return Reply::Default();
  });
  TestClient client(loop.get(), backend.port());
  REQUIRE(client.WaitConnected());
  client.SendStartup("u", "d");
  REQUIRE(client.WaitReady(1));
  client.SendQuery("SELECT hang");
  CHECK_FALSE(client.WaitReady(2, 50));
  backend.ReleaseHeld(backend.connections()[0].get());
  CHECK(client.WaitReady(2));
  client.SendQuery("SELECT crash");
  CHECK(client.WaitClosed());
  CHECK(backend.connections()[0]->closed);
  CHECK(backend.open_count() == 0);
}

}  // namespace
}  // namespace pgregion::testing
