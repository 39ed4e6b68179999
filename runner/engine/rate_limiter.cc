#include "runner/engine/rate_limiter.h"

namespace nanobatch::engine {

RateLimiter::RateLimiter(boost::asio::any_io_executor executor, double rate, double burst)
    : executor_(executor),
      bucket_(rate, burst, ratelimit::Clock::now()),
      turn_(executor, 1),
      closed_(executor) {}

boost::asio::awaitable<bool> RateLimiter::Acquire(util::StopSignal* stop) {
  if (is_closed_ || !co_await turn_.Acquire(stop)) co_return false;
  while (true) {
    const auto now = ratelimit::Clock::now();
    const auto wait = bucket_.TimeUntilAvailable(now);
    if (wait == ratelimit::Duration::zero()) {
      bucket_.Take(now);
      break;
    }
    // A 429 seen meanwhile may lengthen the wait: recompute after every wake-up. The one in
    // line sleeps; a stop of its own kind wakes it at once and passes the turn on.
    const bool stopped = stop != nullptr ? co_await stop->SleepFor(wait) : false;
    if (stopped || (stop == nullptr && co_await closed_.WaitFor(wait)) || is_closed_) {
      turn_.Release();
      co_return false;
    }
  }
  turn_.Release();
  co_return true;
}

void RateLimiter::OnRateLimited(std::optional<double> retry_after_s) {
  std::optional<ratelimit::Duration> pause;
  if (retry_after_s) {
    pause = std::chrono::duration_cast<ratelimit::Duration>(
        std::chrono::duration<double>(*retry_after_s));
  }
  bucket_.OnRateLimited(ratelimit::Clock::now(), pause);
}

void RateLimiter::Close() {
  is_closed_ = true;
  turn_.Close();
  closed_.Notify();
}

}  // namespace nanobatch::engine
