#include <doctest/doctest.h>

#include <chrono>
#include <deque>

#include "runner/ratelimit/backoff.h"
#include "runner/ratelimit/token_bucket.h"

namespace nanobatch::ratelimit {
namespace {

using namespace std::chrono_literals;

// Drives the bucket as a greedy client would (take whenever allowed) over simulated time and
// returns the busiest 1-second window it produced.
std::size_t GreedyMaxPerSecond(TokenBucket& bucket, Clock::time_point start, Duration length) {
  std::deque<Clock::time_point> window;
  std::size_t max = 0;
  Clock::time_point now = start;
  while (now < start + length) {
    const Duration wait = bucket.TimeUntilAvailable(now);
    if (wait > Duration::zero()) {
      now += wait;
      continue;
    }
    bucket.Take(now);
    window.push_back(now);
    while (now - window.front() >= 1s) window.pop_front();
    max = std::max(max, window.size());
  }
  return max;
}

TEST_CASE("token bucket: a burst, then exactly the rate") {
  const auto t0 = Clock::time_point{} + 1000s;
  TokenBucket bucket(5, 3, t0);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(bucket.TimeUntilAvailable(t0) == Duration::zero());
    bucket.Take(t0);
  }
  const Duration wait = bucket.TimeUntilAvailable(t0);
  CHECK(wait > 199ms);
  CHECK(wait < 201ms);
  CHECK(bucket.TimeUntilAvailable(t0 + wait) == Duration::zero());
}

TEST_CASE("token bucket: no 1-second window holds more than rate + burst") {
  const auto t0 = Clock::time_point{} + 1000s;
  TokenBucket bucket(10, 4, t0);
  CHECK(GreedyMaxPerSecond(bucket, t0, 30s) <= 14);
  TokenBucket one(1, 1, t0);
  CHECK(GreedyMaxPerSecond(one, t0, 30s) <= 2);
}

TEST_CASE("token bucket: 429 halves the rate, honours Retry-After, then recovers") {
  const auto t0 = Clock::time_point{} + 1000s;
  TokenBucket bucket(8, 4, t0, /*recovery_s=*/10);
  bucket.OnRateLimited(t0, 2s);
  CHECK(bucket.current_rate() == doctest::Approx(4));
  CHECK(bucket.TimeUntilAvailable(t0 + 1s) > 1s);  // still inside Retry-After
  // Nothing was granted during the pause.
  CHECK(bucket.TimeUntilAvailable(t0 + 1999ms) > Duration::zero());
  bucket.OnRateLimited(t0 + 1s, std::nullopt);
  CHECK(bucket.current_rate() < 4);
  // Fully recovered well after recovery_s without another 429.
  bucket.TimeUntilAvailable(t0 + 60s);
  CHECK(bucket.current_rate() == doctest::Approx(8));
}

TEST_CASE("token bucket: the rate never collapses to zero under a 429 storm") {
  const auto t0 = Clock::time_point{} + 1000s;
  TokenBucket bucket(2, 2, t0);
  for (int i = 0; i < 100; ++i) bucket.OnRateLimited(t0, std::nullopt);
  CHECK(bucket.current_rate() > 0);
  CHECK(bucket.current_rate() >= 1.0 / 60 - 1e-9);
}

TEST_CASE("backoff: full jitter stays within [0, min(cap, base * 2^n)]") {
  Backoff backoff(std::chrono::duration<double>(0.5), std::chrono::duration<double>(8), 42);
  double max_seen = 0;
  for (int i = 0; i < 2000; ++i) {
    const double first = backoff.Delay(0).count();
    CHECK(first >= 0);
    CHECK(first <= 0.5);
    const double late = backoff.Delay(30).count();
    CHECK(late <= 8);
    max_seen = std::max(max_seen, late);
  }
  CHECK(max_seen > 4);  // it does spread up to the cap
}

TEST_CASE("retry budget: retries are bounded by a share of requests") {
  RetryBudget budget(0.25, 2);
  CHECK(budget.TryWithdraw());
  CHECK(budget.TryWithdraw());
  CHECK_FALSE(budget.TryWithdraw());
  for (int i = 0; i < 4; ++i) budget.OnRequest();
  CHECK(budget.TryWithdraw());
  CHECK_FALSE(budget.TryWithdraw());
}

}  // namespace
}  // namespace nanobatch::ratelimit
