#include "routing/classification_cache.h"

namespace pgregion::routing {

const std::shared_ptr<const Classification>* ClassificationCache::Find(std::string_view key) {
  auto it = index_.find(View(key));
  if (it == index_.end()) return nullptr;
  if (it->second != lru_.begin()) lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->value;
}

void ClassificationCache::Insert(std::string_view key,
                                 std::shared_ptr<const Classification> value) {
  if (capacity_ == 0) return;
  auto it = index_.find(View(key));
  if (it != index_.end()) {
    it->second->value = std::move(value);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (lru_.size() >= capacity_) {
    index_.erase(View(lru_.back().key));
    lru_.pop_back();
    ++evictions_;
  }
  lru_.push_front(Entry{std::string(key), std::move(value)});
  index_.emplace(View(lru_.front().key), lru_.begin());
}

void ClassificationCache::Clear() {
  index_.clear();
  lru_.clear();
}

}  // namespace pgregion::routing
