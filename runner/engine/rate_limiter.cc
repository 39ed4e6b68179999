#include "runner/engine/rate_limiter.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <string>

#include "runner/util/log.h"

namespace nanobatch::engine {

double SendBurst(double rate, double burst) {
  return std::max(1.0, burst - rate * kPathJitterHeadroomS);
}

RateLimiter::RateLimiter(boost::asio::any_io_executor executor, double rate, double burst)
    : executor_(executor),
      bucket_(rate, burst, ratelimit::Clock::now()),
      sends_(rate, SendBurst(rate, burst), ratelimit::Clock::now()),
      turn_(executor, 1) {}

boost::asio::awaitable<bool> RateLimiter::Acquire(util::StopSignal* stop, bool pace_now) {
  if (is_closed_ || !co_await turn_.Acquire(stop)) co_return false;
  while (true) {
    const auto now = ratelimit::Clock::now();
    auto wait = bucket_.TimeUntilAvailable(now);
    if (pace_now) wait = std::max(wait, sends_.TimeUntilAvailable(now));
    if (wait == ratelimit::Duration::zero()) {
      bucket_.Take(now);
      if (pace_now) sends_.Take(now);
      break;
    }
    // A 429 or a reload seen meanwhile changes the wait: recompute after every wake-up. The one
    // in line sleeps on a timer that a reload or Close() cancels; a stop of its own kind wakes it
    // at once and passes the turn on.
    boost::asio::steady_timer timer(executor_, wait);
    sleeping_ = &timer;
    bool stopped = false;
    if (stop != nullptr) {
      stopped = co_await stop->SleepOn(timer);
    } else {
      co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    sleeping_ = nullptr;
    if (stopped || is_closed_) {
      turn_.Release();
      co_return false;
    }
  }
  turn_.Release();
  co_return true;
}

boost::asio::awaitable<bool> RateLimiter::Pace(util::StopSignal* stop) {
  while (!is_closed_) {
    const auto now = ratelimit::Clock::now();
    const auto wait = sends_.TimeUntilAvailable(now);
    if (wait == ratelimit::Duration::zero()) {
      sends_.Take(now);
      co_return true;
    }
    // Short (the spread of one commit group) and rare: each waiter sleeps on its own timer.
    boost::asio::steady_timer timer(executor_, wait);
    if (stop != nullptr) {
      if (co_await stop->SleepOn(timer)) co_return false;
    } else {
      co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
  }
  co_return false;
}

void RateLimiter::OnRateLimited(std::optional<double> retry_after_s) {
  std::optional<ratelimit::Duration> pause;
  if (retry_after_s) {
    pause = std::chrono::duration_cast<ratelimit::Duration>(
        std::chrono::duration<double>(*retry_after_s));
  }
  const auto now = ratelimit::Clock::now();
  bucket_.OnRateLimited(now, pause);
  const auto until = bucket_.blocked_until();
  if (until - now >= kAnnouncedPause && until - announced_until_ >= kAnnouncedPause) {
    announced_until_ = until;
    const std::string at = util::UtcTimestamp(std::chrono::system_clock::to_time_t(
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(until - now)));
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(until - now).count();
    util::LogWarning(
        std::string("the API answered 429 rate_limit_exceeded") +
        (retry_after_s ? " with Retry-After: " + std::to_string(seconds) + " s" : ", again") +
        "; every API request waits until " + at +
        " (a stop ends the wait; the run resumes where it was)");
  }
}

void RateLimiter::Reconfigure(double rate, double burst) {
  bucket_.Reconfigure(rate, burst, ratelimit::Clock::now());
  sends_.Reconfigure(rate, SendBurst(rate, burst), ratelimit::Clock::now());
  if (sleeping_ != nullptr) sleeping_->cancel();
}

void RateLimiter::Close() {
  is_closed_ = true;
  turn_.Close();
  if (sleeping_ != nullptr) sleeping_->cancel();
}

}  // namespace nanobatch::engine
