// Pure pieces of admission control (issue 16): the pre-auth budget, the log
// rate limiter and the decoder's authentication-phase limit.

#include <doctest/doctest.h>

#include <string>

#include "protocol/frame_decoder.h"
#include "proxy/net/log.h"
#include "proxy/net/log_rate_limiter.h"
#include "proxy/app/pre_auth_budget.h"

namespace pgregion::proxy {
namespace {

namespace p = ::pgregion::protocol;

std::string Header(char type, uint32_t length) {
  std::string out(1, type);
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(length >> shift));
  return out;
}

TEST_CASE("admission: token bucket allows a burst, then the refill rate") {
  TokenBucket b(/*rate_per_s=*/2, /*burst=*/3);
  CHECK(b.Take(1000));
  CHECK(b.Take(1000));
  CHECK(b.Take(1000));
  CHECK_FALSE(b.Take(1000));
  CHECK_FALSE(b.Take(1400));  // 0.8 token
  CHECK(b.Take(1500));        // 1 token
  CHECK_FALSE(b.Take(1500));
  // Never more than the burst, however long it was idle.
  int taken = 0;
  for (int i = 0; i < 10; ++i) taken += b.Take(1'000'000) ? 1 : 0;
  CHECK(taken == 3);
  // A clock that goes backwards adds nothing.
  CHECK_FALSE(b.Take(5));
}

TEST_CASE("admission: the log rate limiter counts and reports what it suppressed") {
  LogRateLimiter limiter;
  int allowed = 0;
  for (int i = 0; i < 2000; ++i) {
    allowed += limiter.Allow(UnauthEvent::kCancelIgnored, 10'000) ? 1 : 0;
  }
  CHECK(allowed == static_cast<int>(LogRateLimiter::kBurst));
  // Kinds are independent.
  CHECK(limiter.Allow(UnauthEvent::kAuthFailed, 10'000));
  std::string sink;
  SetLogSinkForTest(&sink);
  limiter.ReportSuppressed();
  limiter.ReportSuppressed();  // nothing new: no line
  SetLogSinkForTest(nullptr);
  CHECK(sink.find("log_suppressed") != std::string::npos);
  CHECK(sink.find("event=cancel_ignored") != std::string::npos);
  CHECK(sink.find("lines=1990") != std::string::npos);
  CHECK(sink.find("auth_failed") == std::string::npos);
  CHECK(sink.find('\n') == sink.size() - 1);  // one line
  CHECK(limiter.TakeSuppressed(UnauthEvent::kCancelIgnored) == 0);
  // One more line a second afterwards.
  CHECK(limiter.Allow(UnauthEvent::kCancelIgnored, 11'000));
  CHECK_FALSE(limiter.Allow(UnauthEvent::kCancelIgnored, 11'000));
}

TEST_CASE("admission: pre-auth budget keeps accept order and finds the oldest match") {
  PreAuthBudget budget(3);
  int a = 0, b = 0, c = 0, d = 0;
  CHECK_FALSE(budget.full());
  budget.Add(&a);
  budget.Add(&b);
  budget.Add(&b);  // twice: once
  CHECK(budget.size() == 2);
  budget.Add(&c);
  CHECK(budget.full());
  CHECK(budget.OldestMatching([](const void*) { return true; }) == &a);
  CHECK(budget.OldestMatching([&](const void* x) { return x != &a; }) == &b);
  CHECK(budget.OldestMatching([](const void*) { return false; }) == nullptr);
  budget.Remove(&a);
  budget.Remove(&d);  // absent: ignored
  CHECK_FALSE(budget.full());
  CHECK_FALSE(budget.contains(&a));
  budget.Add(&d);
  CHECK(budget.OldestMatching([](const void*) { return true; }) == &b);
  budget.set_limit(10);
  CHECK_FALSE(budget.full());
  budget.Remove(&b);
  budget.Remove(&c);
  budget.Remove(&d);
  CHECK(budget.size() == 0);
}

TEST_CASE("admission: the decoder refuses an oversized auth message before buffering it") {
  p::MessageDecoder decoder(p::kMaxAuthMessageLength, 64 * 1024);
  // Only the header of a 48 MiB password message: refused at once.
  p::DecodeResult r = decoder.Next(Header('p', 48u << 20));
  CHECK(r.status == p::DecodeStatus::kError);
  // PostgreSQL's limit itself is accepted.
  std::string ok = Header('p', p::kMaxAuthMessageLength) +
                   std::string(p::kMaxAuthMessageLength - 4, 'x');
  r = decoder.Next(ok);
  REQUIRE(r.status == p::DecodeStatus::kFrame);
  CHECK(r.consumed == ok.size());
  CHECK(decoder.Next(Header('p', p::kMaxAuthMessageLength + 1)).status ==
        p::DecodeStatus::kError);
  // After login the configured limit applies.
  decoder.set_max_message_bytes(64u << 20);
  CHECK(decoder.max_message_bytes() == (64u << 20));
  CHECK(decoder.Next(Header('Q', 48u << 20)).status == p::DecodeStatus::kNeedMore);
}

}  // namespace
}  // namespace pgregion::proxy
