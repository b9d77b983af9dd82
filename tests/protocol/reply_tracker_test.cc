#include "protocol/reply_tracker.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace pgregion::protocol {
namespace {

using Owner = ReplyTracker::Owner;
using Action = ReplyTracker::Action;

constexpr Action F = Action::kForward;
constexpr Action W = Action::kSwallow;  // sWallow
constexpr Owner C = Owner::kClient;
constexpr Owner P = Owner::kProxy;

// One step of a scenario: either Expect(owner, tag) or a backend message and the decision
// the tracker must make for it.
struct Step {
  char type;  // 0: Expect
  Owner owner;
  uint32_t tag = 0;
  Action action = F;
  bool unit_done = false;
  bool unsolicited = false;
};

Step ExpectUnit(Owner owner, uint32_t tag) { return {0, owner, tag}; }
Step Msg(char type, Owner owner, uint32_t tag, Action action) {
  return {type, owner, tag, action, type == 'Z', false};
}
Step Async(char type) { return {type, C, 0, F, false, true}; }

struct Scenario {
  std::string name;
  std::vector<Step> steps;
  size_t pending_after;
  size_t client_pending_after;
};

TEST_CASE("ReplyTracker: scenarios") {
  const std::vector<Scenario> scenarios = {
      {"nothing pending: everything is forwarded as unsolicited",
       {Async('A'), Async('S'), Async('N'), Async('E'), Async('Z')},
       0,
       0},
      {"one client Query",
       {ExpectUnit(C, 1), Msg('T', C, 1, F), Msg('D', C, 1, F), Msg('C', C, 1, F),
        Msg('Z', C, 1, F)},
       0,
       0},
      {"parameter replay before the client's statement",
       {ExpectUnit(P, 10), ExpectUnit(C, 11), Msg('C', P, 10, W), Msg('S', P, 10, W),
        Msg('Z', P, 10, W), Msg('1', C, 11, F), Msg('2', C, 11, F), Msg('C', C, 11, F),
        Msg('Z', C, 11, F)},
       0,
       0},
      {"LSN probe pipelined behind the client's Sync",
       {ExpectUnit(C, 1), ExpectUnit(P, 2), Msg('C', C, 1, F), Msg('Z', C, 1, F), Msg('V', P, 2, W),
        Msg('Z', P, 2, W)},
       0,
       0},
      {"the probe fails: its error is swallowed too",
       {ExpectUnit(C, 1), ExpectUnit(P, 2), Msg('Z', C, 1, F), Msg('E', P, 2, W),
        Msg('Z', P, 2, W)},
       0,
       0},
      {"notification during a proxy unit reaches the client",
       {ExpectUnit(P, 3), Msg('A', P, 3, F), Msg('N', P, 3, W), Msg('S', P, 3, W),
        Msg('Z', P, 3, W), Async('A')},
       0,
       0},
      {"notices and parameter changes of a client unit are forwarded",
       {ExpectUnit(C, 4), Msg('N', C, 4, F), Msg('S', C, 4, F), Msg('A', C, 4, F),
        Msg('Z', C, 4, F)},
       0,
       0},
      {"client pipeline: units complete in order",
       {ExpectUnit(C, 1), ExpectUnit(C, 2), ExpectUnit(C, 3), Msg('Z', C, 1, F), Msg('E', C, 2, F),
        Msg('Z', C, 2, F)},
       1,
       1},
      {"units still pending at the end",
       {ExpectUnit(P, 1), ExpectUnit(C, 2), ExpectUnit(P, 3), Msg('C', P, 1, W)},
       3,
       1},
  };
  for (const Scenario& sc : scenarios) {
    CAPTURE(sc.name);
    ReplyTracker t;
    CHECK(t.empty());
    for (size_t i = 0; i < sc.steps.size(); ++i) {
      CAPTURE(i);
      const Step& s = sc.steps[i];
      if (s.type == 0) {
        const size_t before = t.pending();
        t.Expect(s.owner, s.tag);
        CHECK(t.pending() == before + 1);
        continue;
      }
      const ReplyTracker::Decision d = t.OnBackendMessage(s.type);
      CHECK(d.action == s.action);
      CHECK(d.owner == s.owner);
      CHECK(d.tag == s.tag);
      CHECK(d.unit_done == s.unit_done);
      CHECK(d.unsolicited == s.unsolicited);
    }
    CHECK(t.pending() == sc.pending_after);
    CHECK(t.client_pending() == sc.client_pending_after);
    CHECK(t.empty() == (sc.pending_after == 0));
  }
}

TEST_CASE("ReplyTracker: client_pending counts only client units") {
  ReplyTracker t;
  t.Expect(Owner::kProxy);
  t.Expect(Owner::kClient, 7);
  t.Expect(Owner::kProxy);
  CHECK(t.pending() == 3);
  CHECK(t.client_pending() == 1);
  CHECK(t.OnBackendMessage('Z').owner == Owner::kProxy);
  CHECK(t.client_pending() == 1);
  const ReplyTracker::Decision d = t.OnBackendMessage('Z');
  CHECK(d.owner == Owner::kClient);
  CHECK(d.tag == 7);
  CHECK(d.unit_done);
  CHECK(t.client_pending() == 0);
  CHECK(t.pending() == 1);
}

TEST_CASE("ReplyTracker: Clear forgets every unit") {
  ReplyTracker t;
  t.Expect(Owner::kClient);
  t.Expect(Owner::kProxy);
  t.Clear();
  CHECK(t.empty());
  CHECK(t.pending() == 0);
  CHECK(t.client_pending() == 0);
  const ReplyTracker::Decision d = t.OnBackendMessage('Z');
  CHECK(d.unsolicited);
  CHECK(d.action == Action::kForward);
  CHECK_FALSE(d.unit_done);
}

// ---------------------------------------------------------------------------
// Extended protocol: one entry per frontend message, synthesized replies, skipping
// after errors, tagged Parse counts.

// One step of an extended-protocol scenario: a frontend message the server will
// answer (Expect), a reply the proxy makes itself (Synthesize), or a backend message
// with the decision the tracker must make for it. After every step the synthesized
// bytes that became due must be exactly `due`.
struct Ev {
  enum class Kind : uint8_t { kSend, kSynth, kReply };
  Kind kind = Kind::kReply;
  char type = 0;      // kSend: frontend message type; kReply: backend message type
  Owner owner = C;    // kSend: the entry's owner; kReply: Decision::owner
  uint32_t tag = 0;   // kSend: the entry's tag; kReply: Decision::tag
  char target = 'P';  // kSend of a Describe: 'S' statement or 'P' portal
  std::string bytes;  // kSynth
  Action action = F;
  bool unit_done = false;
  bool unsolicited = false;
  uint16_t ok = 0;
  uint16_t failed = 0;
  std::string due;
  int pending = -1;         // checked after the step when >= 0
  int client_pending = -1;  // checked after the step when >= 0

  Ev Ok(uint16_t n) const {
    Ev e = *this;
    e.ok = n;
    return e;
  }
  Ev Failed(uint16_t n) const {
    Ev e = *this;
    e.failed = n;
    return e;
  }
  Ev Due(std::string b) const {
    Ev e = *this;
    e.due = std::move(b);
    return e;
  }
  Ev Left(int n) const {
    Ev e = *this;
    e.pending = n;
    return e;
  }
  Ev Units(int n) const {
    Ev e = *this;
    e.client_pending = n;
    return e;
  }
};

Ev Send(char type, Owner owner, uint32_t tag = 0) {
  Ev e;
  e.kind = Ev::Kind::kSend;
  e.type = type;
  e.owner = owner;
  e.tag = tag;
  return e;
}
// Describe of a statement (the server answers 't' then 'T' or 'n').
Ev DescribeStatement(Owner owner, uint32_t tag = 0) {
  Ev e = Send('D', owner, tag);
  e.target = 'S';
  return e;
}
Ev Synth(std::string bytes) {
  Ev e;
  e.kind = Ev::Kind::kSynth;
  e.bytes = std::move(bytes);
  return e;
}
Ev Rx(char type, Owner owner, uint32_t tag, Action action) {
  Ev e;
  e.type = type;
  e.owner = owner;
  e.tag = tag;
  e.action = action;
  e.unit_done = type == 'Z';
  return e;
}
Ev Unsolicited(char type) {
  Ev e = Rx(type, C, 0, F);
  e.unit_done = false;
  e.unsolicited = true;
  return e;
}

struct ExtScenario {
  std::string name;
  std::vector<Ev> steps;
  size_t pending_after;
  size_t client_pending_after;
};

void RunSteps(ReplyTracker& t, const std::vector<Ev>& steps) {
  for (size_t i = 0; i < steps.size(); ++i) {
    CAPTURE(i);
    const Ev& s = steps[i];
    CAPTURE(s.type);
    const size_t before = t.pending();
    switch (s.kind) {
      case Ev::Kind::kSend:
        // Messages sent while the server skips to its Sync are not recorded.
        CHECK(t.pending() == before + (t.Expect(s.type, s.owner, s.tag, s.target) ? 1 : 0));
        break;
      case Ev::Kind::kSynth:
        t.Synthesize(s.bytes);
        break;
      case Ev::Kind::kReply: {
        const ReplyTracker::Decision d = t.OnBackendMessage(s.type);
        CHECK(d.action == s.action);
        CHECK(d.owner == s.owner);
        CHECK(d.tag == s.tag);
        CHECK(d.unit_done == s.unit_done);
        CHECK(d.unsolicited == s.unsolicited);
        CHECK(d.tagged_parses_ok == s.ok);
        CHECK(d.tagged_parses_failed == s.failed);
        break;
      }
    }
    CHECK(t.has_due() == !s.due.empty());
    std::string out = "prefix:";
    t.TakeDue(&out);
    CHECK(out == "prefix:" + s.due);
    CHECK_FALSE(t.has_due());
    if (s.pending >= 0) CHECK(t.pending() == static_cast<size_t>(s.pending));
    if (s.client_pending >= 0) CHECK(t.client_pending() == static_cast<size_t>(s.client_pending));
  }
}

TEST_CASE("ReplyTracker: extended protocol scenarios") {
  const std::vector<ExtScenario> scenarios = {
      {"pgbench-like batch: Parse, Bind, Describe portal, Execute, Sync",
       {Send('P', C).Units(0), Send('B', C), Send('D', C), Send('E', C), Send('S', C, 9).Units(1),
        Rx('1', C, 0, F).Left(4).Units(1), Rx('2', C, 0, F).Left(3), Rx('T', C, 0, F).Left(2),
        Rx('D', C, 0, F).Left(2), Rx('D', C, 0, F).Left(2), Rx('C', C, 0, F).Left(1).Units(1),
        Rx('Z', C, 9, F).Left(0).Units(0)},
       0,
       0},
      {"two pipelined batches complete in order",
       {Send('P', C, 1), Send('B', C), Send('E', C), Send('S', C, 10), Send('B', C), Send('E', C),
        Send('S', C, 11).Units(2), Rx('1', C, 1, F).Ok(1), Rx('2', C, 0, F), Rx('C', C, 0, F),
        Rx('Z', C, 10, F).Left(3).Units(1), Rx('2', C, 0, F), Rx('D', C, 0, F), Rx('C', C, 0, F),
        Rx('Z', C, 11, F).Left(0).Units(0)},
       0,
       0},
      {"proxy Query before a client batch: swallowed, then the batch is forwarded",
       {Send('Q', P, 5), Send('P', C), Send('B', C), Send('E', C), Send('S', C, 6).Units(1),
        Rx('C', P, 5, W), Rx('S', P, 5, W), Rx('Z', P, 5, W).Left(4).Units(1), Rx('1', C, 0, F),
        Rx('2', C, 0, F), Rx('C', C, 0, F), Rx('Z', C, 6, F).Units(0)},
       0,
       0},
      {"Synthesize with nothing pending is due at once",
       {Synth("<parse-complete>").Due("<parse-complete>").Left(0), Send('B', C), Send('E', C),
        Synth("<close-complete>").Left(3), Send('S', C), Rx('2', C, 0, F),
        Rx('C', C, 0, F).Due("<close-complete>").Left(1), Rx('Z', C, 0, F)},
       0,
       0},
      {"Synthesize in the middle: due right after the first ParseComplete, before BindComplete",
       {Send('P', C, 1), Synth("<1:b>"), Send('B', C), Send('E', C), Send('S', C).Left(5),
        Rx('1', C, 1, F).Ok(1).Due("<1:b>").Left(3), Rx('2', C, 0, F), Rx('C', C, 0, F),
        Rx('Z', C, 0, F)},
       0,
       0},
      {"consecutive synthesized replies are handed out together, in order",
       {Send('P', C), Synth("<a>"), Synth("<b>"), Send('B', C), Synth("<c>"), Send('S', C),
        Rx('N', C, 0, F).Left(6), Rx('1', C, 0, F).Due("<a><b>"), Rx('2', C, 0, F).Due("<c>"),
        Rx('Z', C, 0, F)},
       0,
       0},
      {"a synthesized reply behind a Sync waits for its ReadyForQuery",
       {Send('P', C), Send('S', C), Synth("<next>"), Send('B', C), Send('S', C), Rx('1', C, 0, F),
        Rx('Z', C, 0, F).Due("<next>").Left(2).Units(1), Rx('2', C, 0, F), Rx('Z', C, 0, F)},
       0,
       0},
      {"a synthesized reply behind a proxy Query waits for its ReadyForQuery",
       {Send('Q', P, 3), Synth("<1>"), Send('B', C), Send('S', C), Rx('C', P, 3, W),
        Rx('Z', P, 3, W).Due("<1>"), Rx('2', C, 0, F), Rx('Z', C, 0, F)},
       0,
       0},
      {"injected proxy Parse before a client Bind: ParseComplete swallowed and counted",
       {Send('P', P, 1), Send('B', C), Send('E', C), Send('S', C), Rx('1', P, 1, W).Ok(1).Left(3),
        Rx('2', C, 0, F), Rx('D', C, 0, F), Rx('C', C, 0, F), Rx('Z', C, 0, F)},
       0,
       0},
      {"untagged injected Parse (unnamed statement) is swallowed but not counted",
       {Send('P', P), Send('D', C), Send('S', C), Rx('1', P, 0, W), Rx('n', C, 0, F),
        Rx('Z', C, 0, F)},
       0,
       0},
      {"proxy Close and re-created client Parse",
       {Send('C', P), Send('P', C, 1), Send('B', C), Send('E', C), Send('S', C), Rx('3', P, 0, W),
        Rx('1', C, 1, F).Ok(1), Rx('2', C, 0, F), Rx('C', C, 0, F), Rx('Z', C, 0, F)},
       0,
       0},
      {"error on an injected Parse: forwarded, rest of the batch skipped, synthesized dropped",
       {Send('P', P, 1), Send('B', C), Send('E', C), Synth("<dropped-1>"), Send('P', P, 1),
        Send('B', C), Send('E', C), Synth("<dropped-3>"), Send('S', C, 4).Left(9).Units(1),
        Rx('E', C, 1, F).Failed(2).Left(1).Units(1), Rx('Z', C, 4, F).Left(0).Units(0)},
       0,
       0},
      {"error on an injected Parse in a proxy batch is swallowed",
       {Send('P', P, 1), Send('B', P), Send('E', P), Send('S', P, 2),
        Rx('E', P, 1, W).Failed(1).Left(1), Rx('Z', P, 2, W)},
       0,
       0},
      {"error on a client Execute: later tagged Parses of the batch count as failed",
       {Send('P', C, 1), Send('B', C), Send('E', C), Send('P', P, 1), Send('B', C), Send('E', C),
        Send('P', C, 1), Synth("<dropped>"), Send('B', C), Send('E', C), Send('S', C, 8),
        Rx('1', C, 1, F).Ok(1), Rx('2', C, 0, F), Rx('D', C, 0, F),
        Rx('E', C, 0, F).Failed(2).Left(1), Rx('Z', C, 8, F)},
       0,
       0},
      {"error on a client Parse fails that Parse itself",
       {Send('P', C, 1), Send('B', C), Send('S', C), Rx('E', C, 1, F).Failed(1).Left(1),
        Rx('Z', C, 0, F)},
       0,
       0},
      {"an error ends skipping at its Sync: the next batch is answered normally",
       {Send('P', C), Send('B', C), Send('E', C), Send('S', C, 1), Send('P', C, 1), Synth("<kept>"),
        Send('B', C), Send('E', C), Send('S', C, 2), Rx('1', C, 0, F),
        Rx('E', C, 0, F).Left(6).Units(2), Rx('Z', C, 1, F).Units(1),
        Rx('1', C, 1, F).Ok(1).Due("<kept>"), Rx('2', C, 0, F), Rx('C', C, 0, F), Rx('Z', C, 2, F)},
       0,
       0},
      {"a synthesized reply before the failing message is still handed out",
       {Send('P', C), Synth("<before>"), Send('B', C), Synth("<after>"), Send('S', C),
        Rx('1', C, 0, F).Due("<before>"), Rx('E', C, 0, F).Left(1), Rx('Z', C, 0, F)},
       0,
       0},
      {"an error on Sync (deferred constraint at commit) completes nothing",
       {Send('P', C, 1), Send('B', C), Send('E', C), Send('S', C, 3), Rx('1', C, 1, F).Ok(1),
        Rx('2', C, 0, F), Rx('C', C, 0, F), Rx('E', C, 3, F).Left(1).Units(1),
        Rx('Z', C, 3, F).Units(0)},
       0,
       0},
      {"Describe statement: ParameterDescription then RowDescription",
       {Send('P', C), DescribeStatement(C), Send('S', C), Rx('1', C, 0, F),
        Rx('t', C, 0, F).Left(2), Rx('T', C, 0, F).Left(1), Rx('Z', C, 0, F)},
       0,
       0},
      {"Describe statement: ParameterDescription then NoData",
       {DescribeStatement(C, 2), Send('S', C), Rx('t', C, 2, F).Left(2), Rx('n', C, 2, F).Left(1),
        Rx('Z', C, 0, F)},
       0,
       0},
      {"Describe of a re-created statement behind an injected Parse",
       {Send('P', P, 1), DescribeStatement(C), Send('S', C), Rx('1', P, 1, W).Ok(1),
        Rx('t', C, 0, F), Rx('T', C, 0, F), Rx('Z', C, 0, F)},
       0,
       0},
      {"Describe statement fails: skipped to the Sync",
       {DescribeStatement(C), Send('B', C), Send('S', C), Rx('E', C, 0, F).Left(1),
        Rx('Z', C, 0, F)},
       0,
       0},
      {"Execute ends with EmptyQueryResponse or PortalSuspended",
       {Send('B', C), Send('E', C, 1), Send('E', C, 2), Send('E', C, 3), Send('S', C),
        Rx('2', C, 0, F), Rx('D', C, 1, F), Rx('s', C, 1, F).Left(3), Rx('D', C, 2, F),
        Rx('C', C, 2, F).Left(2), Rx('I', C, 3, F).Left(1), Rx('Z', C, 0, F)},
       0,
       0},
      {"Execute of COPY TO STDOUT and COPY FROM STDIN",
       {Send('E', C, 1), Send('E', C, 2), Send('S', C), Rx('H', C, 1, F), Rx('d', C, 1, F),
        Rx('d', C, 1, F), Rx('c', C, 1, F).Left(3), Rx('C', C, 1, F).Left(2), Rx('G', C, 2, F),
        Rx('C', C, 2, F).Left(1), Rx('Z', C, 0, F)},
       0,
       0},
      {"Close portal from the client is answered by the server",
       {Send('C', C, 4), Send('S', C), Rx('3', C, 4, F), Rx('Z', C, 0, F)},
       0,
       0},
      {"replies of the wrong kind complete nothing",
       {Send('P', C), Send('B', C), Send('S', C), Rx('2', C, 0, F).Left(3),
        Rx('3', C, 0, F).Left(3), Rx('1', C, 0, F).Left(2), Rx('C', C, 0, F).Left(2),
        Rx('2', C, 0, F).Left(1), Rx('Z', C, 0, F)},
       0,
       0},
      {"notifications during proxy entries are forwarded, notices swallowed",
       {Send('Q', P, 7), Send('P', P, 1), Send('B', C), Send('S', C), Rx('A', P, 7, F),
        Rx('N', P, 7, W), Rx('S', P, 7, W), Rx('Z', P, 7, W), Rx('A', P, 1, F).Left(3),
        Rx('N', P, 1, W), Rx('1', P, 1, W).Ok(1), Rx('A', C, 0, F), Rx('N', C, 0, F),
        Rx('2', C, 0, F), Rx('Z', C, 0, F)},
       0,
       0},
      {"FunctionCall ends a client unit",
       {Send('F', C, 2).Units(1), Rx('V', C, 2, F), Rx('Z', C, 2, F).Units(0)},
       0,
       0},
      {"ErrorResponse inside a Query does not end it",
       {Send('Q', C, 1), Send('P', C), Send('S', C), Rx('C', C, 1, F), Rx('E', C, 1, F).Left(3),
        Rx('Z', C, 1, F).Left(2), Rx('1', C, 0, F), Rx('Z', C, 0, F)},
       0,
       0},
      {"'Z' with unanswered entries before the unit: they count as failed",
       {Send('P', C, 1), Send('P', P, 1), Synth("<never>"), Send('B', C), Send('P', C),
        Send('S', C, 5), Rx('Z', C, 5, F).Failed(2).Left(0).Units(0)},
       0,
       0},
      {"'Z' fallback for a proxy unit is swallowed",
       {Send('P', P, 1), Send('S', P, 6), Send('Q', C), Rx('Z', P, 6, W).Failed(1).Left(1).Units(1),
        Rx('Z', C, 0, F)},
       0,
       0},
      {"unsolicited messages with nothing pending",
       {Unsolicited('A'), Unsolicited('N'), Unsolicited('S'), Unsolicited('E'), Unsolicited('Z'),
        Unsolicited('1'), Unsolicited('2'), Unsolicited('C'), Unsolicited('T')},
       0,
       0},
      {"unsolicited between units, then a new batch",
       {Send('P', C), Send('S', C), Rx('1', C, 0, F), Rx('Z', C, 0, F), Unsolicited('S'),
        Unsolicited('A'), Synth("<1>").Due("<1>"), Send('S', C), Rx('Z', C, 0, F)},
       0,
       0},
      {"extended entries still waiting at the end",
       {Send('P', P, 1), Send('B', C), Send('E', C), Send('S', C), Synth("<x>"),
        Rx('1', P, 1, W).Ok(1), Rx('2', C, 0, F)},
       3,
       1},
  };
  for (const ExtScenario& sc : scenarios) {
    CAPTURE(sc.name);
    ReplyTracker t;
    RunSteps(t, sc.steps);
    CHECK(t.pending() == sc.pending_after);
    CHECK(t.client_pending() == sc.client_pending_after);
    CHECK(t.empty() == (sc.pending_after == 0));
  }
}

TEST_CASE("ReplyTracker: Clear drops synthesized replies, due or queued") {
  ReplyTracker t;
  t.Synthesize("<due>");
  t.Expect('P', Owner::kClient, 1);
  t.Synthesize("<queued>");
  t.Expect('S', Owner::kClient);
  CHECK(t.has_due());
  CHECK(t.pending() == 3);
  CHECK(t.client_pending() == 1);
  t.Clear();
  CHECK(t.empty());
  CHECK_FALSE(t.has_due());
  CHECK(t.pending() == 0);
  CHECK(t.client_pending() == 0);
  std::string out;
  t.TakeDue(&out);
  CHECK(out.empty());
  const ReplyTracker::Decision d = t.OnBackendMessage('1');
  CHECK(d.unsolicited);
  CHECK(d.tagged_parses_ok == 0);
  // Usable again: a new batch starts from scratch.
  RunSteps(t, {Send('P', C, 1), Synth("<1>"), Send('S', C), Rx('1', C, 1, F).Ok(1).Due("<1>"),
               Rx('Z', C, 0, F)});
  CHECK(t.empty());
}

TEST_CASE("ReplyTracker: empty() waits until due replies are taken") {
  ReplyTracker t;
  t.Expect('S', Owner::kProxy);
  t.Synthesize("<r>");
  CHECK_FALSE(t.has_due());
  const ReplyTracker::Decision d = t.OnBackendMessage('Z');
  CHECK(d.unit_done);
  CHECK(d.action == Action::kSwallow);
  CHECK(t.pending() == 0);
  CHECK(t.has_due());
  CHECK_FALSE(t.empty());
  std::string out;
  t.TakeDue(&out);
  CHECK(out == "<r>");
  CHECK(t.empty());
}

// The server keeps skipping until a Sync it may not have received yet when the
// ErrorResponse arrives; the tracker must skip the same messages.
TEST_CASE("ReplyTracker: error before the client's Sync is recorded") {
  // The rest of the client's batch (and its Sync) arrives after the server already
  // failed the Parse the proxy injected: the client must still see the error.
  ReplyTracker t;
  RunSteps(t, {Send('P', P, 1), Send('B', C), Send('E', C), Rx('E', C, 1, F).Failed(1),
               Send('S', C), Rx('Z', C, 0, F)});
  CHECK(t.empty());
}

TEST_CASE("ReplyTracker: Synthesize after an error, before the Sync") {
  // The server sends nothing for messages after the error, so neither may the proxy.
  ReplyTracker t;
  RunSteps(t, {Send('P', C), Rx('E', C, 0, F), Synth("<1>").Due(""), Send('B', C), Send('S', C),
               Rx('Z', C, 0, F)});
  CHECK(t.empty());
}

TEST_CASE("ReplyTracker: a Query between an error and the Sync is skipped") {
  // PostgreSQL ignores every message but Sync while skipping, a simple Query too.
  ReplyTracker t;
  RunSteps(t, {Send('P', C), Send('Q', C, 2), Send('S', C, 3), Rx('E', C, 0, F).Left(1).Units(1),
               Rx('Z', C, 3, F).Left(0).Units(0)});
  CHECK(t.empty());
}

// ---------------------------------------------------------------------------
// Randomized: batches of frontend messages, a model of the server that answers
// them (with random errors), and the replies interleaved with the sends at random
// (a reply never before the message it answers). The tracker's decisions, its
// counts and the synthesized bytes it hands out are checked against the model
// after every step.

struct ModelOp {
  bool synth = false;
  char type = 0;  // frontend message type
  Owner owner = C;
  uint32_t tag = 0;
  char target = 'P';
  std::string bytes;    // synthesized reply
  size_t unit_end = 0;  // index of the Query/Sync/FunctionCall ending this op's unit
};

struct ModelReply {
  char type = 0;
  size_t cause = 0;             // the op this answers
  bool extended_error = false;  // ErrorResponse that makes the server skip to the Sync
  std::vector<size_t> resolves;
  ReplyTracker::Decision want;
};

bool EndsUnitType(char type) { return type == 'Q' || type == 'S' || type == 'F'; }

class RandomSession {
 public:
  explicit RandomSession(uint32_t seed) : rng_(seed) {}

  void Generate() {
    const size_t batches = 1 + Pick(8);
    for (size_t i = 0; i < batches; ++i) GenerateBatch();
    size_t end = ops_.size();  // every batch ends a unit
    for (size_t i = ops_.size(); i-- > 0;) {
      if (!ops_[i].synth && EndsUnitType(ops_[i].type)) end = i;
      ops_[i].unit_end = end;
    }
    Answer();
  }

  void Run() {
    ReplyTracker t;
    std::vector<bool> resolved(ops_.size(), false);
    size_t sent = 0;
    size_t next = 0;
    size_t front = 0;  // first unresolved op
    std::string want_out;
    std::string got_out;
    std::string trace;
    CAPTURE(trace);
    auto check_state = [&]() {
      while (front < sent) {
        if (!resolved[front] && !ops_[front].synth) break;
        if (!resolved[front]) {  // synthesized, everything before it answered
          want_out += ops_[front].bytes;
          resolved[front] = true;
        }
        ++front;
      }
      REQUIRE(t.has_due() == (got_out.size() < want_out.size()));
      t.TakeDue(&got_out);
      REQUIRE(got_out == want_out);
      size_t pending = 0;
      size_t client_pending = 0;
      for (size_t i = 0; i < sent; ++i) {
        if (resolved[i]) continue;
        ++pending;
        if (!ops_[i].synth && ops_[i].owner == C && EndsUnitType(ops_[i].type)) ++client_pending;
      }
      REQUIRE(t.pending() == pending);
      REQUIRE(t.client_pending() == client_pending);
    };
    while (sent < ops_.size() || next < replies_.size()) {
      if (Pick(10) == 0) {  // asynchronous traffic at any time
        const char type = "ANS"[Pick(3)];
        ReplyTracker::Decision want;
        if (front < sent) {
          want.owner = ops_[front].owner;
          want.tag = ops_[front].tag;
          want.action = want.owner == C || type == 'A' ? F : W;
        } else {
          want.unsolicited = true;
        }
        trace += std::string(" <") + type;
        CheckDecision(t.OnBackendMessage(type), want);
        check_state();
        continue;
      }
      bool can_reply = false;
      if (next < replies_.size()) {
        const ModelReply& r = replies_[next];
        // The server may answer the beginning of a batch before the rest is sent, but
        // an error is only delivered once the batch's Sync is known to the tracker
        // (see the known gaps above).
        can_reply = r.cause < sent && (!r.extended_error || ops_[r.cause].unit_end < sent);
      }
      const bool can_send = sent < ops_.size();
      REQUIRE((can_reply || can_send));
      if (can_send && (!can_reply || Pick(2) == 0)) {
        const ModelOp& op = ops_[sent];
        if (op.synth) {
          trace += " +" + op.bytes;
          t.Synthesize(op.bytes);
        } else {
          trace += std::string(" >") + op.type + (op.owner == C ? 'c' : 'p');
          t.Expect(op.type, op.owner, op.tag, op.target);
        }
        ++sent;
      } else {
        const ModelReply& r = replies_[next++];
        trace += std::string(" <") + r.type;
        CheckDecision(t.OnBackendMessage(r.type), r.want);
        for (size_t i : r.resolves) resolved[i] = true;
      }
      check_state();
    }
    REQUIRE(t.empty());
    REQUIRE(t.pending() == 0);
    REQUIRE(t.client_pending() == 0);
    // Every synthesized reply outside an error skip was handed out once, in order.
    std::string all;
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (ops_[i].synth && !dropped_[i]) all += ops_[i].bytes;
    }
    REQUIRE(got_out == all);
  }

  size_t synthesized() const { return synthesized_; }
  size_t dropped() const {
    return static_cast<size_t>(std::count(dropped_.begin(), dropped_.end(), true));
  }
  size_t errors() const { return errors_; }

 private:
  size_t Pick(size_t n) { return static_cast<size_t>(rng_() % n); }
  uint32_t RandomTag() { return static_cast<uint32_t>(Pick(3)); }

  void Push(char type, Owner owner, uint32_t tag, char target = 'P') {
    ModelOp op;
    op.type = type;
    op.owner = owner;
    op.tag = tag;
    op.target = target;
    ops_.push_back(op);
  }
  void PushSynth(char reply) {
    ModelOp op;
    op.synth = true;
    op.bytes = "[" + std::string(1, reply) + std::to_string(++synthesized_) + "]";
    ops_.push_back(op);
  }

  void GenerateBatch() {
    switch (Pick(8)) {
      case 0:
        Push('Q', C, RandomTag());
        return;
      case 1:
        Push(Pick(4) == 0 ? 'F' : 'Q', C, RandomTag());
        return;
      case 2:
        Push('Q', P, RandomTag());  // parameter replay, DISCARD ALL, LSN probe
        return;
      case 3: {  // the proxy's own extended batch
        Push('P', P, RandomTag());
        Push('B', P, 0);
        Push('E', P, 0);
        Push('S', P, RandomTag());
        return;
      }
      default:
        break;
    }
    // A client batch, with what the proxy adds to it.
    const size_t n = 1 + Pick(6);
    for (size_t i = 0; i < n; ++i) {
      switch (Pick(12)) {
        case 0:
          Push('P', C, RandomTag());
          break;
        case 1:
          PushSynth('1');  // the server already has the statement
          break;
        case 2:  // evict one statement, re-create the client's
          Push('C', P, 0);
          Push('P', C, 1);
          break;
        case 3:  // re-create the statement a Bind refers to
          Push('P', P, Pick(3) == 0 ? 0 : 1);
          Push('B', C, RandomTag());
          break;
        case 4:
        case 5:
          Push('B', C, RandomTag());
          break;
        case 6:
          if (Pick(2) == 0) Push('P', P, 1);
          Push('D', C, RandomTag(), 'S');
          break;
        case 7:
          Push('D', C, RandomTag(), 'P');
          break;
        case 8:
        case 9:
          Push('E', C, RandomTag());
          break;
        case 10:
          Push('C', C, RandomTag());
          break;
        default:
          PushSynth('3');  // a Close the proxy keeps to itself
          break;
      }
    }
    Push('S', C, RandomTag());
  }

  // Appends a reply to op `i` that resolves the ops in `resolves` (none, or `i` itself).
  void Reply(size_t i, char type, std::vector<size_t> resolves = {}) {
    const ModelOp& op = ops_[i];
    ModelReply r;
    r.type = type;
    r.cause = i;
    r.want.owner = op.owner;
    r.want.tag = op.tag;
    r.want.action = op.owner == C ? F : W;
    r.want.unit_done = type == 'Z';
    if (!resolves.empty() && op.type == 'P' && op.tag != 0) r.want.tagged_parses_ok = 1;
    r.resolves = std::move(resolves);
    replies_.push_back(std::move(r));
  }

  // An ErrorResponse to extended-protocol op `i`: the server skips everything up
  // to the Sync. Returns the index of the last op skipped.
  size_t Error(size_t i) {
    const ModelOp& op = ops_[i];
    ModelReply r;
    r.type = 'E';
    r.cause = i;
    r.extended_error = true;
    r.want.owner = op.owner == C || ops_[op.unit_end].owner == C ? C : op.owner;
    r.want.action = r.want.owner == C ? F : W;
    r.want.tag = op.tag;
    for (size_t k = i; k < op.unit_end; ++k) {
      r.resolves.push_back(k);
      if (ops_[k].synth) {
        dropped_[k] = true;
      } else if (ops_[k].type == 'P' && ops_[k].tag != 0) {
        ++r.want.tagged_parses_failed;
      }
    }
    replies_.push_back(std::move(r));
    ++errors_;
    return op.unit_end - 1;
  }

  // What a server sends for ops_, and what the tracker must decide for each message.
  void Answer() {
    dropped_.assign(ops_.size(), false);
    for (size_t i = 0; i < ops_.size(); ++i) {
      const ModelOp& op = ops_[i];
      if (op.synth) continue;
      const bool fail = Pick(10) == 0;
      switch (op.type) {
        case 'Q':
          for (size_t s = Pick(3); s > 0; --s) {
            if (Pick(4) == 0) Reply(i, 'N');
            if (Pick(4) == 0) Reply(i, 'S');
            if (Pick(6) == 0) {
              Reply(i, 'E');  // the rest of the Query string is not run
              break;
            }
            if (Pick(2) == 0) {
              Reply(i, 'T');
              for (size_t k = Pick(3); k > 0; --k) Reply(i, 'D');
            }
            Reply(i, Pick(8) == 0 ? 'I' : 'C');
          }
          Reply(i, 'Z', {i});
          break;
        case 'F':
          Reply(i, fail ? 'E' : 'V');
          Reply(i, 'Z', {i});
          break;
        case 'S':
          if (fail && Pick(2) == 0) Reply(i, 'E');  // commit failure
          Reply(i, 'Z', {i});
          break;
        case 'P':
          if (fail) {
            i = Error(i);
          } else {
            Reply(i, '1', {i});
          }
          break;
        case 'B':
          if (fail) {
            i = Error(i);
          } else {
            Reply(i, '2', {i});
          }
          break;
        case 'C':
          Reply(i, '3', {i});
          break;
        case 'D':
          if (fail) {
            i = Error(i);
            break;
          }
          if (op.target == 'S') Reply(i, 't');
          Reply(i, Pick(2) == 0 ? 'T' : 'n', {i});
          break;
        case 'E':
          switch (Pick(4)) {
            case 0:  // COPY TO STDOUT
              Reply(i, 'H');
              for (size_t k = Pick(3); k > 0; --k) Reply(i, 'd');
              Reply(i, 'c');
              break;
            case 1:  // COPY FROM STDIN
              Reply(i, 'G');
              break;
            default:
              for (size_t k = Pick(4); k > 0; --k) Reply(i, 'D');
              break;
          }
          if (Pick(4) == 0) Reply(i, 'N');
          if (fail) {
            i = Error(i);
          } else {
            const char end = "CCCIs"[Pick(5)];  // CommandComplete, Empty, Suspended
            Reply(i, end, {i});
          }
          break;
        default:
          FAIL("unexpected op ", op.type);
      }
    }
  }

  static void CheckDecision(const ReplyTracker::Decision& got, const ReplyTracker::Decision& want) {
    REQUIRE(got.action == want.action);
    REQUIRE(got.owner == want.owner);
    REQUIRE(got.tag == want.tag);
    REQUIRE(got.unit_done == want.unit_done);
    REQUIRE(got.unsolicited == want.unsolicited);
    REQUIRE(got.tagged_parses_ok == want.tagged_parses_ok);
    REQUIRE(got.tagged_parses_failed == want.tagged_parses_failed);
  }

  std::mt19937 rng_;
  std::vector<ModelOp> ops_;
  std::vector<ModelReply> replies_;
  std::vector<bool> dropped_;
  size_t synthesized_ = 0;
  size_t errors_ = 0;
};

TEST_CASE("ReplyTracker: random batches against a model of the server") {
  size_t synthesized = 0;
  size_t dropped = 0;
  size_t errors = 0;
  for (uint32_t seed = 1; seed <= 3000; ++seed) {
    CAPTURE(seed);
    RandomSession session(seed);
    session.Generate();
    session.Run();
    synthesized += session.synthesized();
    dropped += session.dropped();
    errors += session.errors();
  }
  // The generator reaches the interesting paths.
  CHECK(errors > 100);
  CHECK(synthesized > 1000);
  CHECK(dropped > 10);
  CHECK(dropped < synthesized);
}

}  // namespace
}  // namespace pgregion::protocol

namespace pgregion::protocol {
namespace {

// PassesThrough() promises that OnBackendMessage() would forward and change
// nothing: check it against the real thing over random traffic.
TEST_CASE("ReplyTracker: PassesThrough agrees with OnBackendMessage") {
  std::mt19937 rng(20261122);
  const std::string frontend = "PBCDEQSF";
  const std::string backend = "123TDCInsNAEZVtS";
  for (int round = 0; round < 2000; ++round) {
    ReplyTracker t;
    for (int step = 0; step < 12; ++step) {
      if (rng() % 3 != 0) {
        const char type = frontend[rng() % frontend.size()];
        const Owner owner = rng() % 4 == 0 ? Owner::kProxy : Owner::kClient;
        if (rng() % 8 == 0) {
          t.Synthesize("1\0\0\0\4");
        } else {
          (void)t.Expect(type, owner, 0, rng() % 2 == 0 ? 'S' : 'P');
        }
        continue;
      }
      const char type = backend[rng() % backend.size()];
      const bool passes = t.PassesThrough(type);
      const size_t pending = t.pending();
      const size_t client_pending = t.client_pending();
      const bool due = t.has_due();
      const ReplyTracker::Decision d = t.OnBackendMessage(type);
      if (passes) {
        CHECK(d.action == Action::kForward);
        CHECK(d.owner == Owner::kClient);
        CHECK_FALSE(d.unit_done);
        CHECK_FALSE(d.unsolicited);
        CHECK(d.tagged_parses_ok == 0);
        CHECK(d.tagged_parses_failed == 0);
        CHECK(t.pending() == pending);
        CHECK(t.client_pending() == client_pending);
        CHECK(t.has_due() == due);
      }
    }
  }
}

}  // namespace
}  // namespace pgregion::protocol
