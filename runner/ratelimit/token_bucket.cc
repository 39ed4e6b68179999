#include "runner/ratelimit/token_bucket.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace nanobatch::ratelimit {
namespace {

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

Duration FromSeconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

}  // namespace

TokenBucket::TokenBucket(double rate, double burst, Clock::time_point now, double recovery_s)
    : configured_rate_(rate),
      burst_(std::max(1.0, burst)),
      recovery_per_s_(rate / std::max(recovery_s, 1e-3)),
      // Never slower than one request a minute, nor below 1/64 of the configured rate.
      min_rate_(std::min(rate, std::max(rate / 64, 1.0 / 60))),
      current_rate_(rate),
      tokens_(std::max(1.0, burst)),
      last_(now),
      blocked_until_(now) {}

double TokenBucket::Capacity() const {
  // While slowed down, the burst shrinks with the rate, so a recovering client does not fire a
  // full burst at a server that just refused it.
  return std::max(1.0, burst_ * current_rate_ / configured_rate_);
}

void TokenBucket::Refill(Clock::time_point now) {
  if (now <= last_) return;
  const double elapsed = Seconds(now - last_);
  // Recovery and refill are both linear in time; integrating the refill over the recovering rate
  // exactly is not worth it, the rate at the end of the step is used (at most one step early).
  current_rate_ = std::min(configured_rate_, current_rate_ + recovery_per_s_ * elapsed);
  if (now > blocked_until_) {
    const double usable = Seconds(now - std::max(last_, blocked_until_));
    tokens_ = std::min(Capacity(), tokens_ + usable * current_rate_);
  }
  last_ = now;
}

Duration TokenBucket::TimeUntilAvailable(Clock::time_point now) {
  Refill(now);
  if (now < blocked_until_) {
    return (blocked_until_ - now) + FromSeconds(std::max(0.0, 1 - tokens_) / current_rate_);
  }
  if (tokens_ >= 1) return Duration::zero();
  // Round up so that a caller who sleeps exactly this long finds the token there.
  return FromSeconds((1 - tokens_) / current_rate_) + std::chrono::microseconds(1);
}

void TokenBucket::Take(Clock::time_point now) {
  Refill(now);
  if (tokens_ < 1 || now < blocked_until_) {
    // Taking a token that is not there would break the rate promise; this is a caller bug.
    std::fprintf(stderr, "fatal: TokenBucket::Take without a token\n");
    std::abort();
  }
  tokens_ -= 1;
}

void TokenBucket::Reconfigure(double rate, double burst, Clock::time_point now) {
  Refill(now);
  const double share = current_rate_ / configured_rate_;
  const double recovery_s = configured_rate_ / recovery_per_s_;
  configured_rate_ = rate;
  burst_ = std::max(1.0, burst);
  recovery_per_s_ = rate / std::max(recovery_s, 1e-3);
  min_rate_ = std::min(rate, std::max(rate / 64, 1.0 / 60));
  current_rate_ = std::max(min_rate_, rate * share);
  tokens_ = std::min(tokens_, Capacity());
}

void TokenBucket::OnRateLimited(Clock::time_point now, std::optional<Duration> retry_after) {
  Refill(now);
  current_rate_ = std::max(min_rate_, current_rate_ / 2);
  tokens_ = 0;
  const Duration pause = retry_after ? *retry_after : FromSeconds(1 / current_rate_);
  blocked_until_ = std::max(blocked_until_, now + pause);
}

}  // namespace nanobatch::ratelimit
