#pragma once
// RateLimiter: makes coroutines wait their turn for a TokenBucket token. Waiters are served
// first come, first served: only the first in line sleeps on a timer, the rest queue behind it,
// so thousands of waiting polls cost nothing and cannot stampede.
//
// A submit takes its token before its intent is made durable, and the commit that does so
// groups several intents: their POSTs then leave together, later than their tokens. A second
// bucket of the same rate, taken at the moment a request leaves (Pace), keeps what the server
// sees within rate + burst in every 1-second window all the same; the wait it adds is at most
// the spread of one group.
//
// The server counts arrivals, not departures, and the path between (the kernel, the network,
// the server's own queue) delays some requests more than others: requests that left 1.01 s
// apart can arrive 0.99 s apart. So the send-time bucket holds back the rate's worth of
// kPathJitterHeadroom from its burst (SendBurst): arrivals then stay within rate + burst for any
// path jitter up to that headroom. (Measured: at 500/s with a burst of 100, a full burst at
// send time gave 604 arrivals in the simulator's worst 1-second window.)
//
// Example:
//   if (!co_await limiter.Acquire()) co_return;   // false: shutting down
//   ... send one API request ...
//
//   if (!co_await limiter.Acquire(&stop, /*pace_now=*/false)) ...;   // a submit
//   ... record the intent, commit ...
//   if (!co_await limiter.Pace(&stop)) ...;
//   ... send the POST ...

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>

#include "runner/ratelimit/token_bucket.h"
#include "runner/util/async.h"

namespace nanobatch::engine {

// How much jitter between leaving and arriving the send-time bucket leaves room for.
inline constexpr double kPathJitterHeadroomS = 0.02;

// The send-time bucket's burst: `burst` less `rate` x the headroom, and at least one request.
double SendBurst(double rate, double burst);

class RateLimiter {
 public:
  RateLimiter(boost::asio::any_io_executor executor, double rate, double burst);

  // Waits for a token. False when closed, or when `stop` (if given) is triggered first; a
  // waiter with a stop signal is woken by that signal, so whoever closes the limiter triggers
  // the signals too (the engine's halt does both).
  // `pace_now`: the request leaves at once (its send-time token is taken too); a caller that
  // does something slow in between passes false and calls Pace right before sending.
  boost::asio::awaitable<bool> Acquire(util::StopSignal* stop = nullptr, bool pace_now = true);
  // Waits, if needed, until the request can leave without more than rate + burst requests
  // leaving in any second. False when closed or stopped first.
  boost::asio::awaitable<bool> Pace(util::StopSignal* stop = nullptr);
  // A 429 rate_limit_exceeded, with its Retry-After. A wait of kAnnouncedPause or more that
  // goes past what was announced before is logged (a warning with the time requests resume):
  // every API request waits it out, and a run that falls silent for minutes must say why.
  void OnRateLimited(std::optional<double> retry_after_s);
  static constexpr std::chrono::seconds kAnnouncedPause{10};
  // A new rate and burst from now on (serve's SIGHUP reload); the waiter in line recomputes its
  // wait at once.
  void Reconfigure(double rate, double burst);
  double configured_rate() const { return bucket_.configured_rate(); }
  double current_rate() const { return bucket_.current_rate(); }
  double tokens() const { return bucket_.tokens(); }
  void Close();

 private:
  boost::asio::any_io_executor executor_;
  ratelimit::TokenBucket bucket_;
  ratelimit::TokenBucket sends_;  // the same rate, at the moment requests leave (SendBurst)
  util::AsyncSemaphore turn_;
  bool is_closed_ = false;
  ratelimit::Clock::time_point announced_until_{};  // the end of the last pause logged
  boost::asio::steady_timer* sleeping_ = nullptr;   // the timer of the waiter in line, if asleep
};

}  // namespace nanobatch::engine
