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
  std::string line_;
};

inline LogLine LogDebug(std::string_view event) { return LogLine(LogLevel::kDebug, event); }
inline LogLine LogInfo(std::string_view event) { return LogLine(LogLevel::kInfo, event); }
inline LogLine LogWarn(std::string_view event) { return LogLine(LogLevel::kWarn, event); }
inline LogLine LogError(std::string_view event) { return LogLine(LogLevel::kError, event); }

}  // namespace pgregion::proxy
