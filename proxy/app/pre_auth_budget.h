// The connections that have not finished authentication, oldest first, and
// how many of them the proxy accepts at once (proxy.max_unauthenticated_connections).
//
// Why a separate budget: max_client_connections protects the backends and is
// sized for logged-in clients; a flood of idle or slowly authenticating
// sockets must not take those slots, nor the memory each login may buffer
// (PostgreSQL's 64 KiB authentication limit times this budget). When the
// budget is full the ProxyApp evicts the oldest connection that has not even
// sent its StartupMessage (an idle socket, most likely the attacker's: a real
// client sends it within one round trip) so a new login still gets through;
// if every slot is past that point it refuses the new one with 53300.
//
// Pure bookkeeping of opaque pointers; loop thread.
#pragma once

#include <cstddef>
#include <list>

#include "absl/container/flat_hash_map.h"

namespace pgregion::proxy {

class PreAuthBudget {
 public:
  explicit PreAuthBudget(size_t limit) : limit_(limit) {}

  void set_limit(size_t limit) { limit_ = limit; }
  size_t limit() const { return limit_; }
  size_t size() const { return order_.size(); }
  bool full() const { return order_.size() >= limit_; }
  bool contains(const void* conn) const { return index_.contains(conn); }

  // A newly accepted connection (the newest). Adding one twice is a no-op.
  void Add(const void* conn);
  // Authenticated or closed; absent ones are ignored.
  void Remove(const void* conn);

  // The oldest connection for which `pred(conn)` holds, or null.
  template <typename Pred>
  const void* OldestMatching(Pred pred) const {
    for (const void* conn : order_) {
      if (pred(conn)) return conn;
    }
    return nullptr;
  }

 private:
  size_t limit_;
  std::list<const void*> order_;  // oldest first
  absl::flat_hash_map<const void*, std::list<const void*>::iterator> index_;
};

}  // namespace pgregion::proxy
