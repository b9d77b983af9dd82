#include "proxy/net/log_rate_limiter.h"

#include <algorithm>

#include "proxy/net/log.h"

namespace pgregion::proxy {

bool TokenBucket::Take(uint64_t now_ms) {
  if (!started_) {
    started_ = true;
    last_ms_ = now_ms;
  }
  if (now_ms > last_ms_) {
    tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_per_ms_);
    last_ms_ = now_ms;
  }
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

std::string_view UnauthEventName(UnauthEvent event) {
  switch (event) {
    case UnauthEvent::kCancelIgnored:
      return "cancel_ignored";
    case UnauthEvent::kAuthFailed:
      return "auth_failed";
    case UnauthEvent::kPreAuthFull:
      return "pre_auth_full";
    case UnauthEvent::kCount:
      break;
  }
  return "unknown";
}

LogRateLimiter::LogRateLimiter() = default;

bool LogRateLimiter::Allow(UnauthEvent event, uint64_t now_ms) {
  Kind& k = kinds_[static_cast<size_t>(event)];
  if (k.bucket.Take(now_ms)) return true;
  ++k.suppressed;
  return false;
}

uint64_t LogRateLimiter::TakeSuppressed(UnauthEvent event) {
  Kind& k = kinds_[static_cast<size_t>(event)];
  uint64_t n = k.suppressed;
  k.suppressed = 0;
  return n;
}

void LogRateLimiter::ReportSuppressed() {
  for (size_t i = 0; i < kKinds; ++i) {
    auto event = static_cast<UnauthEvent>(i);
    uint64_t n = TakeSuppressed(event);
    if (n == 0) continue;
    LogInfo("log_suppressed").Kv("event", UnauthEventName(event)).Kv("lines", n);
  }
}

}  // namespace pgregion::proxy
