#pragma once
// Retry timing: exponential backoff with full jitter (delay uniform in [0, min(cap, base·2^n)]),
// which spreads retries of many clients instead of synchronising them, and a retry budget that
// keeps retries a bounded share of all requests, so a broken server is not hammered.
//
// Example:
//   Backoff backoff(0.5s, 60s, seed);
//   auto delay = backoff.Delay(attempt);   // attempt 0 for the first retry

#include <chrono>
#include <cstdint>
#include <random>

namespace nanobatch::ratelimit {

class Backoff {
 public:
  Backoff(std::chrono::duration<double> base, std::chrono::duration<double> cap,
          std::uint64_t seed);
  std::chrono::duration<double> Delay(unsigned attempt);
  // A value in [1 - spread, 1 + spread], to jitter poll intervals.
  double Jitter(double spread);

 private:
  double base_s_;
  double cap_s_;
  std::mt19937_64 random_;
};

// Retries may be at most `ratio` of requests, plus a small reserve so that a quiet client can
// still retry. Pure counting; the caller decides what an exhausted budget means (it waits).
class RetryBudget {
 public:
  explicit RetryBudget(double ratio = 0.2, double reserve = 10);
  void OnRequest();
  // True (and one retry withdrawn) if a retry is allowed now.
  bool TryWithdraw();
  double balance() const { return balance_; }

 private:
  double ratio_;
  double reserve_;
  double balance_;
};

}  // namespace nanobatch::ratelimit
