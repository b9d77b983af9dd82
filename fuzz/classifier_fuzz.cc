// Fuzz target: routing::StatementClassifier's cache (issue 16).
//
// Input: SQL text (capped at 8 KiB). Property: the cache never changes a
// routing decision. One cached classifier classifies the text (a miss), the
// text again (a hit) and a literal-changed variant of it (a hit when the
// variant has the same normalized key); every result must match
// ClassifyUncached of the same text on a fresh classifier in the fields the
// router uses (write, parse_error, too_complex, the unit flags and each
// statement's kind, reason, transaction control, access and events).
// A text containing a NUL byte is split there: the part after it is also
// classified through the same cache, and compared the same way (the fuzzer
// can find unrelated texts that share a key).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "fuzz/literal_variant.h"
#include "routing/statement_classifier.h"

namespace {

using pgregion::fuzz::Check;
using namespace pgregion::routing;

constexpr size_t kMaxInput = 8 * 1024;

void CheckSame(const Classification& cached, const Classification& fresh) {
  Check(cached.write == fresh.write, "cached write != uncached write");
  Check(cached.parse_error == fresh.parse_error, "cached parse_error != uncached");
  Check(cached.too_complex == fresh.too_complex, "cached too_complex != uncached");
  Check(cached.transaction_control == fresh.transaction_control, "transaction_control differs");
  Check(cached.session_events == fresh.session_events, "session_events differs");
  Check(cached.proxy_handled == fresh.proxy_handled, "proxy_handled differs");
  Check(cached.mixed_proxy == fresh.mixed_proxy, "mixed_proxy differs");
  Check(cached.copy_in == fresh.copy_in, "copy_in differs");
  Check(cached.statements.size() == fresh.statements.size(), "statement count differs");
  for (size_t i = 0; i < cached.statements.size(); ++i) {
    const StatementInfo& a = cached.statements[i];
    const StatementInfo& b = fresh.statements[i];
    Check(a.kind == b.kind, "statement kind differs");
    Check(a.write == b.write, "statement write differs");
    Check(a.reason == b.reason, "statement reason differs");
    Check(a.parse_error == b.parse_error, "statement parse_error differs");
    Check(a.proxy_handled == b.proxy_handled, "statement proxy_handled differs");
    Check(a.set_local == b.set_local, "statement set_local differs");
    Check(a.copy_in == b.copy_in, "statement copy_in differs");
    Check(a.untracked_session_change == b.untracked_session_change, "untracked change differs");
    Check(a.txn == b.txn, "statement txn differs");
    Check(a.access == b.access, "statement access differs");
    Check(a.chain == b.chain, "statement chain differs");
    Check(a.default_access == b.default_access, "statement default_access differs");
    Check(a.function == b.function, "statement function differs");
    Check(a.execute_name == b.execute_name, "statement execute_name differs");
    Check(a.events == b.events, "statement events differ");
  }
}

Classification Fresh(std::string_view sql) {
  StatementClassifier fresh(ClassifierOptions{});
  return fresh.ClassifyUncached(sql);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) size = kMaxInput;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  const std::string variant = pgregion::fuzz::LiteralVariant(text, pgregion::fuzz::VariantRot(input));
  Check(variant.size() == text.size(), "variant changed the length");

  StatementClassifier cached(ClassifierOptions{});
  const Classification fresh = Fresh(text);
  CheckSame(*cached.Classify(text), fresh);  // miss
  ClassifyResult again = cached.Classify(text);  // hit when cacheable
  CheckSame(*again, fresh);
  if (fresh.parse_error) Check(!again.cache_hit, "a parse error was cached");
  if (fresh.too_complex) Check(!again.cache_hit, "a too_complex result was cached");

  if (SqlNormalizer::Key(variant) == SqlNormalizer::Key(text)) {
    CheckSame(*cached.Classify(variant), Fresh(variant));
  }
  if (nul != std::string_view::npos) {
    const std::string_view other = input.substr(nul + 1);
    const std::string_view other_text = other.substr(0, other.find('\0'));
    CheckSame(*cached.Classify(other_text), Fresh(other_text));
  }
  return 0;
}
