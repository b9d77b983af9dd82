// Run-time parameters (GUCs) of one side of the proxy: what a client believes
// it has set, or what a server connection currently has. Names compare
// case-insensitively, as PostgreSQL's do. A handful of entries: a flat vector
// beats a hash map in memory and speed. Loop thread.
#pragma once

#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "protocol/str_util.h"

namespace pgregion::proxy {

// Parameters PostgreSQL reports but a client cannot set: never replayed.
inline bool IsReadOnlyParameter(std::string_view name) {
  static constexpr std::string_view kReadOnly[] = {
      "server_version",        "server_encoding", "integer_datetimes", "is_superuser",
      "session_authorization", "in_hot_standby",  "server_version_num"};
  for (std::string_view r : kReadOnly) {
    if (EqualsIgnoreCase(r, name)) return true;
  }
  return false;
}

class SessionParams {
 public:
  struct Entry {
    std::string name;
    std::string value;
  };

  const std::string* Get(std::string_view name) const {
    for (const Entry& e : entries_) {
      if (EqualsIgnoreCase(e.name, name)) return &e.value;
    }
    return nullptr;
  }
  void Set(std::string_view name, std::string_view value) {
    for (Entry& e : entries_) {
      if (EqualsIgnoreCase(e.name, name)) {
        digest_ ^= EntryDigest(e.name, e.value);
        e.value.assign(value);
        digest_ ^= EntryDigest(e.name, e.value);
        return;
      }
    }
    entries_.push_back({std::string(name), std::string(value)});
    digest_ ^= EntryDigest(name, value);
  }
  void Erase(std::string_view name) {
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (EqualsIgnoreCase(entries_[i].name, name)) {
        digest_ ^= EntryDigest(entries_[i].name, entries_[i].value);
        entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
    }
  }
  const std::vector<Entry>& entries() const { return entries_; }
  // Whether the settable parameters are equal. Checked before every unit of
  // work, so it compares order-independent digests (per-process seeded
  // hashes, kept up to date by Set/Erase) instead of the strings.
  bool SameAs(const SessionParams& other) const { return digest_ == other.digest_; }
  bool empty() const { return entries_.empty(); }
  void Clear() {
    entries_.clear();
    digest_ = 0;
  }

 private:
  // Read-only parameters do not count: a replica reports in_hot_standby = on
  // where the primary says off, and nothing needs replaying for that.
  static uint64_t EntryDigest(std::string_view name, std::string_view value) {
    if (IsReadOnlyParameter(name)) return 0;
    std::string lower(name);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return absl::HashOf(lower, absl::string_view(value.data(), value.size()));
  }

  std::vector<Entry> entries_;
  uint64_t digest_ = 0;
};

}  // namespace pgregion::proxy
