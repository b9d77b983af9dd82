// One line per event, logfmt (default) or JSON, to stderr.
//
// Usage: LogInfo("client_connected").Kv("addr", addr).Kv("user", user);
// The line is written when the temporary goes out of scope. Values are quoted
// as needed. Never pass passwords, tokens' secrets or query parameter values.
// The level and format are process-wide settings applied at startup/reload on
// the loop thread; logging itself is thread-compatible (one write per line).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgregion::proxy {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
void SetLogJson(bool json);
bool LogEnabled(LogLevel level);
// "debug" | "info" | "warn" | "error"; false if unknown.
bool ParseLogLevel(std::string_view text, LogLevel* out);

// Lines go to stderr unless a test sink is set (null restores stderr). Test-only.
void SetLogSinkForTest(std::string* sink);

namespace log_internal {
// The formatting steps LogLine uses, exposed so tests can check exact output.
// `unix_ms` is milliseconds since the epoch, printed as UTC "2026-11-21T23:58:05.123Z".
void AppendHeader(std::string* out, bool json, int64_t unix_ms, LogLevel level,
                  std::string_view event);
// A string value: logfmt quotes it when needed, JSON always does.
void AppendString(std::string* out, bool json, std::string_view key, std::string_view value);
// `number` is already formatted and is written unquoted.
void AppendNumber(std::string* out, bool json, std::string_view key, std::string_view number);
// Closes the JSON object and adds the newline.
void AppendEnd(std::string* out, bool json);
}  // namespace log_internal

class LogLine {
 public:
  LogLine(LogLevel level, std::string_view event);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  LogLine& Kv(std::string_view key, std::string_view value);
  LogLine& Kv(std::string_view key, const char* value) { return Kv(key, std::string_view(value)); }
  LogLine& Kv(std::string_view key, const std::string& value) {
    return Kv(key, std::string_view(value));
  }
  LogLine& Kv(std::string_view key, int64_t value);
  LogLine& Kv(std::string_view key, uint64_t value);
  LogLine& Kv(std::string_view key, int value) { return Kv(key, int64_t{value}); }
  LogLine& Kv(std::string_view key, unsigned value) { return Kv(key, uint64_t{value}); }
  LogLine& Kv(std::string_view key, double value);

 private:
  bool enabled_;
  bool json_ = false;
  std::string line_;
};

inline LogLine LogDebug(std::string_view event) { return LogLine(LogLevel::kDebug, event); }
inline LogLine LogInfo(std::string_view event) { return LogLine(LogLevel::kInfo, event); }
inline LogLine LogWarn(std::string_view event) { return LogLine(LogLevel::kWarn, event); }
inline LogLine LogError(std::string_view event) { return LogLine(LogLevel::kError, event); }

}  // namespace pgregion::proxy
