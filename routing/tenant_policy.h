// Where one tenant's reads want to run and may run (issue 20), and the
// directory that maps tenant ids to it. Pure values: no I/O, no clock.
//
// - prefer_regions: in order; a read goes to a replica of the first region
//   that has one able to serve it (health, lag, read-your-writes as for any
//   read), then of the next.
// - allow_regions: empty = any region. Otherwise the read is processed only
//   there: past the preferred regions, the nearest replica among the allowed
//   ones, then the primary if it is in an allowed region, else the read is
//   refused (RouteBlock::kResidency). Every node stores every row of a
//   single-primary replicated database: this controls where reads are
//   processed, not where data is stored, and writes always go to the primary.
//
// The directory is built once per configuration or mapping refresh and then
// only read (shared as a const pointer), so lookups need no locking and a
// failed refresh simply keeps the last directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "routing/statement_hints.h"

namespace pgregion::routing {

struct TenantPolicy {
  std::vector<std::string> prefer_regions;
  std::vector<std::string> allow_regions;  // empty: any region
  // The tenant's read consistency when the session did not choose one.
  std::optional<StatementHints::Consistency> consistency;

  bool restricted() const { return !allow_regions.empty(); }
  bool Allows(std::string_view region) const;
  // Neither a preference nor a restriction nor a level: today's routing.
  bool neutral() const {
    return prefer_regions.empty() && allow_regions.empty() && !consistency.has_value();
  }
  bool operator==(const TenantPolicy&) const = default;
};

// Parses a region list as a mapping query returns it: a PostgreSQL array
// literal ("{eu-west,ap-south}"), or names separated by commas and/or spaces.
// Empty entries and duplicates are dropped; order is kept.
std::vector<std::string> ParseRegionList(std::string_view text);

class TenantDirectory {
 public:
  // Ids longer than this are not tenants anyone configured (a hostile SET
  // cannot make the proxy hash megabytes per read): they resolve to the default.
  static constexpr size_t kMaxIdBytes = 256;
  // Entries kept at most (config plus mapping rows); more are dropped and
  // counted (Add returns false).
  static constexpr size_t kMaxEntries = 1'000'000;

  // The policy of a tenant without an entry ([tenancy] default_*).
  void SetDefault(TenantPolicy policy) { default_ = std::move(policy); }
  const TenantPolicy& default_policy() const { return default_; }

  // Adds or replaces `id`'s policy. False when the id is empty or too long,
  // or the directory is full.
  bool Add(std::string_view id, TenantPolicy policy);

  // The tenant's policy; `known` (optional) says whether it has an entry.
  const TenantPolicy& Lookup(std::string_view id, bool* known = nullptr) const;

  // Reads of a tenant with an entry, for SHOW TENANTS: by the region that
  // served them, and refusals. Counted on the loop thread (the directory is
  // otherwise immutable); ids without an entry are not counted, so the counts
  // stay bounded by the directory. Since this directory was built (a reload
  // or a mapping refresh starts from zero).
  struct Reads {
    absl::flat_hash_map<std::string, uint64_t> by_region;
    uint64_t refused = 0;
  };
  // `served_region` empty: refused.
  void CountRead(std::string_view id, std::string_view served_region) const;
  const Reads* reads(std::string_view id) const;

  size_t size() const { return entries_.size(); }
  // Every entry, for SHOW TENANTS (unordered).
  const absl::flat_hash_map<std::string, TenantPolicy>& entries() const { return entries_; }

 private:
  absl::flat_hash_map<std::string, TenantPolicy> entries_;
  TenantPolicy default_;
  mutable absl::flat_hash_map<std::string, Reads> reads_;
};

}  // namespace pgregion::routing
