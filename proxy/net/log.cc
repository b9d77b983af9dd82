#include "proxy/net/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pgregion::proxy {
namespace {

// Relaxed atomics: the settings change rarely (startup, reload) and a line
// formatted with the previous setting during a swap is harmless.
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_json{false};
std::atomic<std::string*> g_sink{nullptr};

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// Appends `text` with `"`, `\` and control characters escaped, JSON style.
void AppendEscaped(std::string* out, std::string_view text) {
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (IsControl(c)) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(ch);
        }
    }
  }
}

bool LogfmtNeedsQuotes(std::string_view value) {
  if (value.empty()) return true;
  for (char ch : value) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (ch == ' ' || ch == '"' || ch == '=' || ch == '\\' || IsControl(c)) return true;
  }
  return false;
}

// logfmt keys are bare words; keys come from code, but a stray space or '='
// must not break the line's structure.
void AppendLogfmtKey(std::string* out, std::string_view key) {
  out->push_back(' ');
  for (char ch : key) {
    unsigned char c = static_cast<unsigned char>(ch);
    out->push_back(ch == ' ' || ch == '"' || ch == '=' || IsControl(c) ? '_' : ch);
  }
  out->push_back('=');
}

void AppendJsonKey(std::string* out, std::string_view key) {
  out->append(",\"");
  AppendEscaped(out, key);
  out->append("\":");
}

void WriteLine(const std::string& line) {
  if (std::string* sink = g_sink.load(std::memory_order_relaxed)) {
    sink->append(line);
    return;
  }
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to report a failing stderr
    off += static_cast<size_t>(n);
  }
}

}  // namespace

void SetLogLevel(LogLevel level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

void SetLogJson(bool json) { g_json.store(json, std::memory_order_relaxed); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

bool ParseLogLevel(std::string_view text, LogLevel* out) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    if (text == LevelName(level)) {
      *out = level;
      return true;
    }
  }
  return false;
}

void SetLogSinkForTest(std::string* sink) { g_sink.store(sink, std::memory_order_relaxed); }

namespace log_internal {

void AppendHeader(std::string* out, bool json, int64_t unix_ms, LogLevel level,
                  std::string_view event) {
  std::string ts =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
  if (json) {
    out->append("{\"ts\":\"");
    out->append(ts);
    out->append("\"");
  } else {
    out->append("ts=");
    out->append(ts);
  }
  AppendString(out, json, "level", LevelName(level));
  AppendString(out, json, "event", event);
}

void AppendString(std::string* out, bool json, std::string_view key, std::string_view value) {
  if (json) {
    AppendJsonKey(out, key);
  } else {
    AppendLogfmtKey(out, key);
    if (!LogfmtNeedsQuotes(value)) {
      out->append(value);
      return;
    }
  }
  out->push_back('"');
  AppendEscaped(out, value);
  out->push_back('"');
}

void AppendNumber(std::string* out, bool json, std::string_view key, std::string_view number) {
  if (json) {
    AppendJsonKey(out, key);
  } else {
    AppendLogfmtKey(out, key);
  }
  out->append(number);
}

void AppendEnd(std::string* out, bool json) {
  if (json) out->push_back('}');
  out->push_back('\n');
}

}  // namespace log_internal

LogLine::LogLine(LogLevel level, std::string_view event) : enabled_(LogEnabled(level)) {
  if (!enabled_) return;
  json_ = g_json.load(std::memory_order_relaxed);
  line_.reserve(160);
  log_internal::AppendHeader(&line_, json_, absl::ToUnixMillis(absl::Now()), level, event);
}

LogLine::~LogLine() {
  if (!enabled_) return;
  log_internal::AppendEnd(&line_, json_);
  WriteLine(line_);
}

LogLine& LogLine::Kv(std::string_view key, std::string_view value) {
  if (enabled_) log_internal::AppendString(&line_, json_, key, value);
  return *this;
}

LogLine& LogLine::Kv(std::string_view key, int64_t value) {
  if (enabled_) log_internal::AppendNumber(&line_, json_, key, absl::StrCat(value));
  return *this;
}

LogLine& LogLine::Kv(std::string_view key, uint64_t value) {
  if (enabled_) log_internal::AppendNumber(&line_, json_, key, absl::StrCat(value));
  return *this;
}

LogLine& LogLine::Kv(std::string_view key, double value) {
  if (!enabled_) return *this;
  if (std::isfinite(value)) {
    log_internal::AppendNumber(&line_, json_, key, absl::StrCat(value));
  } else if (json_) {
    log_internal::AppendNumber(&line_, json_, key, "null");  // JSON has no NaN or Inf
  } else {
    log_internal::AppendNumber(&line_, json_, key,
                               std::isnan(value) ? "NaN" : (value > 0 ? "+Inf" : "-Inf"));
  }
  return *this;
}

}  // namespace pgregion::proxy
