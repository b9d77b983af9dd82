// Bounded LRU of classifications keyed by normalized statement text
// (SqlNormalizer). Capacity 0 disables it. Not thread-safe: one per
// StatementClassifier, used on the loop thread that owns it.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "routing/classification.h"

namespace pgregion::routing {

class ClassificationCache {
 public:
  explicit ClassificationCache(size_t capacity) : capacity_(capacity) {}
  ClassificationCache(const ClassificationCache&) = delete;
  ClassificationCache& operator=(const ClassificationCache&) = delete;

  // The entry for `key` (now the most recently used), or null.
  const std::shared_ptr<const Classification>* Find(std::string_view key);
  // Inserts or replaces; evicts the least recently used entry when full.
  void Insert(std::string_view key, std::shared_ptr<const Classification> value);
  void Clear();

  size_t size() const { return lru_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const Classification> value;
  };
  using List = std::list<Entry>;

  static absl::string_view View(std::string_view s) {
    return absl::string_view(s.data(), s.size());
  }

  const size_t capacity_;
  List lru_;  // front: most recently used
  // Keys view the strings owned by the list nodes (stable addresses).
  absl::flat_hash_map<absl::string_view, List::iterator> index_;
  uint64_t evictions_ = 0;
};

}  // namespace pgregion::routing
