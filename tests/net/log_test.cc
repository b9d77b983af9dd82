#include "proxy/net/log.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace pgregion::proxy {
namespace {

// 2026-11-21T23:58:05.123Z
constexpr int64_t kTs = 1795305485123;

std::string Line(bool json, std::string_view event) {
  std::string out;
  log_internal::AppendHeader(&out, json, kTs, LogLevel::kInfo, event);
  return out;
}

std::string LogfmtValue(std::string_view value) {
  std::string out;
  log_internal::AppendString(&out, false, "k", value);
  return out;
}

std::string JsonValue(std::string_view value) {
  std::string out;
  log_internal::AppendString(&out, true, "k", value);
  return out;
}

// Sets the sink, level and format for one test; restores the defaults after.
class CaptureLog {
 public:
  explicit CaptureLog(bool json = false, LogLevel level = LogLevel::kDebug) {
    SetLogSinkForTest(&out_);
    SetLogJson(json);
    SetLogLevel(level);
  }
  ~CaptureLog() {
    SetLogSinkForTest(nullptr);
    SetLogJson(false);
    SetLogLevel(LogLevel::kInfo);
  }
  const std::string& out() const { return out_; }

 private:
  std::string out_;
};

TEST_CASE("log: logfmt line") {
  std::string line = Line(false, "client_connected");
  log_internal::AppendString(&line, false, "user", "app");
  log_internal::AppendString(&line, false, "note", "quoted value");
  log_internal::AppendNumber(&line, false, "n", "42");
  log_internal::AppendEnd(&line, false);
  CHECK(line ==
        "ts=2026-11-21T23:58:05.123Z level=info event=client_connected user=app "
        "note=\"quoted value\" n=42\n");
}

TEST_CASE("log: logfmt quoting and escaping") {
  CHECK(LogfmtValue("plain") == " k=plain");
  CHECK(LogfmtValue("") == " k=\"\"");
  CHECK(LogfmtValue("a b") == " k=\"a b\"");
  CHECK(LogfmtValue("a=b") == " k=\"a=b\"");
  CHECK(LogfmtValue("say \"hi\"") == " k=\"say \\\"hi\\\"\"");
  CHECK(LogfmtValue("back\\slash") == " k=\"back\\\\slash\"");
  CHECK(LogfmtValue("two\nlines") == " k=\"two\\nlines\"");
  CHECK(LogfmtValue("tab\there") == " k=\"tab\\there\"");
  CHECK(LogfmtValue(std::string("nul\0x", 5)) == " k=\"nul\\u0000x\"");
  CHECK(LogfmtValue("10.0.0.1:5432") == " k=10.0.0.1:5432");
  CHECK(LogfmtValue("h\xc3\xa9") == " k=h\xc3\xa9");  // UTF-8 passes through
}

TEST_CASE("log: logfmt keys cannot break the line") {
  std::string out;
  log_internal::AppendString(&out, false, "bad key=x", "v");
  CHECK(out == " bad_key_x=v");
}

TEST_CASE("log: JSON line") {
  std::string line = Line(true, "pool_exhausted");
  log_internal::AppendString(&line, true, "node", "eu1");
  log_internal::AppendNumber(&line, true, "waiting", "17");
  log_internal::AppendString(&line, true, "msg", "a \"b\"\\\n");
  log_internal::AppendEnd(&line, true);
  CHECK(line ==
        "{\"ts\":\"2026-11-21T23:58:05.123Z\",\"level\":\"info\",\"event\":\"pool_exhausted\","
        "\"node\":\"eu1\",\"waiting\":17,\"msg\":\"a \\\"b\\\"\\\\\\n\"}\n");
  CHECK(JsonValue("") == ",\"k\":\"\"");
  CHECK(JsonValue("\x01") == ",\"k\":\"\\u0001\"");
}

TEST_CASE("log: timestamps are UTC with milliseconds") {
  std::string out;
  log_internal::AppendHeader(&out, false, 0, LogLevel::kError, "e");
  CHECK(out == "ts=1970-01-01T00:00:00.000Z level=error event=e");
  out.clear();
  log_internal::AppendHeader(&out, false, 1000 * 86400 + 7, LogLevel::kWarn, "e");
  CHECK(out == "ts=1970-01-02T00:00:00.007Z level=warn event=e");
}

TEST_CASE("log: levels parse") {
  LogLevel level = LogLevel::kInfo;
  CHECK(ParseLogLevel("debug", &level));
  CHECK(level == LogLevel::kDebug);
  CHECK(ParseLogLevel("warn", &level));
  CHECK(level == LogLevel::kWarn);
  CHECK(ParseLogLevel("error", &level));
  CHECK(level == LogLevel::kError);
  CHECK(ParseLogLevel("info", &level));
  CHECK(level == LogLevel::kInfo);
  CHECK_FALSE(ParseLogLevel("trace", &level));
  CHECK_FALSE(ParseLogLevel("INFO", &level));
  CHECK(level == LogLevel::kInfo);
}

TEST_CASE("log: LogLine writes one logfmt line with typed values") {
  CaptureLog capture;
  LogInfo("client_connected")
      .Kv("addr", "10.0.0.1:5555")
      .Kv("user", std::string("app"))
      .Kv("i", -5)
      .Kv("u", 7u)
      .Kv("big", uint64_t{18446744073709551615u})
      .Kv("neg", int64_t{-9000000000})
      .Kv("d", 0.25)
      .Kv("empty", "");
  const std::string& out = capture.out();
  REQUIRE(out.size() > 28);
  CHECK(out.substr(0, 3) == "ts=");
  CHECK(out[26] == 'Z');
  CHECK(out.substr(27) ==
        " level=info event=client_connected addr=10.0.0.1:5555 user=app i=-5 u=7 "
        "big=18446744073709551615 neg=-9000000000 d=0.25 empty=\"\"\n");
}

TEST_CASE("log: LogLine JSON with numbers unquoted") {
  CaptureLog capture(/*json=*/true);
  LogWarn("slow")
      .Kv("node", "eu1")
      .Kv("ms", 12)
      .Kv("ratio", 1.5)
      .Kv("bad", std::numeric_limits<double>::quiet_NaN());
  const std::string& out = capture.out();
  REQUIRE(out.size() > 32);
  CHECK(out.substr(0, 7) == "{\"ts\":\"");
  CHECK(out.substr(32) ==
        ",\"level\":\"warn\",\"event\":\"slow\",\"node\":\"eu1\",\"ms\":12,\"ratio\":1.5,"
        "\"bad\":null}\n");
}

TEST_CASE("log: logfmt non-finite doubles") {
  CaptureLog capture;
  LogError("x")
      .Kv("a", std::numeric_limits<double>::infinity())
      .Kv("b", -HUGE_VAL)
      .Kv("c", std::nan(""));
  CHECK(capture.out().ends_with(" a=+Inf b=-Inf c=NaN\n"));
}

TEST_CASE("log: level filtering") {
  CaptureLog capture(false, LogLevel::kWarn);
  CHECK_FALSE(LogEnabled(LogLevel::kDebug));
  CHECK_FALSE(LogEnabled(LogLevel::kInfo));
  CHECK(LogEnabled(LogLevel::kWarn));
  CHECK(LogEnabled(LogLevel::kError));
  LogDebug("d").Kv("k", 1);
  LogInfo("i");
  CHECK(capture.out().empty());
  LogWarn("w");
  LogError("e");
  CHECK(capture.out().find("event=w\n") != std::string::npos);
  CHECK(capture.out().find("event=e\n") != std::string::npos);
  CHECK(std::count(capture.out().begin(), capture.out().end(), '\n') == 2);
}

}  // namespace
}  // namespace pgregion::proxy
