#pragma once
// TokenBucket: the pure arithmetic of the client-side rate limit over every API request
// (submits, polls, credit queries), with adaptive slow-down on 429.
//
// No clock is read here: callers pass `now`, so tests are exact and never sleep. The waiting
// itself is RateLimiter's job (rate_limiter.h).
//
// On 429 rate_limit_exceeded the rate is halved (multiplicative decrease, floored), the bucket is
// emptied and nothing is granted before Retry-After; the rate then recovers linearly, reaching
// the configured rate again after `recovery_s` seconds without another 429.
//
// Example:
//   TokenBucket bucket(/*rate=*/5, /*burst=*/2, now);
//   if (bucket.TimeUntilAvailable(now) == Duration::zero()) bucket.Take(now);

#include <chrono>
#include <optional>

namespace nanobatch::ratelimit {

using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;

class TokenBucket {
 public:
  TokenBucket(double rate, double burst, Clock::time_point now, double recovery_s = 30.0);

  // Zero when a token can be taken now; otherwise how long until one can.
  Duration TimeUntilAvailable(Clock::time_point now);
  // Takes one token. Requires TimeUntilAvailable(now) == 0.
  void Take(Clock::time_point now);

  // The server said 429 rate_limit_exceeded.
  void OnRateLimited(Clock::time_point now, std::optional<Duration> retry_after);
  // A new configured rate and burst (serve's SIGHUP reload), in force from `now`: tokens earned
  // so far are kept up to the new burst; a slow-down after a 429 keeps its share of the rate.
  void Reconfigure(double rate, double burst, Clock::time_point now);
  double tokens() const { return tokens_; }
  // Nothing is granted before this (a Retry-After, or the slow-down after a 429).
  Clock::time_point blocked_until() const { return blocked_until_; }

  double current_rate() const { return current_rate_; }
  double configured_rate() const { return configured_rate_; }

 private:
  void Refill(Clock::time_point now);
  double Capacity() const;

  double configured_rate_;
  double burst_;
  double recovery_per_s_;  // rate regained per second after a decrease
  double min_rate_;
  double current_rate_;
  double tokens_;
  Clock::time_point last_;
  Clock::time_point blocked_until_;
};

}  // namespace nanobatch::ratelimit
