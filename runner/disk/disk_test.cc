#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "doctest/doctest.h"
#include "runner/disk/blocking_worker.h"
#include "runner/disk/group_commit.h"

namespace nanobatch::disk {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

TEST_CASE("blocking worker: the call runs on another thread and the caller resumes on the loop") {
  net::io_context io;
  BlockingWorker worker;
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id call_thread, resumed_thread;
  int result = -1;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        result = co_await worker.Run([&] {
          call_thread = std::this_thread::get_id();
          return 42;
        });
        resumed_thread = std::this_thread::get_id();
      },
      net::detached);
  io.run();  // returns only once the call is back: the call counts as the loop's work
  CHECK(result == 42);
  CHECK(call_thread != loop_thread);
  CHECK(resumed_thread == loop_thread);
  CHECK(worker.calls() == 1);
}

TEST_CASE("blocking worker: the loop keeps running while a call blocks") {
  net::io_context io;
  BlockingWorker worker;
  int ticks = 0;
  bool done = false;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        co_await worker.Run([] {
          std::this_thread::sleep_for(200ms);  // a slow disk
          return 0;
        });
        done = true;
      },
      net::detached);
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        net::steady_timer timer(io);
        for (int i = 0; i < 100 && !done; ++i) {  // bounded
          timer.expires_after(10ms);
          co_await timer.async_wait(net::use_awaitable);
          ++ticks;
        }
      },
      net::detached);
  io.run();
  CHECK(done);
  CHECK(ticks >= 10);  // ~20 ticks of 10 ms went by during the 200 ms call
}

TEST_CASE("blocking worker: calls made in one turn of the loop go to the workers in batches") {
  // Each caller gets its own result; a batch runs on one worker, its calls one after another in
  // the order they were made, and its callers resume in that order. The batches of a turn are
  // spread over the threads, as even as can be, none over kMaxBatch.
  auto run_turn = [](BlockingWorker& worker, int callers, std::size_t expected_batch) {
    net::io_context io;
    std::atomic<int> sequence{0};
    // Filled on the workers (batches may run at once): each call's slot is its own.
    std::vector<int> order(callers, -1);
    std::vector<std::thread::id> thread_of(callers);
    std::vector<int> results(callers, -1);
    std::vector<int> resumed;
    const auto hand_offs_before = worker.hand_offs();
    for (int i = 0; i < callers; ++i) {
      net::co_spawn(
          io,
          [&, i]() -> net::awaitable<void> {
            results[i] = co_await worker.Run([&, i] {
              order[i] = sequence++;
              thread_of[i] = std::this_thread::get_id();
              return 100 + i;
            });
            resumed.push_back(i);
          },
          net::detached);
    }
    io.run();
    const auto batch = static_cast<int>(expected_batch);
    CHECK(worker.hand_offs() - hand_offs_before ==
          static_cast<std::uint64_t>((callers + batch - 1) / batch));
    for (int i = 0; i < callers; ++i) CHECK(results[i] == 100 + i);
    for (int i = 1; i < callers; ++i) {
      if (i % batch == 0) continue;  // the next batch starts
      CHECK(thread_of[i] == thread_of[i - 1]);
      CHECK(order[i] > order[i - 1]);
    }
    // (The batches may come back in any order.)
    REQUIRE(resumed.size() == static_cast<std::size_t>(callers));
    std::vector<std::vector<int>> by_batch((callers + batch - 1) / batch);
    for (int i : resumed) by_batch[i / batch].push_back(i);
    for (const auto& one : by_batch) CHECK(std::is_sorted(one.begin(), one.end()));
  };
  BlockingWorker worker;
  static_assert(BlockingWorker::kThreads == 4);
  run_turn(worker, 11, 3);                          // 3 + 3 + 3 + 2: one batch per thread
  run_turn(worker, 3, 1);                           // each call on a thread of its own
  run_turn(worker, 40, BlockingWorker::kMaxBatch);  // five full batches
  BlockingWorker one_thread(1);
  run_turn(one_thread, 11, BlockingWorker::kMaxBatch);  // 8 + 3
  CHECK(worker.calls() == 54);

  // A call made after the loop went on is a hand-off of its own.
  const auto before = worker.hand_offs();
  net::io_context again;
  int later = -1;
  net::co_spawn(
      again, [&]() -> net::awaitable<void> { later = co_await worker.Run([] { return 7; }); },
      net::detached);
  again.run();
  CHECK(later == 7);
  CHECK(worker.hand_offs() == before + 1);
}

TEST_CASE("blocking worker: a call that throws fails its own caller only") {
  net::io_context io;
  BlockingWorker worker(1);  // one thread: the two calls are one batch
  bool threw = false;
  int other = -1;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        try {
          co_await worker.Run([]() -> int { throw std::runtime_error("disk"); });
        } catch (const std::runtime_error&) {
          threw = true;
        }
      },
      net::detached);
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { other = co_await worker.Run([] { return 3; }); },
      net::detached);
  io.run();
  CHECK(threw);
  CHECK(other == 3);
  CHECK(worker.hand_offs() == 1);  // the two were one batch
}

// A change log in the shape of a journal: appended on the loop, written by the worker.
struct FakeLog {
  std::vector<int> pending;
  std::vector<int> in_flight;
  std::vector<int> durable;
  int syncs = 0;
  int fail_at_sync = -1;
  std::chrono::milliseconds delay{0};

  GroupCommit::Hooks Hooks() {
    return {.pending = [this] { return pending.size(); },
            .begin =
                [this] {
                  in_flight.swap(pending);
                  pending.clear();
                  const bool fail = ++syncs == fail_at_sync;
                  return std::function<int()>([fail, delay = delay] {
                    std::this_thread::sleep_for(delay);
                    return fail ? EIO : 0;
                  });
                },
            .end =
                [this](int result, std::string& error) {
                  if (result != 0) {
                    error = "sync failed";
                    return false;
                  }
                  durable.insert(durable.end(), in_flight.begin(), in_flight.end());
                  in_flight.clear();
                  return true;
                }};
  }
};

TEST_CASE(
    "group commit: concurrent commits share syncs, and each returns once its change is "
    "durable") {
  net::io_context io;
  BlockingWorker worker;
  FakeLog log;
  log.delay = 20ms;
  GroupCommit commits(io.get_executor(), worker, log.Hooks());
  int checked = 0;
  bool all_durable_when_returned = true;
  constexpr int kWriters = 50;
  for (int w = 0; w < kWriters; ++w) {
    net::co_spawn(
        io,
        [&, w]() -> net::awaitable<void> {
          for (int k = 0; k < 4; ++k) {
            const int change = w * 100 + k;
            log.pending.push_back(change);
            CHECK(co_await commits.Commit());
            bool found = false;
            for (int d : log.durable) found = found || d == change;
            all_durable_when_returned = all_durable_when_returned && found;
            ++checked;
          }
        },
        net::detached);
  }
  io.run();
  CHECK(checked == kWriters * 4);
  CHECK(all_durable_when_returned);
  CHECK(log.durable.size() == kWriters * 4);
  // 200 changes, each commit waiting 20 ms: without grouping, 200 syncs. Writers re-append while
  // a sync is out, so each group holds about all of them.
  CHECK(log.syncs <= 12);
  CHECK(commits.syncs() == static_cast<std::uint64_t>(log.syncs));
}

TEST_CASE("group commit: when busy, a sync waits out the interval unless its group is full") {
  net::io_context io;
  BlockingWorker worker;
  FakeLog log;
  GroupCommit commits(io.get_executor(), worker, log.Hooks(),
                      /*min_interval=*/std::chrono::seconds(30),
                      /*full_group=*/3);
  std::vector<std::chrono::steady_clock::time_point> done;
  const auto start = std::chrono::steady_clock::now();
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        log.pending.push_back(0);
        co_await commits.Commit();  // idle: syncs at once
        done.push_back(std::chrono::steady_clock::now());
        // Within the interval: three writers fill the group, which goes without the 30 s wait.
        for (int w = 1; w <= 3; ++w) {
          net::co_spawn(
              co_await net::this_coro::executor,
              [&, w]() -> net::awaitable<void> {
                log.pending.push_back(w);
                co_await commits.Commit();
                done.push_back(std::chrono::steady_clock::now());
              },
              net::detached);
        }
      },
      net::detached);
  io.run();
  REQUIRE(done.size() == 4);
  CHECK(done.back() - start < std::chrono::seconds(5));
  CHECK(log.syncs == 2);
  CHECK(log.durable.size() == 4);
}

TEST_CASE("group commit: a commit with nothing new returns at once, without a sync") {
  net::io_context io;
  BlockingWorker worker;
  FakeLog log;
  GroupCommit commits(io.get_executor(), worker, log.Hooks());
  bool ok = false;
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { ok = co_await commits.Commit(); }, net::detached);
  io.run();
  CHECK(ok);
  CHECK(log.syncs == 0);
  CHECK(worker.calls() == 0);
}

TEST_CASE("group commit: a failed sync fails its waiters and every later commit") {
  net::io_context io;
  BlockingWorker worker;
  FakeLog log;
  log.fail_at_sync = 1;
  GroupCommit commits(io.get_executor(), worker, log.Hooks());
  std::vector<bool> results;
  for (int w = 0; w < 3; ++w) {
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
          log.pending.push_back(1);
          results.push_back(co_await commits.Commit());
        },
        net::detached);
  }
  io.run();
  CHECK(results == std::vector<bool>{false, false, false});
  CHECK(commits.failed());
  CHECK(commits.error() == "sync failed");
  bool later = true;
  net::co_spawn(
      io, [&]() -> net::awaitable<void> { later = co_await commits.Commit(); }, net::detached);
  io.restart();
  io.run();
  CHECK_FALSE(later);
  CHECK(log.syncs == 1);
}

}  // namespace
}  // namespace nanobatch::disk
