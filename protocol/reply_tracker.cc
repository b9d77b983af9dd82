#include "protocol/reply_tracker.h"

namespace pgregion::protocol {

void ReplyTracker::Expect(Owner owner, uint32_t tag) {
  units_.push_back(Unit{owner, tag});
  if (owner == Owner::kClient) ++client_pending_;
}

ReplyTracker::Decision ReplyTracker::OnBackendMessage(char type) {
  Decision d;
  if (units_.empty()) {
    // Asynchronous traffic between units (NotificationResponse, ParameterStatus after
    // a reload, a FATAL ErrorResponse before shutdown) belongs to the client.
    d.unsolicited = true;
    return d;
  }
  const Unit& unit = units_.front();
  d.owner = unit.owner;
  d.tag = unit.tag;
  // Notifications come from the client's LISTENs even while a proxy unit is running.
  d.action = (unit.owner == Owner::kProxy && type != 'A') ? Action::kSwallow : Action::kForward;
  if (type == 'Z') {
    d.unit_done = true;
    if (unit.owner == Owner::kClient) --client_pending_;
    units_.pop_front();
  }
  return d;
}

void ReplyTracker::Clear() {
  units_.clear();
  client_pending_ = 0;
}

}  // namespace pgregion::protocol
