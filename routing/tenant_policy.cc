#include "routing/tenant_policy.h"

#include <algorithm>
#include <atomic>

#include "absl/hash/hash.h"

namespace pgregion::routing {

bool TenantPolicy::Allows(std::string_view region) const {
  return allow_regions.empty() ||
         std::find(allow_regions.begin(), allow_regions.end(), region) != allow_regions.end();
}

std::vector<std::string> ParseRegionList(std::string_view text) {
  std::vector<std::string> out;
  std::string current;
  auto flush = [&] {
    if (!current.empty() && std::find(out.begin(), out.end(), current) == out.end()) {
      out.push_back(current);
    }
    current.clear();
  };
  for (char c : text) {
    // Separators of both forms; quotes of an array literal's elements too
    // (region names never contain them: [[nodes]] region is a plain word).
    if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '{' || c == '}' ||
        c == '"') {
      flush();
    } else {
      current.push_back(c);
    }
  }
  flush();
  return out;
}

namespace {

// Debian's Abseil has its own string_view type: convert for heterogeneous lookup.
absl::string_view Key(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool ValidId(std::string_view id) {
  return !id.empty() && id.size() <= TenantDirectory::kMaxIdBytes;
}

}  // namespace

size_t TenantMap::PolicyHash::operator()(const TenantPolicy& p) const {
  return absl::HashOf(p.prefer_regions, p.allow_regions, p.consistency.has_value(),
                      p.consistency ? static_cast<int>(*p.consistency) : 0);
}

const TenantMap::Shard& TenantMap::ShardOf(std::string_view id) const {
  // The tables hash the id again with their own seed-mixed hash: the shard
  // takes high bits of a separate one, so each table still sees well spread keys.
  return shards_[(absl::HashOf(Key(id)) >> 32) % kShards];
}

bool TenantMap::Add(std::string_view id, TenantPolicy policy) {
  if (!ValidId(id)) return false;
  Shard& shard = ShardOf(id);
  auto it = shard.find(Key(id));
  if (it == shard.end() && size_ >= kMaxEntries) return false;
  auto [pit, fresh] = policy_index_.try_emplace(policy, static_cast<uint32_t>(policies_.size()));
  if (fresh) policies_.push_back(std::move(policy));
  if (it != shard.end()) {
    it->second = pit->second;
    return true;
  }
  shard.emplace(std::string(id), pit->second);
  ++size_;
  return true;
}

const TenantPolicy* TenantMap::Find(std::string_view id) const {
  const Shard& shard = ShardOf(id);
  auto it = shard.find(Key(id));
  return it == shard.end() ? nullptr : &policies_[it->second];
}

uint64_t TenantDirectory::NextGeneration() {
  static std::atomic<uint64_t> next{0};
  return ++next;
}

bool TenantDirectory::Add(std::string_view id, TenantPolicy policy) {
  if (!ValidId(id)) return false;
  auto it = entries_.find(Key(id));
  if (it != entries_.end()) {
    it->second = std::move(policy);
    return true;
  }
  if (entries_.size() >= kMaxEntries) return false;
  entries_.emplace(std::string(id), std::move(policy));
  return true;
}

const TenantPolicy& TenantDirectory::Lookup(std::string_view id, bool* known) const {
  if (ValidId(id)) {
    if (!entries_.empty()) {
      auto it = entries_.find(Key(id));
      if (it != entries_.end()) {
        if (known != nullptr) *known = true;
        return it->second;
      }
    }
    if (mapped_ != nullptr) {
      if (const TenantPolicy* p = mapped_->Find(id)) {
        if (known != nullptr) *known = true;
        return *p;
      }
    }
  }
  if (known != nullptr) *known = false;
  return default_;
}

std::string_view TenantDirectory::SourceOf(std::string_view id) const {
  if (!ValidId(id)) return "";
  if (entries_.contains(Key(id))) return "config";
  if (mapped_ != nullptr && mapped_->Find(id) != nullptr) return "mapping";
  return "";
}

bool TenantDirectory::Known(std::string_view id) const {
  bool known = false;
  Lookup(id, &known);
  return known;
}

void TenantDirectory::CountRead(std::string_view id, int served_node) const {
  Reads& r = (*reads_)[Key(id)];
  if (served_node < 0) {
    ++r.refused;
    return;
  }
  const size_t node = static_cast<size_t>(served_node);
  if (r.by_node.size() <= node) r.by_node.resize(node + 1);
  ++r.by_node[node];
}

const TenantDirectory::Reads* TenantDirectory::reads(std::string_view id) const {
  auto it = reads_->find(Key(id));
  return it == reads_->end() ? nullptr : &it->second;
}

std::vector<std::string_view> TenantDirectory::counted_ids() const {
  std::vector<std::string_view> out;
  out.reserve(reads_->size());
  for (const auto& [id, r] : *reads_) out.emplace_back(id.data(), id.size());
  return out;
}

void TenantDirectory::ShareReads(const TenantDirectory& previous) {
  reads_ = previous.reads_;
  for (auto it = reads_->begin(); it != reads_->end();) {
    // erase(it++): flat_hash_map's erase returns void.
    if (Known(std::string_view(it->first))) {
      ++it;
    } else {
      reads_->erase(it++);
    }
  }
}

}  // namespace pgregion::routing
