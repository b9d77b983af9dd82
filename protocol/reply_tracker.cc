#include "protocol/reply_tracker.h"

namespace pgregion::protocol {

bool ReplyTracker::Expect(char type, Owner owner, uint32_t tag, char /*describe_target*/) {
  if (skipping_) {
    if (type != 'S') return false;
    skipping_ = false;
  }
  entries_.push_back(Entry{type, owner, false, tag});
  if (owner == Owner::kClient && EndsUnit(type)) ++client_pending_;
  return true;
}

void ReplyTracker::Synthesize(std::string_view bytes) {
  if (skipping_) return;  // the server sends nothing for skipped messages either
  if (entries_.empty()) {
    due_.append(bytes);
    return;
  }
  entries_.push_back(Entry{0, Owner::kClient, true, 0});
  synthesized_.emplace_back(bytes);
}

void ReplyTracker::TakeDue(std::string* out) {
  out->append(due_);
  due_.clear();
}

void ReplyTracker::MoveDue() {
  while (!entries_.empty() && entries_.front().synthesized) {
    due_.append(synthesized_.front());
    synthesized_.pop_front();
    entries_.pop_front();
  }
}

void ReplyTracker::Pop(Decision* d, bool failed) {
  const Entry& e = entries_.front();
  if (e.type == 'P' && e.tag != 0) {
    if (failed) {
      ++d->tagged_parses_failed;
    } else {
      ++d->tagged_parses_ok;
    }
  }
  if (e.owner == Owner::kClient && EndsUnit(e.type)) --client_pending_;
  entries_.pop_front();
}

// The server ignores every message but Sync until the next Sync (postgres.c:
// ignore_till_sync), simple Queries included.
void ReplyTracker::SkipAfterError(Decision* d) {
  while (!entries_.empty() && entries_.front().type != 'S') {
    if (entries_.front().synthesized) {
      synthesized_.pop_front();
      entries_.pop_front();
      continue;
    }
    Pop(d, /*failed=*/true);
  }
  if (entries_.empty()) skipping_ = true;  // its Sync has not been sent yet
}

bool ReplyTracker::Completes(char entry_type, char type) {
  switch (entry_type) {
    case 'P':
      return type == '1';
    case 'B':
      return type == '2';
    case 'C':
      return type == '3';
    case 'D':
      return type == 'T' || type == 'n';  // after ParameterDescription for statements
    case 'E':
      return type == 'C' || type == 'I' || type == 's';
    default:
      return false;  // Query/Sync/FunctionCall end at ReadyForQuery
  }
}

bool ReplyTracker::PassesThrough(char type) const {
  if (!due_.empty() || entries_.empty()) return false;
  const Entry& e = entries_.front();
  if (e.synthesized || e.owner != Owner::kClient) return false;
  // What OnBackendMessage() looks at itself (and 'S', which the caller does).
  if (type == 'Z' || type == 'E' || type == 'S') return false;
  return !Completes(e.type, type);
}

ReplyTracker::Decision ReplyTracker::OnBackendMessage(char type) {
  Decision d;
  MoveDue();
  if (entries_.empty()) {
    // Asynchronous traffic between units (NotificationResponse, ParameterStatus after
    // a reload, a FATAL ErrorResponse before shutdown) belongs to the client.
    d.unsolicited = true;
    return d;
  }
  const Entry e = entries_.front();
  d.owner = e.owner;
  d.tag = e.tag;
  // Notifications come from the client's LISTENs even while a proxy entry runs.
  d.action = (e.owner == Owner::kProxy && type != 'A') ? Action::kSwallow : Action::kForward;
  switch (type) {
    case 'N':  // NoticeResponse
    case 'A':  // NotificationResponse
    case 'S':  // ParameterStatus
      return d;
    case 'Z':
      // Ends the first unit; anything before it was answered or skipped.
      while (!entries_.empty() && !EndsUnit(entries_.front().type)) {
        if (entries_.front().synthesized) {
          synthesized_.pop_front();
          entries_.pop_front();
        } else {
          Pop(&d, /*failed=*/true);
        }
      }
      if (!entries_.empty()) {
        d.owner = entries_.front().owner;
        d.tag = entries_.front().tag;
        d.action = d.owner == Owner::kProxy ? Action::kSwallow : Action::kForward;
        Pop(&d, /*failed=*/false);
        d.unit_done = true;
      }
      MoveDue();
      return d;
    case 'E':
      if (EndsUnit(e.type)) return d;  // the ReadyForQuery that follows ends the unit
      Pop(&d, /*failed=*/true);
      SkipAfterError(&d);
      // The error belongs to whoever owns the batch (its Sync), even when the
      // failing message was one the proxy injected into a client's batch (a
      // re-created statement). The proxy writes its own batches whole, so a
      // batch whose Sync is not recorded yet is the client's.
      d.owner = entries_.empty() ? Owner::kClient : entries_.front().owner;
      d.action = d.owner == Owner::kProxy ? Action::kSwallow : Action::kForward;
      return d;
    default:
      break;
  }
  if (Completes(e.type, type)) {
    Pop(&d, /*failed=*/false);
    MoveDue();
  }
  return d;
}

void ReplyTracker::Clear() {
  entries_.clear();
  synthesized_.clear();
  due_.clear();
  client_pending_ = 0;
  skipping_ = false;
}

}  // namespace pgregion::protocol
