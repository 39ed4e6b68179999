#include "runner/ratelimit/backoff.h"

#include <algorithm>
#include <cmath>

namespace nanobatch::ratelimit {

Backoff::Backoff(std::chrono::duration<double> base, std::chrono::duration<double> cap,
                 std::uint64_t seed)
    : base_s_(base.count()), cap_s_(cap.count()), random_(seed) {}

std::chrono::duration<double> Backoff::Delay(unsigned attempt) {
  const double ceiling =
      std::min(cap_s_, base_s_ * std::ldexp(1.0, static_cast<int>(std::min(attempt, 60u))));
  return std::chrono::duration<double>(std::uniform_real_distribution<double>(0, ceiling)(random_));
}

double Backoff::Jitter(double spread) {
  return std::uniform_real_distribution<double>(1 - spread, 1 + spread)(random_);
}

RetryBudget::RetryBudget(double ratio, double reserve)
    : ratio_(ratio), reserve_(reserve), balance_(reserve) {}

void RetryBudget::OnRequest() { balance_ = std::min(reserve_ * 100, balance_ + ratio_); }

bool RetryBudget::TryWithdraw() {
  if (balance_ < 1) return false;
  balance_ -= 1;
  return true;
}

}  // namespace nanobatch::ratelimit
