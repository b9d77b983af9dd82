#include "protocol/message_builder.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "protocol/frame_decoder.h"
#include "protocol/messages.h"
#include "tests/test_util.h"

namespace pgregion::protocol {
namespace {

using ::pgregion::testing::CStr;
using ::pgregion::testing::Int16;
using ::pgregion::testing::Int32;
using ::pgregion::testing::MakeMsg;

// Decodes `bytes` as exactly one tagged message of type `type`; returns its body.
std::string_view OneFrame(std::string_view bytes, char type) {
  MessageDecoder dec(1 << 20, 0xFFFFFFFF);
  const DecodeResult r = dec.Next(bytes);
  REQUIRE(r.status == DecodeStatus::kFrame);
  CHECK(r.frame.type == type);
  CHECK(r.consumed == bytes.size());
  return r.frame.body;
}

// Decodes `bytes` as exactly one startup packet; returns its parse.
StartupPacket OneStartupPacket(std::string_view bytes) {
  const StartupDecodeResult r = DecodeStartupPacket(bytes);
  REQUIRE(r.kind == StartupKind::kPacket);
  CHECK(r.consumed == bytes.size());
  absl::StatusOr<StartupPacket> p = ParseStartupPacket(r.frame.body);
  REQUIRE(p.ok());
  return *p;
}

TEST_CASE("MessageWriter patches the length, tagged and untagged") {
  std::string out = "prefix";
  MessageWriter w(&out);
  w.Begin('X').AddByte('a').AddInt16(0x0102).AddInt32(0x03040506).AddBytes("bc").AddCString("d");
  w.End();
  CHECK(out == "prefix" + MakeMsg('X',
                                  "a\x01\x02\x03\x04\x05\x06"
                                  "bcd" +
                                      std::string(1, '\0')));

  std::string untagged;
  MessageWriter(&untagged).Begin(0).AddInt32(7).End();
  CHECK(untagged == Int32(8) + Int32(7));

  // Two messages through one writer: each End() patches its own length.
  std::string two;
  MessageWriter w2(&two);
  w2.Begin('S').End();
  w2.Begin('Q').AddCString("x").End();
  CHECK(two == MakeMsg('S', "") + MakeMsg('Q', CStr("x")));
}

TEST_CASE("exact bytes of fixed messages") {
  struct Case {
    std::string name;
    std::string built;
    std::string want;
  };
  auto build = [](auto fn) {
    std::string s;
    fn(&s);
    return s;
  };
  const std::vector<Case> cases = {
      {"Sync", build([](std::string* o) { AppendSync(o); }), std::string("S\0\0\0\4", 5)},
      {"Terminate", build([](std::string* o) { AppendTerminate(o); }), std::string("X\0\0\0\4", 5)},
      {"EmptyQueryResponse", build([](std::string* o) { AppendEmptyQueryResponse(o); }),
       std::string("I\0\0\0\4", 5)},
      {"ReadyForQuery", build([](std::string* o) { AppendReadyForQuery(o, 'T'); }),
       std::string("Z\0\0\0\5T", 6)},
      {"SSLRequest", build([](std::string* o) { AppendSslRequest(o); }),
       Int32(8) + Int32(80877103)},
      {"CancelRequest", build([](std::string* o) { AppendCancelRequest(o, 0x01020304, 99); }),
       Int32(16) + Int32(80877102) + Int32(0x01020304) + Int32(99)},
      {"FunctionCall", build([](std::string* o) { AppendFunctionCall(o, 3183); }),
       MakeMsg('F', Int32(3183) + Int16(0) + Int16(0) + Int16(0))},
      {"AuthenticationOk", build([](std::string* o) { AppendAuthenticationOk(o); }),
       MakeMsg('R', Int32(0))},
      {"AuthenticationCleartextPassword",
       build([](std::string* o) { AppendAuthenticationCleartextPassword(o); }),
       MakeMsg('R', Int32(3))},
      {"NegotiateProtocolVersion", build([](std::string* o) {
         AppendNegotiateProtocolVersion(o, 0, {"_pq_.a", "_pq_.b"});
       }),
       MakeMsg('v', Int32(0) + Int32(2) + CStr("_pq_.a") + CStr("_pq_.b"))},
      {"NegotiateProtocolVersion without options",
       build([](std::string* o) { AppendNegotiateProtocolVersion(o, 2, {}); }),
       MakeMsg('v', Int32(2) + Int32(0))},
      {"RowDescription", build([](std::string* o) {
         AppendRowDescription(o, {"a", "bc"});
       }),
       MakeMsg('T', Int16(2) + CStr("a") + Int32(0) + Int16(0) + Int32(25) + Int16(0xFFFF) +
                        Int32(0xFFFFFFFF) + Int16(0) + CStr("bc") + Int32(0) + Int16(0) +
                        Int32(25) + Int16(0xFFFF) + Int32(0xFFFFFFFF) + Int16(0))},
      {"StartupMessage", build([](std::string* o) {
         AppendStartupMessage(o, {{"user", "u"}, {"database", "d"}});
       }),
       MakeMsg(0,
               Int32(196608) + CStr("user") + CStr("u") + CStr("database") + CStr("d") + CStr(""))},
      {"ErrorResponse without detail and hint", build([](std::string* o) {
         AppendErrorResponse(o, {"FATAL", "08P01", "bad", "", ""});
       }),
       MakeMsg('E', "SFATAL" + std::string(1, '\0') + "VFATAL" + std::string(1, '\0') + "C08P01" +
                        std::string(1, '\0') + "Mbad" + std::string(2, '\0'))},
  };
  for (const Case& tc : cases) {
    CAPTURE(tc.name);
    CHECK(tc.built == tc.want);
  }
}

TEST_CASE("ErrorResponse and NoticeResponse round trip") {
  std::string out;
  AppendErrorResponse(&out, {.severity = "ERROR",
                             .sqlstate = "22023",
                             .message = "invalid token",
                             .detail = "token is from another cluster",
                             .hint = "drop the token"});
  auto e = ParseErrorNotice(OneFrame(out, 'E'));
  REQUIRE(e.ok());
  CHECK(e->Get('S') == "ERROR");
  CHECK(e->Get('V') == "ERROR");
  CHECK(e->sqlstate() == "22023");
  CHECK(e->message() == "invalid token");
  CHECK(e->Get('D') == "token is from another cluster");
  CHECK(e->Get('H') == "drop the token");

  out.clear();
  AppendNoticeResponse(&out, {.severity = "WARNING", .sqlstate = "01000", .message = "careful"});
  auto n = ParseErrorNotice(OneFrame(out, 'N'));
  REQUIRE(n.ok());
  CHECK(n->severity() == "WARNING");
  CHECK(n->fields.size() == 4);
}

TEST_CASE("authentication messages round trip") {
  std::string out;
  AppendAuthenticationMd5Password(&out, "salt");
  auto md5 = ParseAuthentication(OneFrame(out, 'R'));
  REQUIRE(md5.ok());
  CHECK(md5->code == 5);
  CHECK(md5->data == "salt");

  out.clear();
  AppendAuthenticationSasl(&out, {"SCRAM-SHA-256"});
  auto sasl = ParseAuthentication(OneFrame(out, 'R'));
  REQUIRE(sasl.ok());
  CHECK(sasl->code == 10);
  CHECK(sasl->mechanisms == std::vector<std::string_view>{"SCRAM-SHA-256"});

  out.clear();
  AppendAuthenticationSaslContinue(&out, "r=nonce,s=c2FsdA==,i=4096");
  auto cont = ParseAuthentication(OneFrame(out, 'R'));
  REQUIRE(cont.ok());
  CHECK(cont->code == 11);
  CHECK(cont->data == "r=nonce,s=c2FsdA==,i=4096");

  out.clear();
  AppendAuthenticationSaslFinal(&out, "v=c2ln");
  auto fin = ParseAuthentication(OneFrame(out, 'R'));
  REQUIRE(fin.ok());
  CHECK(fin->code == 12);
  CHECK(fin->data == "v=c2ln");

  out.clear();
  AppendSaslInitialResponse(&out, "SCRAM-SHA-256", "n,,n=,r=abc");
  auto init = ParseSaslInitialResponse(OneFrame(out, 'p'));
  REQUIRE(init.ok());
  CHECK(init->mechanism == "SCRAM-SHA-256");
  CHECK(init->data == "n,,n=,r=abc");

  out.clear();
  AppendSaslResponse(&out, "c=biws,r=abc,p=proof");
  CHECK(OneFrame(out, 'p') == "c=biws,r=abc,p=proof");

  out.clear();
  AppendPasswordMessage(&out, "md5abc");
  auto pw = ParsePasswordMessage(OneFrame(out, 'p'));
  REQUIRE(pw.ok());
  CHECK(*pw == "md5abc");
}

TEST_CASE("session messages round trip") {
  std::string out;
  AppendParameterStatus(&out, "pgregion.ryw_token", "r1.7312.1.0/3000060");
  auto ps = ParseParameterStatus(OneFrame(out, 'S'));
  REQUIRE(ps.ok());
  CHECK(ps->name == "pgregion.ryw_token");
  CHECK(ps->value == "r1.7312.1.0/3000060");

  out.clear();
  AppendBackendKeyData(&out, 0xFFFFFFFF, 7);
  auto key = ParseBackendKeyData(OneFrame(out, 'K'));
  REQUIRE(key.ok());
  CHECK(key->pid == 0xFFFFFFFF);
  CHECK(key->secret == 7);

  out.clear();
  AppendReadyForQuery(&out, 'E');
  CHECK(*ParseReadyForQuery(OneFrame(out, 'Z')) == 'E');

  out.clear();
  AppendCommandComplete(&out, "SHOW");
  CHECK(*ParseCommandComplete(OneFrame(out, 'C')) == "SHOW");

  out.clear();
  AppendQuery(&out, "SELECT 'it''s'");
  CHECK(ParseQuery(OneFrame(out, 'Q'))->text == "SELECT 'it''s'");

  out.clear();
  AppendDataRow(&out, {"a", "", "long value"});
  auto row = ParseDataRow(OneFrame(out, 'D'));
  REQUIRE(row.ok());
  REQUIRE(row->size() == 3);
  CHECK((*row)[0].value == "a");
  CHECK((*row)[1].value.empty());
  CHECK_FALSE((*row)[1].is_null);
  CHECK((*row)[2].value == "long value");

  out.clear();
  AppendDataRowNullable(&out, {{true, "ignored"}, {false, "x"}});
  auto nullable = ParseDataRow(OneFrame(out, 'D'));
  REQUIRE(nullable.ok());
  REQUIRE(nullable->size() == 2);
  CHECK((*nullable)[0].is_null);
  CHECK((*nullable)[0].value.empty());
  CHECK((*nullable)[1].value == "x");
}

TEST_CASE("startup-phase packets round trip") {
  std::string out;
  AppendStartupMessage(&out, {{"user", "alice"}, {"database", "app"}, {"application_name", ""}});
  const StartupPacket p = OneStartupPacket(out);
  CHECK(p.kind == StartupPacketKind::kStartup);
  CHECK(p.startup.major == 3);
  CHECK(p.startup.minor == 0);
  REQUIRE(p.startup.params.size() == 3);
  CHECK(p.startup.params[1].first == "database");
  CHECK(p.startup.params[1].second == "app");
  CHECK(p.startup.params[2].second.empty());

  out.clear();
  AppendSslRequest(&out);
  CHECK(OneStartupPacket(out).kind == StartupPacketKind::kSslRequest);

  out.clear();
  AppendCancelRequest(&out, 4321, 0xCAFEBABE);
  const StartupPacket c = OneStartupPacket(out);
  CHECK(c.kind == StartupPacketKind::kCancel);
  CHECK(c.cancel.pid == 4321);
  CHECK(c.cancel.secret == 0xCAFEBABE);
}

TEST_CASE("builders append: a burst becomes one buffer") {
  std::string out;
  AppendParameterStatus(&out, "a", "1");
  AppendReadyForQuery(&out, 'I');
  MessageDecoder dec(1024, 0xFFFFFFFF);
  const DecodeResult first = dec.Next(out);
  REQUIRE(first.status == DecodeStatus::kFrame);
  CHECK(first.frame.type == 'S');
  const DecodeResult second = dec.Next(std::string_view(out).substr(first.consumed));
  REQUIRE(second.status == DecodeStatus::kFrame);
  CHECK(second.frame.type == 'Z');
  CHECK(first.consumed + second.consumed == out.size());
}

TEST_CASE("QuoteLiteral and QuoteIdentifier") {
  struct Case {
    std::string_view in;
    std::string_view literal;
    std::string_view identifier;
  };
  const std::vector<Case> cases = {
      {"", "''", "\"\""},
      {"plain", "'plain'", "\"plain\""},
      {"it's", "'it''s'", "\"it's\""},
      {"''", "''''''", "\"''\""},
      {"Weird \"Name\"", "'Weird \"Name\"'", "\"Weird \"\"Name\"\"\""},
      {"back\\slash", "'back\\slash'", "\"back\\slash\""},
      {"Europe/Berlin", "'Europe/Berlin'", "\"Europe/Berlin\""},
  };
  for (const Case& tc : cases) {
    CAPTURE(tc.in);
    CHECK(QuoteLiteral(tc.in) == tc.literal);
    CHECK(QuoteIdentifier(tc.in) == tc.identifier);
  }
}

}  // namespace
}  // namespace pgregion::protocol
