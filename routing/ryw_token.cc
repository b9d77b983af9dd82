#include "routing/ryw_token.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "protocol/str_util.h"

namespace pgregion::routing {
namespace {

constexpr std::string_view kVersion = "r1";

template <typename T>
bool ParseNumber(std::string_view text, int base, T* out) {
  if (text.empty() || text.size() > 20) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string RywToken::ToString() const {
  if (!valid()) return "";
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llX", static_cast<unsigned long long>(lsn.value()));
  return StrCat(kVersion, ".", system_identifier, ".", timeline, ".", std::string_view(hex, 16));
}

absl::StatusOr<RywToken> RywToken::Parse(std::string_view text) {
  auto bad = [](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("invalid pgregion.ryw_token: ", why));
  };
  if (std::count(text.begin(), text.end(), '.') != 3) {
    return bad("expected r1.<system>.<timeline>.<lsn>");
  }
  std::string_view parts[4];
  for (std::string_view& part : parts) {
    const size_t dot = text.find('.');
    part = text.substr(0, dot);
    text.remove_prefix(dot == std::string_view::npos ? text.size() : dot + 1);
  }
  if (parts[0] != kVersion) return bad("unknown version");
  RywToken t;
  uint64_t lsn = 0;
  if (!ParseNumber(parts[1], 10, &t.system_identifier) || t.system_identifier == 0) {
    return bad("bad system identifier");
  }
  if (!ParseNumber(parts[2], 10, &t.timeline) || t.timeline == 0) return bad("bad timeline");
  if (parts[3].size() != 16 || !ParseNumber(parts[3], 16, &lsn) || lsn == 0) {
    return bad("bad WAL position");
  }
  t.lsn = Lsn(lsn);
  return t;
}

RywToken RywToken::Max(const RywToken& a, const RywToken& b) {
  if (!a.valid()) return b;
  if (!b.valid()) return a;
  RywToken t = a;
  t.timeline = std::max(a.timeline, b.timeline);
  t.lsn = std::max(a.lsn, b.lsn);
  return t;
}

TokenLsn TokenLsnAfterCommit(std::string_view synchronous_commit, bool durability_unknown,
                             Lsn flush, Lsn insert) {
  if (!insert.valid()) return TokenLsn{};
  // current_setting() shows an enum setting by its canonical name ('true'
  // and '1' read back as 'on'). Anything else is not trusted.
  const bool flushed_before_ack = synchronous_commit == "on" || synchronous_commit == "local" ||
                                  synchronous_commit == "remote_write" ||
                                  synchronous_commit == "remote_apply";
  if (!flushed_before_ack || durability_unknown || !flush.valid() || insert < flush) {
    return TokenLsn{insert, false};
  }
  return TokenLsn{flush, true};
}

}  // namespace pgregion::routing
