#include <doctest/doctest.h>

#include <boost/asio.hpp>
#include <deque>

#include "runner/engine/poll_schedule.h"
#include "runner/engine/rate_limiter.h"
#include "runner/engine/task_group.h"

namespace nanobatch::engine {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

TEST_CASE("poll schedule: first poll near the running median, then growing to the cap") {
  PollSchedule schedule(Seconds(8), Seconds(30));
  CHECK(schedule.FirstDelay("1K").count() == doctest::Approx(8));
  for (double took : {40.0, 42.0, 41.0, 300.0, 39.0})
    schedule.RecordCompletion("2K", Seconds(took));
  CHECK(schedule.Median("2K").count() == doctest::Approx(41));
  CHECK(schedule.FirstDelay("2K").count() == doctest::Approx(30));  // capped
  CHECK(schedule.FirstDelay("1K").count() == doctest::Approx(8));   // per resolution
  schedule.RecordCompletion("1K", Seconds(0.001));
  CHECK(schedule.FirstDelay("1K").count() == doctest::Approx(0.05));
  CHECK(schedule.NextDelay(Seconds(4)).count() == doctest::Approx(6));
  CHECK(schedule.NextDelay(Seconds(29)).count() == doctest::Approx(30));
}

TEST_CASE("rate limiter: many waiters are served at the rate, in order") {
  net::io_context io;
  RateLimiter limiter(io.get_executor(), 50, 1);
  std::vector<std::chrono::steady_clock::time_point> grants;
  std::vector<int> order;
  for (int i = 0; i < 11; ++i) {
    net::co_spawn(
        io,
        [&, i]() -> net::awaitable<void> {
          if (co_await limiter.Acquire()) {
            grants.push_back(std::chrono::steady_clock::now());
            order.push_back(i);
          }
        },
        net::detached);
  }
  io.run();
  REQUIRE(grants.size() == 11);
  // 1 at once, then 10 more at 50/s: at least 200 ms in all (bounded by the rate, not the test).
  CHECK(grants.back() - grants.front() >= 195ms);
  CHECK(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE("rate limiter: Close releases every waiter with false") {
  net::io_context io;
  RateLimiter limiter(io.get_executor(), 0.01, 1);  // one token, then one per 100 s
  int granted = 0, refused = 0;
  for (int i = 0; i < 3; ++i) {
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
          if (co_await limiter.Acquire())
            ++granted;
          else
            ++refused;
        },
        net::detached);
  }
  net::steady_timer later(io, 20ms);
  later.async_wait([&](auto) { limiter.Close(); });
  io.run();
  CHECK(granted == 1);
  CHECK(refused == 2);
}

// A free coroutine with owned parameters (a capturing lambda's captures would die with it).
net::awaitable<void> SleepThenCount(int i, int* finished) {
  net::steady_timer t(co_await net::this_coro::executor, std::chrono::milliseconds(5 * i));
  co_await t.async_wait(net::use_awaitable);
  ++*finished;
  if (i == 1) throw std::runtime_error("bug");
}

TEST_CASE("task group: Join waits for every task and rethrows the first failure") {
  net::io_context io;
  TaskGroup group(io.get_executor());
  int finished = 0;
  bool threw = false;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        for (int i = 0; i < 3; ++i) group.Spawn(SleepThenCount(i, &finished));
        try {
          co_await group.Join();
        } catch (const std::runtime_error&) {
          threw = true;
        }
      },
      net::detached);
  io.run();
  CHECK(finished == 3);
  CHECK(threw);
}

}  // namespace
}  // namespace nanobatch::engine
