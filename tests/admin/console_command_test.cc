#include "proxy/admin/console_command.h"

#include <doctest/doctest.h>

#include <string>

#include "protocol/frame_decoder.h"

namespace pgregion::proxy {
namespace {

using Verb = ConsoleCommand::Verb;

TEST_CASE("console: commands") {
  auto show = ParseConsoleCommand("  show   NODES ; ");
  REQUIRE(show.ok());
  CHECK(show->verb == Verb::kShow);
  CHECK(show->argument == "nodes");
  for (std::string_view object : kConsoleShowObjects) {
    auto c = ParseConsoleCommand("SHOW " + std::string(object));
    CHECK(c.ok());
  }
  auto reload = ParseConsoleCommand("Reload;");
  REQUIRE(reload.ok());
  CHECK(reload->verb == Verb::kReload);
  auto pause = ParseConsoleCommand("PAUSE Replica-1");
  REQUIRE(pause.ok());
  CHECK(pause->verb == Verb::kPause);
  CHECK(pause->argument == "Replica-1");  // node names keep their case
  auto resume = ParseConsoleCommand("resume");
  REQUIRE(resume.ok());
  CHECK(resume->verb == Verb::kResume);
  CHECK(resume->argument.empty());
}

TEST_CASE("console: what is not understood is named") {
  for (auto [text, words] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
           {"", "empty"},
           {" ; ", "empty"},
           {"SELECT 1", "unknown command \"SELECT\""},
           {"SHOW", "SHOW takes one word"},
           {"SHOW tables", "unknown SHOW object \"tables\""},
           {"SHOW nodes pools", "SHOW takes one word"},
           {"SHOW nodes; SHOW pools", "one command at a time"},
           {"RELOAD now", "RELOAD takes no argument"},
           {"PAUSE a b", "at most one node"},
       }) {
    CAPTURE(text);
    auto c = ParseConsoleCommand(text);
    REQUIRE_FALSE(c.ok());
    CHECK(std::string(c.status().message()).find(words) != std::string::npos);
  }
}

TEST_CASE("console: a table on the wire") {
  ConsoleTable t;
  t.columns = {"a", "b"};
  t.AddRow({"x", std::nullopt});
  t.AddRow({"", "yz"});
  std::string out;
  AppendConsoleTable(&out, t);
  protocol::MessageDecoder decoder(1 << 20, 1 << 20);
  std::string_view rest = out;
  std::string types;
  std::vector<std::string> bodies;
  while (!rest.empty()) {
    protocol::DecodeResult r = decoder.Next(rest);
    REQUIRE(r.status == protocol::DecodeStatus::kFrame);
    types.push_back(r.frame.type);
    bodies.emplace_back(r.frame.body);
    rest.remove_prefix(r.consumed);
  }
  CHECK(types == "TDDC");
  // DataRow 1: two columns, "x" then NULL (-1).
  CHECK(bodies[1] == std::string("\0\2\0\0\0\1x\xff\xff\xff\xff", 11));
  CHECK(bodies[2] == std::string("\0\2\0\0\0\0\0\0\0\2yz", 12));
  CHECK(bodies[3] == std::string("SHOW\0", 5));
}

TEST_CASE("console: SHOW CONFIG has no secrets") {
  Config c;
  c.admin.enabled = true;
  c.admin.bearer_token = "tok-123";
  c.health.password = "health-pw";
  UserConfig u;
  u.name = "app";
  u.password = "user-pw";
  u.server_user = "app";
  u.server_password = "server-pw";
  c.users.push_back(u);
  c.nodes.push_back({"pg1", "eu", "10.0.0.1", 5432});
  ConsoleTable t = ConfigTable(c);
  std::string all;
  bool saw_token = false;
  for (const auto& row : t.rows) {
    REQUIRE(row.size() == 2);
    all += *row[0] + "=" + *row[1] + "\n";
    if (*row[0] == "admin.bearer_token") saw_token = *row[1] == "(set)";
  }
  CAPTURE(all);
  CHECK(saw_token);
  for (std::string_view secret : {"tok-123", "health-pw", "user-pw", "server-pw"}) {
    CHECK(all.find(secret) == std::string::npos);
  }
  CHECK(all.find("proxy.listen=127.0.0.1:6432\n") != std::string::npos);
  CHECK(all.find("admin.listen=127.0.0.1:9187\n") != std::string::npos);
  CHECK(all.find("nodes.pg1=region=eu host=10.0.0.1 port=5432\n") != std::string::npos);
  CHECK(all.find("users.app=auth=scram-sha-256 server_user=app admin=false\n") !=
        std::string::npos);
}

}  // namespace
}  // namespace pgregion::proxy
