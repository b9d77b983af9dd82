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
// failed refresh simply keeps the last mapping.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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

// Tenant policies read from the application's own table ([tenancy] query,
// issue 20): built by one refresh, then only read and shared as a const
// pointer. A fleet has many tenants and few distinct policies, so each entry
// is an id and the index of its policy among the distinct ones (about 50 bytes
// per tenant, not a copy of its region lists). The ids are spread over
// kShards tables by hash, so that growing one while a refresh fills it moves
// at most 1/kShards of the rows at a time: a million rows never stall the
// loop thread for one big rehash.
class TenantMap {
 public:
  // Rows kept at most; a refresh returning more fails (the last good map stays).
  static constexpr size_t kMaxEntries = 1'000'000;

  // Adds or replaces `id`'s policy. False when the id is empty or longer than
  // TenantDirectory::kMaxIdBytes, or the map is full.
  bool Add(std::string_view id, TenantPolicy policy);
  // Null when `id` has no row.
  const TenantPolicy* Find(std::string_view id) const;
  size_t size() const { return size_; }
  // Distinct policies among the rows.
  size_t policy_count() const { return policies_.size(); }
  // f(id, policy) for each row, in no order, until f returns false.
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& shard : shards_) {
      for (const auto& [id, index] : shard) {
        if (!f(std::string_view(id), policies_[index])) return;
      }
    }
  }

 private:
  static constexpr size_t kShards = 64;
  using Shard = absl::flat_hash_map<std::string, uint32_t>;
  struct PolicyHash {
    size_t operator()(const TenantPolicy& p) const;
  };
  const Shard& ShardOf(std::string_view id) const;
  Shard& ShardOf(std::string_view id) {
    return const_cast<Shard&>(std::as_const(*this).ShardOf(id));
  }

  std::array<Shard, kShards> shards_;
  size_t size_ = 0;
  std::vector<TenantPolicy> policies_;
  absl::flat_hash_map<TenantPolicy, uint32_t, PolicyHash> policy_index_;
};

// Who routes how: [[tenants]] entries of the configuration, over the rows of
// the mapping (config entries win, so an operator can override one tenant
// without touching the application's table), over the default policy.
class TenantDirectory {
 public:
  // Ids longer than this are not tenants anyone configured (a hostile SET
  // cannot make the proxy hash megabytes per read): they resolve to the default.
  static constexpr size_t kMaxIdBytes = 256;
  // [[tenants]] entries kept at most; more are dropped (Add returns false).
  static constexpr size_t kMaxEntries = 1'000'000;

  // The policy of a tenant without an entry ([tenancy] default_*).
  void SetDefault(TenantPolicy policy) { default_ = std::move(policy); }
  const TenantPolicy& default_policy() const { return default_; }
  // The mapping's rows, under the config entries; null: none (yet).
  void SetMapped(std::shared_ptr<const TenantMap> mapped) { mapped_ = std::move(mapped); }
  const std::shared_ptr<const TenantMap>& mapped() const { return mapped_; }

  // Adds or replaces a config entry. False when the id is empty or too long,
  // or the directory is full.
  bool Add(std::string_view id, TenantPolicy policy);

  // The tenant's policy; `known` (optional) says whether it has an entry (in
  // the config or the mapping).
  const TenantPolicy& Lookup(std::string_view id, bool* known = nullptr) const;
  // Where `id`'s policy comes from: "config", "mapping" or "" (the default).
  std::string_view SourceOf(std::string_view id) const;

  // Reads of a tenant with an entry, for SHOW TENANTS: by the region that
  // served them, and refusals. Counted on the loop thread (the directory is
  // otherwise immutable); ids without an entry are not counted, so the counts
  // stay bounded by the directory.
  struct Reads {
    std::vector<uint64_t> by_node;  // by node index
    uint64_t refused = 0;
  };
  // A read of `id`, which the caller found to have an entry (Lookup's `known`),
  // served by node index `served_node` (-1: refused).
  void CountRead(std::string_view id, int served_node) const;
  const Reads* reads(std::string_view id) const;
  // Every id with counted reads (unordered).
  std::vector<std::string_view> counted_ids() const;
  // Carries `previous`'s counts over (a reload or a mapping refresh must not
  // reset SHOW TENANTS), dropping those of ids this directory does not know.
  // Both directories then count into the same place: a unit routed with the
  // old one still counts.
  void ShareReads(const TenantDirectory& previous);

  // Unique per directory built in this process (never reused, unlike an
  // address): a session's cached lookup is valid while the generation matches.
  uint64_t generation() const { return generation_; }

  // [[tenants]] entries (config) only; mapped()->size() has the rest.
  size_t size() const { return entries_.size(); }
  // The config entries, for SHOW TENANTS (unordered).
  const absl::flat_hash_map<std::string, TenantPolicy>& entries() const { return entries_; }

 private:
  using ReadCounts = absl::flat_hash_map<std::string, Reads>;
  bool Known(std::string_view id) const;

  absl::flat_hash_map<std::string, TenantPolicy> entries_;
  std::shared_ptr<const TenantMap> mapped_;
  TenantPolicy default_;
  std::shared_ptr<ReadCounts> reads_ = std::make_shared<ReadCounts>();
  uint64_t generation_ = NextGeneration();
  static uint64_t NextGeneration();
};

}  // namespace pgregion::routing
