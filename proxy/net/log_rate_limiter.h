// Rate limits for log lines that anyone who can reach the client port can
// cause without logging in (a CancelRequest with a random key, a failed
// login): without a limit an attacker turns a few packets into unbounded log
// volume. One token bucket per event kind, never per client address (that
// would make the limiter's own memory attacker-controlled); lines over the
// limit are counted and reported by a periodic "log_suppressed" line.
//
// Pure: the caller passes the time. Loop thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgregion::proxy {

// Refills `rate_per_s` tokens a second up to `burst`; starts full.
class TokenBucket {
 public:
  TokenBucket(double rate_per_s, double burst)
      : rate_per_ms_(rate_per_s / 1000.0), burst_(burst), tokens_(burst) {}

  // Takes one token if there is one (after refilling up to `now_ms`).
  bool Take(uint64_t now_ms);

 private:
  double rate_per_ms_;
  double burst_;
  double tokens_;
  uint64_t last_ms_ = 0;
  bool started_ = false;
};

enum class UnauthEvent : uint8_t { kCancelIgnored, kAuthFailed, kPreAuthFull, kCount };

std::string_view UnauthEventName(UnauthEvent event);

class LogRateLimiter {
 public:
  // Lines each kind may write in a burst, and a second in the long run.
  static constexpr double kBurst = 10;
  static constexpr double kPerSecond = 1;

  LogRateLimiter();

  // True: write the line. False: it is counted as suppressed.
  bool Allow(UnauthEvent event, uint64_t now_ms);
  // Lines of `event` suppressed since the last call (and resets the count).
  uint64_t TakeSuppressed(UnauthEvent event);

  // Writes one "log_suppressed" line per kind that suppressed lines since the
  // last call (from a periodic timer).
  void ReportSuppressed();

 private:
  static constexpr size_t kKinds = static_cast<size_t>(UnauthEvent::kCount);
  struct Kind {
    TokenBucket bucket{kPerSecond, kBurst};
    uint64_t suppressed = 0;
  };
  std::array<Kind, kKinds> kinds_;
};

}  // namespace pgregion::proxy
