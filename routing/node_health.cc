#include "routing/node_health.h"

#include <algorithm>

namespace pgregion::routing {

NodeHealth::NodeHealth(const HealthPolicy& policy) { SetPolicy(policy); }

void NodeHealth::SetPolicy(const HealthPolicy& policy) {
  policy_ = policy;
  // A threshold of 0 would mean "never" for one rule and "at once" for the other;
  // treat both as 1 so the config cannot disable health checking by accident.
  policy_.failures_to_down = std::max<uint32_t>(policy_.failures_to_down, 1);
  policy_.successes_to_up = std::max<uint32_t>(policy_.successes_to_up, 1);
}

bool NodeHealth::MarkSuspect() {
  const bool was = suspect_;
  suspect_ = true;
  return !was;
}

NodeHealth::Change NodeHealth::OnSuccess(uint64_t now_ms) {
  failures_ = 0;
  suspect_ = false;
  ++successes_;
  switch (state_) {
    case State::kUnknown:
      state_ = State::kUp;
      changed_at_ms_ = now_ms;
      return Change::kWentUp;
    case State::kUp:
      return Change::kNone;
    case State::kDown: {
      const bool held = now_ms >= last_failure_ms_ + policy_.recover_hold_ms;
      if (successes_ >= policy_.successes_to_up && held) {
        state_ = State::kUp;
        changed_at_ms_ = now_ms;
        return Change::kWentUp;
      }
      return Change::kNone;
    }
  }
  return Change::kNone;
}

NodeHealth::Change NodeHealth::OnFailure(Failure failure, uint64_t now_ms) {
  successes_ = 0;
  ++failures_;
  last_failure_ms_ = now_ms;
  // A node that does not answer in time may be hung: no new reads until it
  // answers again (an error reply is an answer: it only counts).
  if (failure == Failure::kProbeTimeout) suspect_ = true;
  switch (state_) {
    case State::kDown:
      return Change::kNone;
    case State::kUnknown:
    case State::kUp:
      break;
  }
  switch (failure) {
    case Failure::kDataPath:
      return GoDown(now_ms);
    case Failure::kProbeTimeout:  // a busy machine can delay one probe: count it
    case Failure::kProbeError:
      break;
  }
  if (failures_ >= policy_.failures_to_down) return GoDown(now_ms);
  return Change::kNone;
}

NodeHealth::Change NodeHealth::GoDown(uint64_t now_ms) {
  // Reported from kUnknown too (the node never served): the proxy logs the first verdict.
  state_ = State::kDown;
  changed_at_ms_ = now_ms;
  return Change::kWentDown;
}

std::string_view NodeHealthStateName(NodeHealth::State state) {
  switch (state) {
    case NodeHealth::State::kUnknown:
      return "unknown";
    case NodeHealth::State::kUp:
      return "up";
    case NodeHealth::State::kDown:
      return "down";
  }
  return "unknown";
}

}  // namespace pgregion::routing
