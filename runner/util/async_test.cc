#include "runner/util/async.h"

#include <doctest/doctest.h>

#include <boost/asio.hpp>
#include <vector>

namespace nanobatch::util {
namespace {

namespace net = boost::asio;

TEST_CASE("async semaphore: at most N holders, FIFO hand-over, Close wakes waiters with false") {
  net::io_context io;
  AsyncSemaphore semaphore(io.get_executor(), 2);
  std::vector<int> order;
  int holders = 0, max_holders = 0, refused = 0;
  auto worker = [&](int id) -> net::awaitable<void> {
    if (!co_await semaphore.Acquire()) {
      ++refused;
      co_return;
    }
    ++holders;
    max_holders = std::max(max_holders, holders);
    order.push_back(id);
    net::steady_timer timer(io, std::chrono::milliseconds(5));
    co_await timer.async_wait(net::use_awaitable);
    --holders;
    semaphore.Release();
  };
  for (int i = 0; i < 6; ++i) net::co_spawn(io, worker(i), net::detached);
  io.run();
  CHECK(max_holders == 2);
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});
  CHECK(semaphore.available() == 2);

  io.restart();
  AsyncSemaphore none(io.get_executor(), 0);
  bool result = true;
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { result = co_await none.Acquire(); }, net::detached);
  net::post(io, [&] { none.Close(); });
  io.run();
  CHECK_FALSE(result);
  CHECK(none.waiting() == 0);
}

TEST_CASE("async event: Notify wakes every waiter; WaitFor times out") {
  net::io_context io;
  AsyncEvent event(io.get_executor());
  int woken = 0;
  bool timed_out_result = true;
  for (int i = 0; i < 3; ++i) {
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
          co_await event.Wait();
          ++woken;
        },
        net::detached);
  }
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        timed_out_result = co_await event.WaitFor(std::chrono::milliseconds(1));
      },
      net::detached);
  net::steady_timer later(io, std::chrono::milliseconds(20));
  later.async_wait([&](auto) { event.Notify(); });
  io.run();
  CHECK(woken == 3);
  CHECK_FALSE(timed_out_result);
}

TEST_CASE("stop signal: a child hears its parent until removed; a child's trigger stays its own") {
  net::io_context io;
  StopSignal service(io.get_executor());
  StopSignal cancelled_job(io.get_executor());
  StopSignal ended_job(io.get_executor());
  StopSignal other_job(io.get_executor());
  service.AddChild(cancelled_job);
  service.AddChild(ended_job);
  service.AddChild(other_job);
  cancelled_job.Trigger();  // one job cancelled: neither the service nor another job stops
  CHECK_FALSE(service.triggered());
  CHECK_FALSE(other_job.triggered());
  service.RemoveChild(ended_job);  // a job that ended: the service must not reach it any more
  service.Trigger();
  CHECK(other_job.triggered());
  CHECK_FALSE(ended_job.triggered());
}

TEST_CASE("stop signal: every waiter on a semaphore stops at once; no unit is lost") {
  net::io_context io;
  AsyncSemaphore semaphore(io.get_executor(), 1);
  StopSignal halt(io.get_executor());
  StopSignal submits(io.get_executor());
  halt.AddChild(submits);
  int stopped = 0, got = 0;
  REQUIRE(semaphore.TryAcquire());  // held by someone who is not stopping
  auto waiter = [&]() -> net::awaitable<void> {
    if (co_await semaphore.Acquire(&submits)) {
      ++got;
      semaphore.Release();
    } else {
      ++stopped;
    }
  };
  for (int i = 0; i < 20; ++i) net::co_spawn(io, waiter(), net::detached);
  auto trigger = [&]() -> net::awaitable<void> {
    net::steady_timer timer(io, std::chrono::milliseconds(1));
    co_await timer.async_wait(net::use_awaitable);
    halt.Trigger();  // through the child: "halt" implies "stop submitting"
    semaphore.Release();
  };
  net::co_spawn(io, trigger(), net::detached);
  io.run();
  CHECK(stopped == 20);
  CHECK(got == 0);
  CHECK(semaphore.available() == 1);  // the released unit went back, not to a stopped waiter
  // A later acquire observing a triggered signal returns at once.
  bool later = true;
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { later = co_await semaphore.Acquire(&submits); },
      net::detached);
  io.restart();
  io.run();
  CHECK_FALSE(later);
}

TEST_CASE("stop signal: a sleep ends early when triggered") {
  net::io_context io;
  StopSignal stop(io.get_executor());
  bool woke = false;
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { woke = co_await stop.SleepFor(std::chrono::hours(1)); },
      net::detached);
  net::post(io, [&] { stop.Trigger(); });
  io.run();
  CHECK(woke);  // (without the trigger, io.run() would sleep for the hour)
}

TEST_CASE("stop signal: SleepOn wakes on the caller's cancel (false) or on a trigger (true)") {
  net::io_context io;
  StopSignal stop(io.get_executor());
  net::steady_timer mine(io, std::chrono::hours(1));
  net::steady_timer theirs(io, std::chrono::hours(1));
  int woke_by_cancel = -1, woke_by_trigger = -1;
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { woke_by_cancel = co_await stop.SleepOn(mine); },
      net::detached);
  net::post(io, [&] { mine.cancel(); });
  io.run();
  CHECK(woke_by_cancel == 0);  // someone else's wake-up, not a stop
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { woke_by_trigger = co_await stop.SleepOn(theirs); },
      net::detached);
  net::post(io, [&] { stop.Trigger(); });
  io.restart();
  io.run();
  CHECK(woke_by_trigger == 1);
}

TEST_CASE("async event: a wait observing a stop signal ends when it is triggered") {
  net::io_context io;
  AsyncEvent event(io.get_executor());
  StopSignal stop(io.get_executor());
  int notified = -1, stopped = -1;
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { notified = co_await event.Wait(stop); }, net::detached);
  net::post(io, [&] { event.Notify(); });
  io.run();
  CHECK(notified == 1);
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { stopped = co_await event.Wait(stop); }, net::detached);
  net::post(io, [&] { stop.Trigger(); });
  io.restart();
  io.run();  // (without the trigger, it would wait for ever)
  CHECK(stopped == 0);
}

}  // namespace
}  // namespace nanobatch::util

namespace nanobatch::util {
namespace {

TEST_CASE("timer pool: a timer given back is taken again, set to never expire") {
  net::io_context io;
  TimerPool pool(io.get_executor());
  std::unique_ptr<net::steady_timer> timer = pool.Take();
  CHECK(timer->expiry() == net::steady_timer::time_point::max());
  net::steady_timer* const first = timer.get();
  timer->expires_after(std::chrono::seconds(1));
  pool.Give(std::move(timer));
  std::unique_ptr<net::steady_timer> again = pool.Take();
  CHECK(again.get() == first);
  CHECK(again->expiry() == net::steady_timer::time_point::max());
  CHECK(pool.Take().get() != first);  // none kept now: a new one
}

TEST_CASE("held unit: given back once, at Release() or at the end of its scope") {
  boost::asio::io_context io;
  AsyncSemaphore slots(io.get_executor(), 2);
  REQUIRE(slots.TryAcquire());
  REQUIRE(slots.TryAcquire());
  {
    HeldUnit unit{slots};
    unit.Release();
    CHECK(slots.available() == 1);
    unit.Release();  // a second time: nothing
    CHECK(slots.available() == 1);
  }
  CHECK(slots.available() == 1);  // not given back twice
  { HeldUnit unit{slots}; }
  CHECK(slots.available() == 2);
  { HeldUnit nothing{slots, /*held=*/false}; }
  CHECK(slots.available() == 2);
}

}  // namespace
}  // namespace nanobatch::util
