// Fuzz target: routing::RywToken and routing::Lsn text forms.
//
// Properties: parsing arbitrary text never crashes; whatever parses formats
// back to text that parses to the same token (and the same text); a token built
// from fuzzed fields survives ToString/Parse; Max is commutative and not below
// either input of the same cluster.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.h"
#include "routing/lsn.h"
#include "routing/ryw_token.h"

namespace {

using pgregion::fuzz::Check;
using pgregion::routing::Lsn;
using pgregion::routing::RywToken;

bool Same(const RywToken& a, const RywToken& b) {
  return a.system_identifier == b.system_identifier && a.timeline == b.timeline && a.lsn == b.lsn;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  RywToken built;
  built.system_identifier = fdp.ConsumeIntegral<uint64_t>();
  built.timeline = fdp.ConsumeIntegral<uint32_t>();
  built.lsn = Lsn(fdp.ConsumeIntegral<uint64_t>());
  RywToken other = built;
  other.timeline = fdp.ConsumeIntegral<uint32_t>();
  other.lsn = Lsn(fdp.ConsumeIntegral<uint64_t>());
  const std::string text = fdp.ConsumeRemainingBytesAsString();

  if (auto t = RywToken::Parse(text); t.ok()) {
    const std::string formatted = t->ToString();
    auto again = RywToken::Parse(formatted);
    Check(again.ok() && Same(*again, *t), "parsed token does not survive ToString/Parse");
    Check(again->ToString() == formatted, "token text is not stable");
  }
  if (built.valid()) {
    auto parsed = RywToken::Parse(built.ToString());
    if (parsed.ok()) Check(Same(*parsed, built), "built token changed through ToString/Parse");
  }
  const RywToken m1 = RywToken::Max(built, other), m2 = RywToken::Max(other, built);
  // With both tokens invalid Max returns either one; that is harmless.
  if (built.valid() || other.valid()) Check(Same(m1, m2), "Max is not commutative");
  Check(m1.lsn >= built.lsn && m1.lsn >= other.lsn, "Max is below an input");

  if (auto l = Lsn::Parse(text); l.ok()) {
    auto again = Lsn::Parse(l->ToString());
    Check(again.ok() && *again == *l, "LSN ToString/Parse round trip");
  }
  auto l2 = Lsn::Parse(built.lsn.ToString());
  Check(l2.ok() && *l2 == built.lsn, "LSN from value ToString/Parse round trip");
  return 0;
}
