// Run-time parameters (GUCs) of one side of the proxy: what a client believes
// it has set, or what a server connection currently has. Names compare
// case-insensitively, as PostgreSQL's do. A handful of entries: a flat vector
// beats a hash map in memory and speed.
//
// Copies share the entries (copy on write): thousands of idle clients of one
// pool hold what its servers reported (about 1.3 KiB) once, not each a copy.
// Share() goes further and finds an equal set kept elsewhere (clients that
// changed the same things, e.g. the same application_name). Loop thread only
// (the sharing counts on it).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
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
    friend bool operator==(const Entry&, const Entry&) = default;
  };

  const std::string* Get(std::string_view name) const {
    for (const Entry& e : entries()) {
      if (EqualsIgnoreCase(e.name, name)) return &e.value;
    }
    return nullptr;
  }
  void Set(std::string_view name, std::string_view value) {
    const std::vector<Entry>& all = entries();
    for (size_t i = 0; i < all.size(); ++i) {
      if (!EqualsIgnoreCase(all[i].name, name)) continue;
      if (all[i].value == value) return;  // unchanged: stays shared
      // `value` may point into the shared entries: copy it before they change.
      std::string v(value);
      Entry& e = Mutable()[i];
      digest_ ^= EntryDigest(e.name, e.value);
      e.value.swap(v);
      digest_ ^= EntryDigest(e.name, e.value);
      return;
    }
    std::string n(name), v(value);
    digest_ ^= EntryDigest(n, v);
    Mutable().push_back({std::move(n), std::move(v)});
  }
  void Erase(std::string_view name) {
    const std::vector<Entry>& all = entries();
    for (size_t i = 0; i < all.size(); ++i) {
      if (EqualsIgnoreCase(all[i].name, name)) {
        digest_ ^= EntryDigest(all[i].name, all[i].value);
        std::vector<Entry>& mine = Mutable();
        mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
    }
  }
  const std::vector<Entry>& entries() const { return entries_ != nullptr ? *entries_ : Empty(); }
  // Whether the settable parameters are equal. Checked before every unit of
  // work, so it compares order-independent digests (per-process seeded
  // hashes, kept up to date by Set/Erase) instead of the strings.
  bool SameAs(const SessionParams& other) const { return digest_ == other.digest_; }
  bool empty() const { return entries().empty(); }
  void Clear() {
    entries_.reset();
    digest_ = 0;
  }
  // Shares the entries with an equal set that another SessionParams of this
  // thread keeps, if there is one (see the top of the file). For sets kept
  // long by many (a logged-in client's); costs a hash of every entry.
  void Share();

 private:
  // Read-only parameters do not count: a replica reports in_hot_standby = on
  // where the primary says off, and nothing needs replaying for that.
  static uint64_t EntryDigest(std::string_view name, std::string_view value) {
    if (IsReadOnlyParameter(name)) return 0;
    std::string lower(name);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return absl::HashOf(lower, absl::string_view(value.data(), value.size()));
  }

  static const std::vector<Entry>& Empty() {
    static const std::vector<Entry> kEmpty;
    return kEmpty;
  }
  // The entries, ours alone from here on (copied first if shared).
  std::vector<Entry>& Mutable() {
    if (entries_ == nullptr) {
      entries_ = std::make_shared<std::vector<Entry>>();
    } else if (entries_.use_count() > 1) {
      entries_ = std::make_shared<std::vector<Entry>>(*entries_);
    }
    return *entries_;
  }

  // Null when empty. Shared between copies; never changed while shared.
  std::shared_ptr<std::vector<Entry>> entries_;
  uint64_t digest_ = 0;
};

inline void SessionParams::Share() {
  if (entries_ == nullptr) return;
  // Weak: the last SessionParams holding a set frees it. Keyed by a hash of
  // the entries in order; a set changed in place since (by its only holder)
  // no longer compares equal and is replaced.
  struct Table {
    absl::flat_hash_map<size_t, std::weak_ptr<std::vector<Entry>>> sets;
    size_t sweep_at = 64;
  };
  static thread_local Table table;
  size_t hash = entries_->size();
  for (const Entry& e : *entries_) hash = absl::HashOf(hash, e.name, e.value);
  auto [it, inserted] = table.sets.try_emplace(hash, entries_);
  if (inserted) {
    if (table.sets.size() >= table.sweep_at) {
      absl::erase_if(table.sets, [](const auto& kv) { return kv.second.expired(); });
      table.sweep_at = std::max<size_t>(64, 2 * table.sets.size());
    }
    return;
  }
  std::shared_ptr<std::vector<Entry>> known = it->second.lock();
  if (known == entries_) return;
  if (known != nullptr && *known == *entries_) {
    entries_ = std::move(known);  // equal entries: the digest stays
  } else {
    it->second = entries_;
  }
}

}  // namespace pgregion::proxy
