#include "routing/missing_objects.h"

#include "protocol/messages.h"
#include "protocol/sqlstate.h"

namespace pgregion::routing {

namespace p = ::pgregion::protocol;

LoginRefusal ClassifyLoginRefusal(std::string_view frame) {
  LoginRefusal r;
  if (frame.size() < 5 || frame[0] != 'E') return r;
  absl::StatusOr<p::ErrorNotice> err = p::ParseErrorNotice(frame.substr(5));
  if (!err.ok()) return r;
  r.sqlstate = std::string(err->sqlstate());
  r.message = std::string(err->message());
  const std::string_view msg = r.message;
  r.missing_object = r.sqlstate == p::sqlstate::kInvalidCatalogName ||
                     r.sqlstate == p::sqlstate::kInvalidPassword ||
                     (r.sqlstate == p::sqlstate::kInvalidAuthorizationSpecification &&
                      msg.starts_with("role \"") && msg.ends_with("\" does not exist"));
  return r;
}

void MissingObjects::Mark(int node, std::string_view database, std::string_view user,
                          uint64_t now_ms) {
  if (node < 0 || node >= 64) return;
  Key key{std::string(database), std::string(user)};
  if (!marks_.contains(key) && marks_.size() >= max_entries_) {
    absl::erase_if(marks_, [&](const auto& kv) {
      const Entry& e = kv.second;
      for (int i = 0; i < 64; ++i) {
        if ((e.mask >> i & 1) != 0 && Fresh(e.since_ms[i], now_ms)) return false;
      }
      return true;
    });
    if (marks_.size() >= max_entries_) marks_.clear();
  }
  Entry& e = marks_[std::move(key)];
  e.mask |= uint64_t{1} << node;
  e.since_ms[node] = now_ms;
}

void MissingObjects::Clear(int node, std::string_view database, std::string_view user) {
  if (marks_.empty() || node < 0 || node >= 64) return;
  auto it = marks_.find(Key{std::string(database), std::string(user)});
  if (it == marks_.end()) return;
  it->second.mask &= ~(uint64_t{1} << node);
  if (it->second.mask == 0) marks_.erase(it);
}

uint64_t MissingObjects::AvoidMask(std::string_view database, std::string_view user,
                                   uint64_t now_ms) const {
  if (marks_.empty()) return 0;  // the usual case: no lookup on the routing path
  auto it = marks_.find(Key{std::string(database), std::string(user)});
  if (it == marks_.end()) return 0;
  uint64_t mask = 0;
  const Entry& e = it->second;
  for (int i = 0; i < 64; ++i) {
    if ((e.mask >> i & 1) != 0 && Fresh(e.since_ms[i], now_ms)) mask |= uint64_t{1} << i;
  }
  return mask;
}

}  // namespace pgregion::routing
