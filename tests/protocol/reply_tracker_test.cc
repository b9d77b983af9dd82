#include "protocol/reply_tracker.h"

#include <doctest/doctest.h>

#include <string>
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

}  // namespace
}  // namespace pgregion::protocol
