// Run-time parameters (GUCs) of one side of the proxy: what a client believes
// it has set, or what a server connection currently has. Names compare
// case-insensitively, as PostgreSQL's do. A handful of entries: a flat vector
// beats a hash map in memory and speed. Loop thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/str_util.h"

namespace pgregion::proxy {

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
        e.value.assign(value);
        return;
      }
    }
    entries_.push_back({std::string(name), std::string(value)});
  }
  void Erase(std::string_view name) {
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (EqualsIgnoreCase(entries_[i].name, name)) {
        entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
    }
  }
  const std::vector<Entry>& entries() const { return entries_; }
  // Exact equality, in order: the common case when both sides were built from
  // the same login defaults, checked before the name-by-name comparison.
  bool SameAs(const SessionParams& other) const {
    if (entries_.size() != other.entries_.size()) return false;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].value != other.entries_[i].value ||
          entries_[i].name != other.entries_[i].name) {
        return false;
      }
    }
    return true;
  }
  bool empty() const { return entries_.empty(); }
  void Clear() { entries_.clear(); }

 private:
  std::vector<Entry> entries_;
};

// Parameters PostgreSQL reports but a client cannot set: never replayed.
inline bool IsReadOnlyParameter(std::string_view name) {
  static constexpr std::string_view kReadOnly[] = {
      "server_version", "server_encoding",       "integer_datetimes", "is_superuser",
      "session_authorization", "in_hot_standby", "server_version_num"};
  for (std::string_view r : kReadOnly) {
    if (EqualsIgnoreCase(r, name)) return true;
  }
  return false;
}

}  // namespace pgregion::proxy
