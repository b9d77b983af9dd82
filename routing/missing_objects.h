// Which nodes do not have a database (or a role) yet, as their refused logins
// showed: a replica replaying a CREATE DATABASE / CREATE ROLE refuses logins
// to it (3D000; 28P01 or 28000 for a role) until it gets there. The
// router avoids such a node for that (database, user) for `recheck_ms` after
// the refusal; then one unit tries it again (a refusal marks it anew).
//
// Also what a refused login means (LoginRefusal): the pure part shared by the
// pool (logs, marks) and the session (re-routes the unit, which was not sent).
//
// Pure: time is passed in. Bounded: at most `max_entries` marks; past it the
// expired ones go, and if none has expired, all of them (the cost of
// forgetting a mark is one more refused login, never a wrong result).
// Owned by the ProxyApp; loop thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>

#include "absl/container/flat_hash_map.h"

namespace pgregion::routing {

struct LoginRefusal {
  std::string sqlstate;
  std::string message;
  // The server may not have the database or the role (yet): 3D000; 28P01,
  // which is what a missing role gets under password authentication
  // (PostgreSQL runs a mock exchange and does not tell), so also a wrong
  // password: harmless, since a refusal by the primary still reaches the
  // client; or 28000 with "role \"x\" does not exist" (trust; English server
  // messages). Not other 28000s (pg_hba.conf is per node, not replayed).
  bool missing_object = false;
};

// What an ErrorResponse frame (type byte, length, fields) says; an unparsable
// one is a refusal with an empty sqlstate, not a missing object.
LoginRefusal ClassifyLoginRefusal(std::string_view error_response_frame);

class MissingObjects {
 public:
  static constexpr uint64_t kDefaultRecheckMs = 1000;
  static constexpr size_t kDefaultMaxEntries = 1024;

  explicit MissingObjects(uint64_t recheck_ms = kDefaultRecheckMs,
                          size_t max_entries = kDefaultMaxEntries)
      : recheck_ms_(recheck_ms), max_entries_(max_entries) {}

  // `node` refused a login to `database` as `user` at `now_ms` (a missing object).
  void Mark(int node, std::string_view database, std::string_view user, uint64_t now_ms);
  // A login there succeeded: the node has both now.
  void Clear(int node, std::string_view database, std::string_view user);
  // Bit i set: node i lacks `database` or `user` as of less than recheck_ms
  // ago (nodes past 63 are never reported, as RouteContext::avoid_nodes).
  uint64_t AvoidMask(std::string_view database, std::string_view user, uint64_t now_ms) const;
  size_t size() const { return marks_.size(); }

 private:
  struct Key {
    std::string database;
    std::string user;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.database, k.user);
    }
    bool operator==(const Key&) const = default;
  };
  struct Entry {
    uint64_t mask = 0;           // nodes marked
    uint64_t since_ms[64] = {};  // per node: when it refused (512 B; at most max_entries)
  };
  bool Fresh(uint64_t since, uint64_t now) const { return now - since < recheck_ms_; }

  uint64_t recheck_ms_;
  size_t max_entries_;
  absl::flat_hash_map<Key, Entry> marks_;
};

}  // namespace pgregion::routing
