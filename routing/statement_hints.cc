#include "routing/statement_hints.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "protocol/str_util.h"

namespace pgregion::routing {
namespace {

bool IsListSeparator(char c) {
  return c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view StripQuotes(std::string_view v) {
  if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"') && v.back() == v.front()) {
    return v.substr(1, v.size() - 2);
  }
  return v;
}

}  // namespace

std::optional<StatementHints::Route> StatementHints::ParseRoute(std::string_view value) {
  if (EqualsIgnoreCase(value, "primary")) return Route::kPrimary;
  if (EqualsIgnoreCase(value, "replica")) return Route::kReplica;
  if (EqualsIgnoreCase(value, "auto")) return Route::kAuto;
  return std::nullopt;
}

std::optional<StatementHints::Consistency> StatementHints::ParseConsistency(
    std::string_view value) {
  if (EqualsIgnoreCase(value, "strong")) return Consistency::kStrong;
  if (EqualsIgnoreCase(value, "causal")) return Consistency::kCausal;
  if (EqualsIgnoreCase(value, "bounded")) return Consistency::kBounded;
  if (EqualsIgnoreCase(value, "eventual")) return Consistency::kEventual;
  return std::nullopt;
}

std::optional<int64_t> StatementHints::ParseDurationMs(std::string_view value) {
  size_t i = 0;
  double number = 0;
  bool digits = false;
  while (i < value.size() && value[i] >= '0' && value[i] <= '9') {
    number = number * 10 + (value[i] - '0');
    digits = true;
    ++i;
  }
  if (i < value.size() && value[i] == '.') {
    ++i;
    double scale = 0.1;
    while (i < value.size() && value[i] >= '0' && value[i] <= '9') {
      number += (value[i] - '0') * scale;
      scale /= 10;
      digits = true;
      ++i;
    }
  }
  if (!digits) return std::nullopt;
  while (i < value.size() && value[i] == ' ') ++i;
  std::string_view unit = value.substr(i);
  double ms;
  if (unit.empty() || EqualsIgnoreCase(unit, "ms")) {
    ms = number;
  } else if (EqualsIgnoreCase(unit, "s")) {
    ms = number * 1e3;
  } else if (EqualsIgnoreCase(unit, "min")) {
    ms = number * 60e3;
  } else if (EqualsIgnoreCase(unit, "h")) {
    ms = number * 3600e3;
  } else {
    return std::nullopt;
  }
  // About 292 years in ms fits int64; anything longer is a typo.
  if (!(ms < 9e15)) return std::nullopt;
  return static_cast<int64_t>(std::llround(ms));
}

std::string_view StatementHints::RouteName(Route route) {
  switch (route) {
    case Route::kAuto:
      return "auto";
    case Route::kPrimary:
      return "primary";
    case Route::kReplica:
      return "replica";
  }
  return "auto";
}

std::string_view StatementHints::ConsistencyName(Consistency consistency) {
  switch (consistency) {
    case Consistency::kStrong:
      return "strong";
    case Consistency::kCausal:
      return "causal";
    case Consistency::kBounded:
      return "bounded";
    case Consistency::kEventual:
      return "eventual";
  }
  return "causal";
}

std::optional<bool> StatementHints::ParseBool(std::string_view value) {
  for (std::string_view on : {"on", "true", "yes", "1"}) {
    if (EqualsIgnoreCase(value, on)) return true;
  }
  for (std::string_view off : {"off", "false", "no", "0"}) {
    if (EqualsIgnoreCase(value, off)) return false;
  }
  return std::nullopt;
}

bool StatementHints::Apply(std::string_view key, std::string_view raw_value) {
  std::string_view value = StripQuotes(raw_value);
  bool ok = false;
  if (EqualsIgnoreCase(key, "route")) {
    if (auto v = ParseRoute(value)) route = *v, ok = true;
  } else if (EqualsIgnoreCase(key, "consistency")) {
    if (auto v = ParseConsistency(value)) consistency = *v, ok = true;
  } else if (EqualsIgnoreCase(key, "ryw_token")) {
    if (!value.empty()) ryw_token = std::string(value), ok = true;
  } else if (EqualsIgnoreCase(key, "max_staleness")) {
    if (auto v = ParseDurationMs(value)) max_staleness_ms = *v, ok = true;
  } else if (EqualsIgnoreCase(key, "optimistic")) {
    if (auto v = ParseBool(value)) optimistic = *v, ok = true;
  } else if (EqualsIgnoreCase(key, "tenant")) {
    // Ids are the application's own (TenantDirectory::kMaxIdBytes at most).
    if (!value.empty() && value.size() <= 256) tenant = std::string(value), ok = true;
  } else {
    if (error.empty()) error = StrCat("unknown pgregion hint \"", key, "\"");
    return false;
  }
  if (!ok && error.empty()) {
    error = StrCat("invalid value \"", raw_value, "\" for pgregion hint \"", key, "\"");
  }
  return ok;
}

void StatementHints::ParseList(std::string_view list) {
  const size_t n = list.size();
  size_t i = 0;
  auto skip_blanks = [&](size_t j) {
    while (j < n && (list[j] == ' ' || list[j] == '\t')) ++j;
    return j;
  };
  while (i < n) {
    while (i < n && IsListSeparator(list[i])) ++i;
    if (i >= n) break;
    size_t start = i;
    while (i < n && !IsListSeparator(list[i]) && list[i] != '=') ++i;
    std::string_view key = list.substr(start, i - start);
    size_t j = skip_blanks(i);
    if (j >= n || list[j] != '=' || key.empty()) {
      if (error.empty()) error = StrCat("pgregion hint \"", key, "\" is not key=value");
      i = std::max(j, i + (key.empty() ? 1 : 0));
      continue;
    }
    j = skip_blanks(j + 1);
    size_t value_start = j;
    if (j < n && (list[j] == '\'' || list[j] == '"')) {
      size_t close = list.find(list[j], j + 1);
      j = close == std::string_view::npos ? n : close + 1;
    } else {
      while (j < n && !IsListSeparator(list[j])) ++j;
    }
    Apply(key, list.substr(value_start, j - value_start));
    i = j;
  }
}

}  // namespace pgregion::routing
