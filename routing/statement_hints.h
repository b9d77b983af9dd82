// Per-statement routing hints written by the client in a comment:
//
//   /* pgregion: route=primary */ SELECT ...
//   SELECT ... -- pgregion: consistency=bounded, max_staleness=500ms
//
// Key=value pairs are separated by spaces or commas; keys and keyword values
// are case-insensitive; a later pair (or a later hint comment) overrides an
// earlier one. The same value parsers serve `SET pgregion.<key> = '...'`.
// Pure value types; no state, usable from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgregion::routing {

struct StatementHints {
  enum class Route : uint8_t { kAuto, kPrimary, kReplica };
  enum class Consistency : uint8_t { kStrong, kCausal, kBounded, kEventual };

  std::optional<Route> route;
  std::optional<Consistency> consistency;
  std::optional<std::string> ryw_token;  // opaque here; validated by the token code
  std::optional<int64_t> max_staleness_ms;
  // optimistic=off: the transaction this statement begins (or opens) starts on
  // the primary instead of optimistically on a replica.
  std::optional<bool> optimistic;
  // tenant=42: the tenant whose region preferences route this statement's
  // unit (issue 20), ahead of pgregion.tenant and the application's setting.
  std::optional<std::string> tenant;
  // The first problem found (unknown key, bad value), for a log line or a
  // NOTICE; the offending pair is ignored, the others still apply.
  std::string error;

  bool empty() const {
    return !route && !consistency && !ryw_token && !max_staleness_ms && !optimistic && !tenant &&
           error.empty();
  }

  // Applies the key=value list of one hint comment (the text after
  // "pgregion:").
  void ParseList(std::string_view list);
  // Applies one pair; false (and `error` set) when the key or value is bad.
  bool Apply(std::string_view key, std::string_view value);

  // Value parsers shared with `SET pgregion.* = ...` (case-insensitive).
  static std::optional<Route> ParseRoute(std::string_view value);
  static std::optional<Consistency> ParseConsistency(std::string_view value);
  // "500ms", "2s", "1.5s", "1min", "1h", "250" (a bare number is
  // milliseconds). Negative or overflowing values are rejected.
  static std::optional<int64_t> ParseDurationMs(std::string_view value);
  // on/off/true/false/yes/no/1/0, as PostgreSQL reads a boolean setting.
  static std::optional<bool> ParseBool(std::string_view value);

  static std::string_view RouteName(Route route);
  static std::string_view ConsistencyName(Consistency consistency);
};

}  // namespace pgregion::routing
