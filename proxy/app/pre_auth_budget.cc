#include "proxy/app/pre_auth_budget.h"

namespace pgregion::proxy {

void PreAuthBudget::Add(const void* conn) {
  if (index_.contains(conn)) return;
  order_.push_back(conn);
  index_[conn] = std::prev(order_.end());
}

void PreAuthBudget::Remove(const void* conn) {
  auto it = index_.find(conn);
  if (it == index_.end()) return;
  order_.erase(it->second);
  index_.erase(it);
}

}  // namespace pgregion::proxy
