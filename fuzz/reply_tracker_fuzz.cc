// Fuzz target: protocol::ReplyTracker under arbitrary sequences of expected
// frontend messages, synthesized replies and backend messages.
//
// Properties: no crash; the counters stay consistent (client units pending
// never exceed entries pending; empty() means nothing pending or due);
// TakeDue drains everything due; when PassesThrough(type) says a message
// changes nothing, OnBackendMessage(type) indeed forwards it to the client and
// leaves the state as it was.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.h"
#include "protocol/reply_tracker.h"

namespace {

using pgregion::fuzz::Check;
using pgregion::protocol::ReplyTracker;

constexpr char kFrontend[] = {'P', 'B', 'C', 'D', 'E', 'Q', 'S', 'F'};
// Backend message types, plus one the tracker has never heard of.
constexpr char kBackend[] = {'1', '2', '3', 'C', 'D', 'E', 'I', 'n', 'N', 'A', 'S', 'K', 'Z',
                             'T', 't', 's', 'G', 'H', 'W', 'd', 'c', 'V', 'R', 'v', '?'};

void CheckInvariants(const ReplyTracker& t) {
  Check(t.client_pending() <= t.pending(), "client_pending exceeds pending");
  Check(t.empty() == (t.pending() == 0 && !t.has_due()), "empty() disagrees with pending/due");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  ReplyTracker t;
  for (int step = 0; step < 512 && fdp.remaining_bytes() > 0; ++step) {
    switch (fdp.ConsumeIntegralInRange<int>(0, 5)) {
      case 0: {
        const char type = fdp.PickValueInArray(kFrontend);
        const auto owner = fdp.ConsumeBool() ? ReplyTracker::Owner::kClient : ReplyTracker::Owner::kProxy;
        const uint32_t tag = fdp.ConsumeIntegralInRange<uint32_t>(0, 3);
        const char target = fdp.ConsumeBool() ? 'S' : 'P';
        const size_t before = t.pending();
        const bool recorded = t.Expect(type, owner, tag, target);
        Check(recorded ? t.pending() == before + 1 : t.pending() == before,
              "Expect changed pending by the wrong amount");
        break;
      }
      case 1:
        t.Synthesize(fdp.ConsumeRandomLengthString(16));
        break;
      case 2:
      case 3: {
        const char type = fdp.PickValueInArray(kBackend);
        const bool passes = t.PassesThrough(type);
        const size_t pending = t.pending(), client_pending = t.client_pending();
        const bool skipping = t.skipping(), due = t.has_due();
        const auto d = t.OnBackendMessage(type);
        if (passes) {
          Check(d.action == ReplyTracker::Action::kForward && d.owner == ReplyTracker::Owner::kClient &&
                    !d.unit_done && t.pending() == pending && t.client_pending() == client_pending &&
                    t.skipping() == skipping && t.has_due() == due,
                "PassesThrough message changed the tracker");
        }
        if (d.unit_done) Check(type == 'Z', "unit_done without ReadyForQuery");
        break;
      }
      case 4: {
        std::string out;
        t.TakeDue(&out);
        Check(!t.has_due(), "TakeDue left replies due");
        break;
      }
      case 5:
        if (fdp.ConsumeIntegralInRange<int>(0, 15) == 0) {
          t.Clear();
          Check(t.empty() && t.client_pending() == 0 && !t.skipping(), "Clear left state behind");
        }
        break;
    }
    CheckInvariants(t);
  }
  return 0;
}
