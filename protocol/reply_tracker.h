// Expected-reply tracking for one server connection.
//
// Every frontend message the server will answer is recorded in the order it was
// sent: Parse, Bind, Close, Describe, Execute (extended protocol) and the
// messages that end a unit with ReadyForQuery (Query, Sync, FunctionCall).
// Each belongs either to the client (its replies are forwarded) or to the proxy
// (replies to what the proxy injected itself: parameter replays, DISCARD ALL,
// re-created prepared statements, LSN probes; they are consumed). The proxy may
// also answer a client message itself (a Parse of a statement the server
// already has): Synthesize() puts that reply at its place in the stream and
// TakeDue() hands it out once everything before it has been answered.
//
// After an ErrorResponse to an extended-protocol message the server skips
// everything up to the next Sync; the tracker skips the same entries and drops
// synthesized replies among them, as the server would have sent none.
// Pure; owned by the server connection, single-threaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace pgregion::protocol {

class ReplyTracker {
 public:
  enum class Owner : uint8_t { kClient, kProxy };
  enum class Action : uint8_t { kForward, kSwallow };

  struct Decision {
    Action action = Action::kForward;
    Owner owner = Owner::kClient;
    uint32_t tag = 0;          // the caller's tag of the entry this message belongs to
    bool unit_done = false;    // a ReadyForQuery completed a Query/Sync/FunctionCall
    bool unsolicited = false;  // nothing was pending (asynchronous message)
    // Parse entries with a non-zero tag that this message completed, in the
    // order they were sent: successfully, or failed/skipped after an error.
    uint16_t tagged_parses_ok = 0;
    uint16_t tagged_parses_failed = 0;
  };

  // The server will answer frontend message `type` ('P','B','C','D','E','Q','S','F').
  // For Describe, `describe_target` is 'S' (statement) or 'P' (portal). Returns
  // false when the server is skipping to the next Sync after an error and will
  // ignore this message (nothing is recorded).
  bool Expect(char type, Owner owner, uint32_t tag = 0, char describe_target = 'P');
  // A unit ending in ReadyForQuery (a simple Query).
  void Expect(Owner owner, uint32_t tag = 0) { (void)Expect('Q', owner, tag); }
  // A reply the proxy makes itself, due once everything before it is answered.
  void Synthesize(std::string_view bytes);

  // Classifies one backend message and advances.
  Decision OnBackendMessage(char type);
  // True when OnBackendMessage(type) would only say "forward to the client"
  // and change nothing (rows, descriptions and completions of a client's
  // Query; rows of its Execute): the caller may skip it.
  bool PassesThrough(char type) const;

  bool has_due() const { return !due_.empty(); }
  // Appends the synthesized replies that are due to `out`.
  void TakeDue(std::string* out);

  // Entries still waiting for a reply (synthesized ones included).
  size_t pending() const { return entries_.size(); }
  // Units (Query/Sync/FunctionCall) of the client still waiting for ReadyForQuery.
  size_t client_pending() const { return client_pending_; }
  bool empty() const { return entries_.empty() && due_.empty(); }
  // The server is ignoring messages until the next Sync.
  bool skipping() const { return skipping_; }
  void Clear();

  // A frontend message that ends a unit: the server answers it with ReadyForQuery.
  static bool EndsUnit(char type) { return type == 'Q' || type == 'S' || type == 'F'; }

 private:
  struct Entry {
    char type;
    Owner owner;
    bool synthesized;
    uint32_t tag;
  };
  // Whether backend message `type` is the reply that completes an entry of `entry_type`.
  static bool Completes(char entry_type, char type);
  void Pop(Decision* d, bool failed);
  void MoveDue();
  void SkipAfterError(Decision* d);

  std::deque<Entry> entries_;
  std::deque<std::string> synthesized_;  // bytes of the synthesized entries, in order
  std::string due_;
  size_t client_pending_ = 0;
  // An extended-protocol error arrived before its Sync was recorded: the server
  // ignores everything until that Sync.
  bool skipping_ = false;
};

}  // namespace pgregion::protocol
