// Expected-reply tracking for one server connection.
//
// Everything sent to a server that ends in ReadyForQuery (a Query, a Sync, a
// FunctionCall) is one "unit". Units are answered in order. Each unit belongs
// either to the client (its replies are forwarded) or to the proxy (replies to
// what the proxy injected itself: parameter replays, DISCARD ALL, LSN probes;
// they are consumed). Pure; owned by the server connection, single-threaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace pgregion::protocol {

class ReplyTracker {
 public:
  enum class Owner : uint8_t { kClient, kProxy };
  enum class Action : uint8_t { kForward, kSwallow };

  struct Decision {
    Action action = Action::kForward;
    Owner owner = Owner::kClient;
    uint32_t tag = 0;         // the caller's tag of the unit this message belongs to
    bool unit_done = false;   // this message (a ReadyForQuery) completed the unit
    bool unsolicited = false; // no unit was pending (asynchronous message)
  };

  // A unit ending in ReadyForQuery was sent. `tag` is opaque to the tracker.
  void Expect(Owner owner, uint32_t tag = 0);

  // Classifies one backend message of type `type` and advances on ReadyForQuery ('Z').
  // NotificationResponse ('A') is always forwarded; ParameterStatus ('S') and
  // NoticeResponse ('N') follow their unit's owner; with nothing pending every
  // message is forwarded and marked unsolicited.
  Decision OnBackendMessage(char type);

  size_t pending() const { return units_.size(); }
  size_t client_pending() const { return client_pending_; }
  bool empty() const { return units_.empty(); }
  void Clear();

 private:
  struct Unit {
    Owner owner;
    uint32_t tag;
  };
  std::deque<Unit> units_;
  size_t client_pending_ = 0;
};

}  // namespace pgregion::protocol
