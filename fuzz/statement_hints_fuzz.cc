// Fuzz target: routing::StatementHints (hint comment lists and the value
// parsers shared with SET pgregion.*).
//
// Properties: arbitrary lists never crash; a parsed duration is never
// negative; names round-trip through their parsers; "<n>ms" parses to n; a
// list rebuilt from the parsed hints parses to the same hints. The tenant
// mapping's region lists (routing::ParseRegionList, fed by the application's
// table) hold no empty, duplicate or separator-bearing names, and parse the
// same once joined again; a TenantMap takes any id within its bounds.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.h"
#include "routing/statement_hints.h"
#include "routing/tenant_policy.h"

namespace {

using pgregion::fuzz::Check;
using pgregion::routing::StatementHints;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const int64_t n = fdp.ConsumeIntegralInRange<int64_t>(0, int64_t{1} << 40);
  const std::string text = fdp.ConsumeRemainingBytesAsString();

  StatementHints hints;
  hints.ParseList(text);
  (void)StatementHints::ParseRoute(text);
  (void)StatementHints::ParseConsistency(text);
  if (auto d = StatementHints::ParseDurationMs(text)) Check(*d >= 0, "negative duration");
  if (hints.max_staleness_ms) Check(*hints.max_staleness_ms >= 0, "negative max_staleness");

  auto ms = StatementHints::ParseDurationMs(std::to_string(n) + "ms");
  Check(ms && *ms == n, "<n>ms does not parse to n");

  // Rebuild a list from what was understood; it must mean the same.
  std::string list;
  if (hints.route) list += "route=" + std::string(StatementHints::RouteName(*hints.route)) + " ";
  if (hints.consistency) {
    list += "consistency=" + std::string(StatementHints::ConsistencyName(*hints.consistency)) + " ";
  }
  if (hints.max_staleness_ms) list += "max_staleness=" + std::to_string(*hints.max_staleness_ms) + "ms ";
  StatementHints again;
  again.ParseList(list);
  Check(again.route == hints.route, "route changed through a rebuilt list");
  Check(again.consistency == hints.consistency, "consistency changed through a rebuilt list");
  Check(again.max_staleness_ms == hints.max_staleness_ms, "max_staleness changed through a rebuilt list");
  if (hints.route) {
    Check(StatementHints::ParseRoute(StatementHints::RouteName(*hints.route)) == hints.route,
          "route name round trip");
  }
  if (hints.consistency) {
    Check(StatementHints::ParseConsistency(StatementHints::ConsistencyName(*hints.consistency)) ==
              hints.consistency,
          "consistency name round trip");
  }

  std::vector<std::string> regions = pgregion::routing::ParseRegionList(text);
  std::string joined;
  for (const std::string& r : regions) {
    Check(!r.empty(), "empty region");
    Check(r.find_first_of(", \t\r\n{}\"") == std::string::npos, "separator in a region");
    joined += (joined.empty() ? "{" : ",") + r;
  }
  if (!joined.empty()) joined += "}";
  Check(pgregion::routing::ParseRegionList(joined) == regions, "region list round trip");
  pgregion::routing::TenantMap map;
  pgregion::routing::TenantPolicy policy;
  policy.prefer_regions = regions;
  const bool added = map.Add(text, policy);
  Check(added == (!text.empty() && text.size() <= pgregion::routing::TenantDirectory::kMaxIdBytes),
        "TenantMap::Add refused a valid id or took an invalid one");
  Check(!added || (map.Find(text) != nullptr && *map.Find(text) == policy), "TenantMap lookup");
  return 0;
}
