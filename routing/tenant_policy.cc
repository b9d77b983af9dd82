#include "routing/tenant_policy.h"

#include <algorithm>

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

bool TenantDirectory::Add(std::string_view id, TenantPolicy policy) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  // Debian's Abseil has its own string_view type: convert for heterogeneous lookup.
  auto it = entries_.find(absl::string_view(id.data(), id.size()));
  if (it != entries_.end()) {
    it->second = std::move(policy);
    return true;
  }
  if (entries_.size() >= kMaxEntries) return false;
  entries_.emplace(std::string(id), std::move(policy));
  return true;
}

const TenantPolicy& TenantDirectory::Lookup(std::string_view id, bool* known) const {
  if (!id.empty() && id.size() <= kMaxIdBytes) {
    auto it = entries_.find(absl::string_view(id.data(), id.size()));
    if (it != entries_.end()) {
      if (known != nullptr) *known = true;
      return it->second;
    }
  }
  if (known != nullptr) *known = false;
  return default_;
}

void TenantDirectory::CountRead(std::string_view id, std::string_view served_region) const {
  const absl::string_view key(id.data(), id.size());
  if (!entries_.contains(key)) return;
  Reads& r = reads_[key];
  if (served_region.empty()) {
    ++r.refused;
  } else {
    ++r.by_region[absl::string_view(served_region.data(), served_region.size())];
  }
}

const TenantDirectory::Reads* TenantDirectory::reads(std::string_view id) const {
  auto it = reads_.find(absl::string_view(id.data(), id.size()));
  return it == reads_.end() ? nullptr : &it->second;
}

}  // namespace pgregion::routing
