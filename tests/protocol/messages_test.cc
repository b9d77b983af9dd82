#include "protocol/messages.h"

#include <doctest/doctest.h>

#include <deque>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/test_util.h"

namespace pgregion::protocol {
namespace {

using ::pgregion::testing::CStr;
using ::pgregion::testing::Int16;
using ::pgregion::testing::Int32;

// Parsers return views into their input: keeps test bodies alive while results are checked.
class BodyStore {
 public:
  std::string_view operator()(std::string body) { return bodies_.emplace_back(std::move(body)); }

 private:
  std::deque<std::string> bodies_;
};

// Parsers return views; they must point into the body they were given.
bool Within(std::string_view body, std::string_view v) {
  return v.empty() || (v.data() >= body.data() && v.data() + v.size() <= body.data() + body.size());
}

// Each parser behind one signature: the status, after checking every returned view.
struct ParserCase {
  std::string name;
  std::function<absl::Status(std::string_view)> parse;
  std::string valid;
  // Parsers that must consume the body exactly reject every proper prefix of a valid body.
  bool every_prefix_fails = true;
};

absl::Status CheckViews(std::string_view body, std::initializer_list<std::string_view> views) {
  for (std::string_view v : views) {
    if (!Within(body, v)) return absl::InternalError("view outside the body");
  }
  return absl::OkStatus();
}

std::vector<ParserCase> AllParsers() {
  return {
      {"StartupPacket",
       [](std::string_view b) -> absl::Status {
         auto p = ParseStartupPacket(b);
         if (!p.ok()) return p.status();
         for (const auto& [k, v] : p->startup.params) {
           if (!Within(b, k) || !Within(b, v)) return absl::InternalError("view outside");
         }
         return absl::OkStatus();
       },
       Int32(kProtocolV3) + CStr("user") + CStr("u") + CStr("")},
      {"ErrorNotice",
       [](std::string_view b) -> absl::Status {
         auto p = ParseErrorNotice(b);
         if (!p.ok()) return p.status();
         for (const ErrorField& f : p->fields) {
           if (!Within(b, f.value)) return absl::InternalError("view outside");
         }
         return absl::OkStatus();
       },
       "SERROR" + std::string(1, '\0') + "C42601" + std::string(1, '\0') + "Mbad" +
           std::string(2, '\0')},
      {"ParameterStatus",
       [](std::string_view b) -> absl::Status {
         auto p = ParseParameterStatus(b);
         return p.ok() ? CheckViews(b, {p->name, p->value}) : p.status();
       },
       CStr("TimeZone") + CStr("UTC")},
      {"BackendKeyData", [](std::string_view b) { return ParseBackendKeyData(b).status(); },
       Int32(1) + Int32(2)},
      {"ReadyForQuery", [](std::string_view b) { return ParseReadyForQuery(b).status(); }, "I"},
      {"Authentication SASL",
       [](std::string_view b) -> absl::Status {
         auto p = ParseAuthentication(b);
         if (!p.ok()) return p.status();
         for (std::string_view m : p->mechanisms) {
           if (!Within(b, m)) return absl::InternalError("view outside");
         }
         return CheckViews(b, {p->data});
       },
       Int32(10) + CStr("SCRAM-SHA-256") + CStr("")},
      {"Authentication MD5", [](std::string_view b) { return ParseAuthentication(b).status(); },
       Int32(5) + "salt"},
      {"SaslInitialResponse",
       [](std::string_view b) -> absl::Status {
         auto p = ParseSaslInitialResponse(b);
         return p.ok() ? CheckViews(b, {p->mechanism, p->data}) : p.status();
       },
       CStr("SCRAM-SHA-256") + Int32(5) + "n,,xy"},
      {"PasswordMessage",
       [](std::string_view b) -> absl::Status {
         auto p = ParsePasswordMessage(b);
         return p.ok() ? CheckViews(b, {*p}) : p.status();
       },
       CStr("secret")},
      {"Query",
       [](std::string_view b) -> absl::Status {
         auto p = ParseQuery(b);
         return p.ok() ? CheckViews(b, {p->text}) : p.status();
       },
       CStr("SELECT 1")},
      {"Parse",
       [](std::string_view b) -> absl::Status {
         auto p = ParseParse(b);
         return p.ok() ? CheckViews(b, {p->name, p->query}) : p.status();
       },
       CStr("s1") + CStr("SELECT $1") + Int16(1) + Int32(23)},
      {"Bind",
       [](std::string_view b) -> absl::Status {
         auto p = ParseBind(b);
         return p.ok() ? CheckViews(b, {p->portal, p->statement, p->rest}) : p.status();
       },
       CStr("p") + CStr("s1") + Int16(0) + Int16(0) + Int16(0), false},
      {"CloseDescribe",
       [](std::string_view b) -> absl::Status {
         auto p = ParseCloseDescribe(b);
         return p.ok() ? CheckViews(b, {p->name}) : p.status();
       },
       "S" + CStr("s1")},
      {"Execute",
       [](std::string_view b) -> absl::Status {
         auto p = ParseExecute(b);
         return p.ok() ? CheckViews(b, {p->portal}) : p.status();
       },
       CStr("") + Int32(0)},
      {"CommandComplete",
       [](std::string_view b) -> absl::Status {
         auto p = ParseCommandComplete(b);
         return p.ok() ? CheckViews(b, {*p}) : p.status();
       },
       CStr("SELECT 1")},
      {"DataRow",
       [](std::string_view b) -> absl::Status {
         auto p = ParseDataRow(b);
         if (!p.ok()) return p.status();
         for (const DataRowColumn& c : *p) {
           if (!Within(b, c.value)) return absl::InternalError("view outside");
         }
         return absl::OkStatus();
       },
       Int16(3) + Int32(1) + "1" + Int32(0xFFFFFFFF) + Int32(0)},
      {"FunctionCallResponse",
       [](std::string_view b) -> absl::Status {
         auto p = ParseFunctionCallResponse(b);
         return p.ok() ? CheckViews(b, {p->value}) : p.status();
       },
       Int32(9) + "0/3000060"},
      {"NotificationResponse",
       [](std::string_view b) -> absl::Status {
         auto p = ParseNotificationResponse(b);
         return p.ok() ? CheckViews(b, {p->channel, p->payload}) : p.status();
       },
       Int32(42) + CStr("chan") + CStr("hello")},
  };
}

TEST_CASE("parsers: valid bodies parse, every truncation is rejected") {
  for (const ParserCase& pc : AllParsers()) {
    CAPTURE(pc.name);
    CHECK(pc.parse(pc.valid).ok());
    if (!pc.every_prefix_fails) continue;
    for (size_t n = 0; n < pc.valid.size(); ++n) {
      // A heap copy of exactly n bytes, so ASan catches any read past the end.
      const std::string prefix = pc.valid.substr(0, n);
      const absl::Status s = pc.parse(prefix);
      CHECK_MESSAGE(absl::IsInvalidArgument(s), "prefix of " << n << " bytes: " << s.ToString());
    }
  }
}

TEST_CASE("parsers: random bytes and mutations are rejected cleanly or parsed in bounds") {
  std::mt19937 rng(7);
  auto rand = [&](uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n)(rng); };
  for (const ParserCase& pc : AllParsers()) {
    CAPTURE(pc.name);
    for (int i = 0; i < 2000; ++i) {
      std::string body;
      if (rand(1) == 0) {
        body.resize(rand(48));
        for (char& c : body) c = static_cast<char>(rand(255));
      } else {
        body = pc.valid;
        for (uint32_t k = rand(3); k > 0; --k) {
          body[rand(static_cast<uint32_t>(body.size() - 1))] = static_cast<char>(rand(255));
        }
        body.resize(rand(static_cast<uint32_t>(body.size())));
      }
      const absl::Status s = pc.parse(body);
      // Malformed input is InvalidArgument; InternalError would mean a view escaped.
      if (!s.ok() && !absl::IsInvalidArgument(s)) {
        FAIL_CHECK("unexpected status " << s.ToString());
        break;
      }
    }
  }
}

TEST_CASE("ParseStartupPacket: table") {
  struct Case {
    std::string name;
    std::string body;
    bool ok;
  };
  const std::string user = CStr("user") + CStr("alice");
  const std::vector<Case> cases = {
      {"no parameters", Int32(kProtocolV3) + CStr(""), true},
      {"empty value", Int32(kProtocolV3) + CStr("user") + CStr("") + CStr(""), true},
      {"empty body", "", false},
      {"three bytes", std::string(3, '\0'), false},
      {"code only", Int32(kProtocolV3), false},
      {"missing terminator", Int32(kProtocolV3) + user, false},
      {"name without value", Int32(kProtocolV3) + user + CStr("database"), false},
      {"name without NUL", Int32(kProtocolV3) + user + "database", false},
      {"duplicate parameter", Int32(kProtocolV3) + user + user + CStr(""), false},
      {"bytes after the terminator", Int32(kProtocolV3) + user + CStr("") + "x", false},
      {"protocol 1.0", Int32(1 << 16) + user + CStr(""), false},
      {"protocol 2.0", Int32(2 << 16) + user + CStr(""), false},
      {"protocol 4.0", Int32(4 << 16) + user + CStr(""), false},
      {"protocol 1234.5679 (not a request code)", Int32(80877105) + user + CStr(""), false},
      {"SSLRequest with extra bytes", Int32(kSslRequestCode) + "x", false},
      {"GSSENCRequest with extra bytes", Int32(kGssEncRequestCode) + Int32(0), false},
      {"CancelRequest without secret", Int32(kCancelRequestCode) + Int32(1), false},
      {"CancelRequest with a long key", Int32(kCancelRequestCode) + Int32(1) + Int32(2) + "ab",
       false},
  };
  for (const Case& tc : cases) {
    CAPTURE(tc.name);
    const absl::StatusOr<StartupPacket> p = ParseStartupPacket(tc.body);
    CHECK(p.ok() == tc.ok);
    if (!p.ok()) CHECK(absl::IsInvalidArgument(p.status()));
  }
}

TEST_CASE("ParseStartupPacket: parameters in order, any 3.x minor") {
  const std::string body = Int32(kProtocolV3 | 9999) + CStr("user") + CStr("alice") +
                           CStr("database") + CStr("app") + CStr("_pq_.protocol_managed") +
                           CStr("x") + CStr("application_name") + CStr("") + CStr("");
  const absl::StatusOr<StartupPacket> p = ParseStartupPacket(body);
  REQUIRE(p.ok());
  CHECK(p->kind == StartupPacketKind::kStartup);
  CHECK(p->startup.major == 3);
  CHECK(p->startup.minor == 9999);
  using KV = std::pair<std::string_view, std::string_view>;
  const std::vector<KV> want = {{"user", "alice"},
                                {"database", "app"},
                                {"_pq_.protocol_managed", "x"},
                                {"application_name", ""}};
  CHECK(p->startup.params == want);
}

TEST_CASE("ParseErrorNotice") {
  BodyStore keep;
  const std::string body = "SFATAL" + std::string(1, '\0') + "VFATAL" + std::string(1, '\0') +
                           "C28P01" + std::string(1, '\0') + "Mpassword authentication failed" +
                           std::string(1, '\0') + "Rauth_failed" + std::string(2, '\0');
  const absl::StatusOr<ErrorNotice> e = ParseErrorNotice(body);
  REQUIRE(e.ok());
  CHECK(e->fields.size() == 5);
  CHECK(e->severity() == "FATAL");
  CHECK(e->sqlstate() == "28P01");
  CHECK(e->message() == "password authentication failed");
  CHECK(e->Get('R') == "auth_failed");
  CHECK(e->Get('D').empty());

  // Localized S without V: severity falls back to S.
  const absl::StatusOr<ErrorNotice> localized =
      ParseErrorNotice(keep("SFEHLER" + std::string(2, '\0')));
  REQUIRE(localized.ok());
  CHECK(localized->severity() == "FEHLER");

  CHECK(ParseErrorNotice(keep(std::string(1, '\0'))).ok());
  CHECK_FALSE(ParseErrorNotice(keep("")).ok());
  CHECK_FALSE(ParseErrorNotice(keep("Mno terminator")).ok());
  CHECK_FALSE(ParseErrorNotice(keep("Mx" + std::string(1, '\0'))).ok());
  CHECK_FALSE(ParseErrorNotice(keep(std::string(1, '\0') + "x")).ok());
}

TEST_CASE("ParseReadyForQuery") {
  BodyStore keep;
  CHECK(*ParseReadyForQuery(keep("I")) == 'I');
  CHECK(*ParseReadyForQuery(keep("T")) == 'T');
  CHECK(*ParseReadyForQuery(keep("E")) == 'E');
  CHECK_FALSE(ParseReadyForQuery(keep("")).ok());
  CHECK_FALSE(ParseReadyForQuery(keep("X")).ok());
  CHECK_FALSE(ParseReadyForQuery(keep("II")).ok());
}

TEST_CASE("ParseAuthentication") {
  BodyStore keep;
  auto ok = ParseAuthentication(keep(Int32(0)));
  REQUIRE(ok.ok());
  CHECK(ok->code == 0);
  CHECK(ok->data.empty());

  auto md5 = ParseAuthentication(keep(Int32(5) + "\x01\x02\x03\x04"));
  REQUIRE(md5.ok());
  CHECK(md5->data == "\x01\x02\x03\x04");
  CHECK_FALSE(ParseAuthentication(keep(Int32(5) + "abc")).ok());
  CHECK_FALSE(ParseAuthentication(keep(Int32(5) + "abcde")).ok());

  auto sasl = ParseAuthentication(
      keep(Int32(10) + CStr("SCRAM-SHA-256-PLUS") + CStr("SCRAM-SHA-256") + CStr("")));
  REQUIRE(sasl.ok());
  CHECK(sasl->mechanisms == std::vector<std::string_view>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
  CHECK_FALSE(ParseAuthentication(keep(Int32(10) + CStr("SCRAM-SHA-256"))).ok());
  CHECK_FALSE(ParseAuthentication(keep(Int32(10) + "SCRAM")).ok());
  CHECK_FALSE(ParseAuthentication(keep(Int32(10) + CStr("") + "x")).ok());

  auto cont = ParseAuthentication(keep(Int32(11) + "r=abc,s=salt,i=4096"));
  REQUIRE(cont.ok());
  CHECK(cont->code == 11);
  CHECK(cont->data == "r=abc,s=salt,i=4096");
  auto fin = ParseAuthentication(keep(Int32(12) + "v=sig"));
  REQUIRE(fin.ok());
  CHECK(fin->data == "v=sig");
  // Codes we do not speak (GSS, SSPI) still parse; the proxy decides what to do with them.
  auto gss = ParseAuthentication(keep(Int32(7)));
  REQUIRE(gss.ok());
  CHECK(gss->code == 7);
  CHECK_FALSE(ParseAuthentication(keep("abc")).ok());
}

TEST_CASE("ParseSaslInitialResponse") {
  BodyStore keep;
  auto r = ParseSaslInitialResponse(keep(CStr("SCRAM-SHA-256") + Int32(3) + "abc"));
  REQUIRE(r.ok());
  CHECK(r->mechanism == "SCRAM-SHA-256");
  CHECK(r->data == "abc");
  auto none = ParseSaslInitialResponse(keep(CStr("SCRAM-SHA-256") + Int32(0xFFFFFFFF)));
  REQUIRE(none.ok());
  CHECK(none->data.empty());
  CHECK_FALSE(ParseSaslInitialResponse(keep(CStr("M") + Int32(4) + "abc")).ok());
  CHECK_FALSE(ParseSaslInitialResponse(keep(CStr("M") + Int32(2) + "abc")).ok());
  CHECK_FALSE(ParseSaslInitialResponse(keep(CStr("M") + Int32(0xFFFFFFFE))).ok());
  CHECK_FALSE(ParseSaslInitialResponse(keep(CStr("M") + Int32(0x80000000) + "abc")).ok());
}

TEST_CASE("extended-protocol parsers") {
  BodyStore keep;
  auto parse =
      ParseParse(keep(CStr("stmt") + CStr("SELECT $1, $2") + Int16(2) + Int32(23) + Int32(25)));
  REQUIRE(parse.ok());
  CHECK(parse->name == "stmt");
  CHECK(parse->query == "SELECT $1, $2");
  CHECK(parse->param_types == std::vector<uint32_t>{23, 25});
  CHECK_FALSE(ParseParse(keep(CStr("") + CStr("q") + Int16(2) + Int32(23))).ok());
  CHECK_FALSE(ParseParse(keep(CStr("") + CStr("q") + Int16(0xFFFF))).ok());
  CHECK_FALSE(ParseParse(keep(CStr("") + CStr("q") + Int16(0) + "x")).ok());

  const std::string rest = Int16(1) + Int16(0) + Int16(1) + Int32(2) + "42" + Int16(0);
  auto bind = ParseBind(keep(CStr("portal") + CStr("stmt") + rest));
  REQUIRE(bind.ok());
  CHECK(bind->portal == "portal");
  CHECK(bind->statement == "stmt");
  CHECK(bind->rest == rest);
  CHECK(ParseBind(keep(CStr("") + CStr(""))).ok());
  CHECK_FALSE(ParseBind(keep(CStr("portal"))).ok());

  // Parameter values out of a Bind's rest: formats, NULLs, bounds.
  auto param = ParseBindParameter(rest, 0);
  REQUIRE(param.ok());
  CHECK(param->value == "42");
  CHECK(param->format == 0);
  const std::string two =
      Int16(1) + Int16(1) + Int16(2) + Int32(0xFFFFFFFFu) + Int32(3) + "abc" + Int16(0);
  param = ParseBindParameter(two, 0);
  REQUIRE(param.ok());
  CHECK_FALSE(param->value.has_value());  // NULL
  CHECK(param->format == 1);              // one code for all
  param = ParseBindParameter(two, 1);
  REQUIRE(param.ok());
  CHECK(param->value == "abc");
  CHECK_FALSE(ParseBindParameter(two, 2).ok());                                    // no such one
  CHECK_FALSE(ParseBindParameter(Int16(0) + Int16(1) + Int32(9) + "ab", 0).ok());  // short
  CHECK_FALSE(ParseBindParameter(Int16(2) + Int16(0) + Int16(1) + Int16(1) + Int32(0), 0)
                  .ok());  // 2 format codes for 1 parameter
  CHECK_FALSE(ParseBindParameter("", 0).ok());
  CHECK_FALSE(ParseBind(keep("portal")).ok());

  auto close = ParseCloseDescribe(keep("P" + CStr("c1")));
  REQUIRE(close.ok());
  CHECK(close->target == 'P');
  CHECK(close->name == "c1");
  CHECK_FALSE(ParseCloseDescribe(keep("X" + CStr("c1"))).ok());
  CHECK_FALSE(ParseCloseDescribe(keep("S")).ok());

  auto exec = ParseExecute(keep(CStr("") + Int32(100)));
  REQUIRE(exec.ok());
  CHECK(exec->portal.empty());
  CHECK(exec->max_rows == 100);

  auto query = ParseQuery(keep(CStr("SELECT 1; SELECT 2")));
  REQUIRE(query.ok());
  CHECK(query->text == "SELECT 1; SELECT 2");
  CHECK_FALSE(ParseQuery(keep("SELECT 1")).ok());
  CHECK_FALSE(ParseQuery(keep(CStr("SELECT 1") + "x")).ok());
}

TEST_CASE("backend result parsers") {
  BodyStore keep;
  auto tag = ParseCommandComplete(keep(CStr("INSERT 0 1")));
  REQUIRE(tag.ok());
  CHECK(*tag == "INSERT 0 1");

  auto row = ParseDataRow(keep(Int16(3) + Int32(2) + "ab" + Int32(0xFFFFFFFF) + Int32(0)));
  REQUIRE(row.ok());
  REQUIRE(row->size() == 3);
  CHECK((*row)[0].value == "ab");
  CHECK_FALSE((*row)[0].is_null);
  CHECK((*row)[1].is_null);
  CHECK((*row)[2].value.empty());
  CHECK_FALSE((*row)[2].is_null);
  CHECK(ParseDataRow(keep(Int16(0))).ok());
  CHECK_FALSE(ParseDataRow(keep(Int16(1) + Int32(3) + "ab")).ok());
  CHECK_FALSE(ParseDataRow(keep(Int16(2) + Int32(2) + "ab")).ok());
  CHECK_FALSE(ParseDataRow(keep(Int16(1) + Int32(0xFFFFFFFE))).ok());
  CHECK_FALSE(ParseDataRow(keep(Int16(1) + Int32(0x7FFFFFFF) + "ab")).ok());
  CHECK_FALSE(ParseDataRow(keep(Int16(0xFFFF))).ok());
  CHECK_FALSE(ParseDataRow(keep(Int16(1) + Int32(1) + "ab")).ok());

  auto fn = ParseFunctionCallResponse(keep(Int32(9) + "0/3000060"));
  REQUIRE(fn.ok());
  CHECK(fn->value == "0/3000060");
  auto fn_null = ParseFunctionCallResponse(keep(Int32(0xFFFFFFFF)));
  REQUIRE(fn_null.ok());
  CHECK(fn_null->is_null);

  auto notify = ParseNotificationResponse(keep(Int32(42) + CStr("chan") + CStr("")));
  REQUIRE(notify.ok());
  CHECK(notify->pid == 42);
  CHECK(notify->channel == "chan");
  CHECK(notify->payload.empty());

  auto key = ParseBackendKeyData(keep(Int32(0xDEADBEEF) + Int32(0x01020304)));
  REQUIRE(key.ok());
  CHECK(key->pid == 0xDEADBEEF);
  CHECK(key->secret == 0x01020304);
  CHECK_FALSE(ParseBackendKeyData(keep(Int32(1) + Int32(2) + Int32(3))).ok());

  auto ps = ParseParameterStatus(keep(CStr("server_version") + CStr("15.6")));
  REQUIRE(ps.ok());
  CHECK(ps->name == "server_version");
  CHECK(ps->value == "15.6");
}

}  // namespace
}  // namespace pgregion::protocol
