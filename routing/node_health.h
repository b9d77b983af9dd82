// Up/down state of one node with hysteresis, fed by health probes and by
// failures seen on the data path. Pure: time is passed in (milliseconds on any
// monotonic clock). Owned by Topology; single-threaded (the proxy's loop).
//
// Rules:
// - A node starts kUnknown and serves nothing. Its first successful probe makes
//   it kUp at once, so a freshly started proxy can serve after one probe
//   interval. Failures while kUnknown count as below; reaching the threshold
//   makes it kDown, after which the normal recovery rule applies.
// - kUp -> kDown after `failures_to_down` consecutive probe failures, or at once
//   on a probe timeout or a data-path failure (connection refused or reset,
//   57P0x): a node that stopped answering gets no traffic before the next probe.
// - kDown -> kUp only after `successes_to_up` consecutive successes AND
//   `recover_hold_ms` since the last failure seen while down (the moment it went
//   down, unless it kept failing). Measuring the hold from the last failure,
//   not only from the first, keeps a flapping node out until it has been
//   quiet for the whole hold.
// - Suspect: a probe that timed out (query, or connect past timeout_ms) makes
//   the node suspect at once, whatever its state; the next successful probe
//   clears it. Suspect is no down: writes and the primary role are unchanged,
//   but replica choice skips a suspect node and reads running there are retried
//   elsewhere, so a hung node (SIGSTOP, blackholed link) stalls reads for at
//   most interval_ms + timeout_ms instead of failures_to_down probe rounds.
#pragma once

#include <cstdint>
#include <string_view>

namespace pgregion::routing {

struct HealthPolicy {
  uint32_t failures_to_down = 3;
  uint32_t successes_to_up = 3;
  uint64_t recover_hold_ms = 10'000;
};

class NodeHealth {
 public:
  enum class State : uint8_t { kUnknown, kUp, kDown };
  enum class Change : uint8_t { kNone, kWentUp, kWentDown };
  enum class Failure : uint8_t {
    kProbeError,    // the probe failed (error reply, connect failure): counts
    kProbeTimeout,  // no answer within timeout_ms: a failure like kProbeError
    kDataPath,      // the proxy's own traffic failed: quarantine at once
  };

  explicit NodeHealth(const HealthPolicy& policy);

  // A reload's new thresholds; the state and the counts so far are kept, so the
  // new thresholds judge the next probe (a node already past a lowered
  // failures_to_down goes down at its next failure, not at once).
  void SetPolicy(const HealthPolicy& policy);

  Change OnSuccess(uint64_t now_ms);
  Change OnFailure(Failure failure, uint64_t now_ms);
  // A probe has waited timeout_ms and is still waiting (a connect allowed to
  // take longer): suspect now, with no failure counted. True if it was not.
  bool MarkSuspect();

  State state() const { return state_; }
  bool up() const { return state_ == State::kUp; }
  bool suspect() const { return suspect_; }
  uint32_t consecutive_failures() const { return failures_; }
  uint32_t consecutive_successes() const { return successes_; }
  // When the node last changed between up and down (0: never).
  uint64_t changed_at_ms() const { return changed_at_ms_; }

 private:
  Change GoDown(uint64_t now_ms);

  HealthPolicy policy_;
  State state_ = State::kUnknown;
  uint32_t failures_ = 0;
  uint32_t successes_ = 0;
  uint64_t changed_at_ms_ = 0;
  uint64_t last_failure_ms_ = 0;
  bool suspect_ = false;
};

std::string_view NodeHealthStateName(NodeHealth::State state);

}  // namespace pgregion::routing
