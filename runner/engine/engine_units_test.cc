#include <doctest/doctest.h>

#include <boost/asio.hpp>
#include <deque>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "runner/engine/item_run.h"
#include "runner/engine/ledger.h"
#include "runner/engine/poll_schedule.h"
#include "runner/engine/rate_limiter.h"
#include "runner/engine/stop_reason.h"
#include "runner/engine/submit_gate.h"
#include "runner/engine/task_group.h"

namespace nanobatch::engine {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

TEST_CASE("poll schedule: before anything is known, first_poll; a few probes poll early") {
  PollSchedule schedule(Seconds(8), Seconds(30));
  CHECK_FALSE(schedule.Knows("1K"));
  CHECK(schedule.FirstPoll("1K").count() == doctest::Approx(8));
  for (int i = 0; i < PollSchedule::kProbes; ++i) CHECK(schedule.StartProbe("1K"));
  CHECK_FALSE(schedule.StartProbe("1K"));  // the rest wait for the probes' lesson
  CHECK(schedule.ProbeFirst().count() == doctest::Approx(1));
  // Nothing known: each miss waits half as long again as the task has taken so far.
  CHECK(schedule.NextPoll("1K", Seconds(4)).count() == doctest::Approx(2));
  CHECK(schedule.NextPoll("1K", Seconds(100)).count() == doctest::Approx(30));  // the cap
  schedule.Learn("1K", Seconds(3));
  CHECK_FALSE(schedule.StartProbe("1K"));  // known now: no more probes
}

TEST_CASE("poll schedule: the first poll aims at the 90th percentile of what the API reported") {
  PollSchedule schedule(Seconds(8), Seconds(30));
  // Tasks of 2..6 s (whole seconds, as completed_at - created_at reports them): 100 of them.
  for (int i = 0; i < 100; ++i) schedule.Learn("1K", Seconds(2 + i % 5));
  CHECK(schedule.FirstPoll("1K").count() == doctest::Approx(6));
  CHECK(schedule.Quantile("1K", 0.5)->count() == doctest::Approx(4));
  // Far below the old estimate, which could never drop under the first poll's 8 s.
  CHECK(schedule.FirstPoll("1K") < Seconds(8));
  CHECK(schedule.FirstPoll("2K").count() == doctest::Approx(8));  // per resolution
  // A task that missed is polled at the next landmark ahead, then backs off geometrically.
  for (int i = 0; i < 100; ++i) schedule.Learn("2K", Seconds(i < 90 ? 10 : 20));
  CHECK(schedule.FirstPoll("2K").count() == doctest::Approx(10).epsilon(0.2));
  CHECK(schedule.NextPoll("2K", Seconds(11)).count() == doctest::Approx(9));  // to 20 s
  CHECK(schedule.NextPoll("2K", Seconds(21)).count() == doctest::Approx(10.5));
  // Sub-second tasks: polled at the floor, never in a busy loop.
  PollSchedule fast(Seconds(8), Seconds(30));
  for (int i = 0; i < 20; ++i) fast.Learn("1K", Seconds(0));
  CHECK(fast.FirstPoll("1K").count() == doctest::Approx(0.05));
  CHECK(fast.NextPoll("1K", Seconds(0.01)).count() == doctest::Approx(0.05));
}

TEST_CASE("poll schedule: few durations give the slowest seen; the window follows a slower API") {
  PollSchedule schedule(Seconds(8), Seconds(60));
  schedule.Learn("4K", Seconds(3));
  schedule.Learn("4K", Seconds(5));
  CHECK(schedule.FirstPoll("4K").count() == doctest::Approx(5));  // 2 samples: the slowest
  for (std::size_t i = 0; i < PollSchedule::kWindow; ++i) schedule.Learn("4K", Seconds(40));
  CHECK(schedule.FirstPoll("4K").count() == doctest::Approx(40));  // the old ones left
  schedule.Learn("4K", Seconds(-1));                               // no lesson
  CHECK(schedule.samples("4K") == PollSchedule::kWindow);
}

TEST_CASE("ledger: held credits count against the budget until the journal takes them") {
  Ledger ledger(100);
  const Ledger::Durable none{};
  CHECK(ledger.TryHold(40, none) == Ledger::Hold::kHeld);
  CHECK(ledger.TryHold(40, none) == Ledger::Hold::kHeld);
  CHECK(ledger.held() == 80);
  // 80 held + 40 > 100: held credits may come back (a submit refused), so wait.
  CHECK(ledger.TryHold(40, none) == Ledger::Hold::kWaitRefunds);
  ledger.Recorded(40);  // one intent is durable: the journal reserves those 40 now
  CHECK(ledger.held() == 40);
  CHECK(ledger.TryHold(40, {.spent = 0, .reserved = 40}) == Ledger::Hold::kWaitRefunds);
  ledger.Release(40);  // the other was not sent
  CHECK(ledger.TryHold(40, {.spent = 0, .reserved = 40}) == Ledger::Hold::kHeld);
  // Spent credits never come back: a submission that cannot fit even then is the end.
  Ledger spent(100);
  CHECK(spent.TryHold(40, {.spent = 70, .reserved = 0}) == Ledger::Hold::kExhausted);
  CHECK(spent.TryHold(20, {.spent = 70, .reserved = 20}) == Ledger::Hold::kWaitRefunds);
  CHECK(spent.TryHold(40, {.spent = 70, .reserved = 20}) == Ledger::Hold::kExhausted);
  // An API error answer: the journal releases the intent, the ledger holds the credits again.
  Ledger again(16);
  REQUIRE(again.TryHold(16, none) == Ledger::Hold::kHeld);
  again.Recorded(16);
  again.HoldAgain(16);
  CHECK(again.TryHold(16, none) == Ledger::Hold::kWaitRefunds);
  // No budget: everything is held, nothing refused.
  Ledger unlimited(std::nullopt);
  CHECK(unlimited.TryHold(1'000'000, {.spent = 1ull << 40, .reserved = 0}) == Ledger::Hold::kHeld);
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

TEST_CASE("rate limiter: tokens taken early and used late still leave at the rate (Pace)") {
  net::io_context io;
  RateLimiter limiter(io.get_executor(), 50, 2);
  std::vector<std::chrono::steady_clock::time_point> sends;
  const auto commit_done = std::chrono::steady_clock::now() + 300ms;
  for (int i = 0; i < 8; ++i) {
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
          if (!co_await limiter.Acquire(nullptr, /*pace_now=*/false)) co_return;
          // Something slow between the token and the send (one commit for them all): without
          // pacing every request would leave together at 300 ms.
          net::steady_timer commit(co_await net::this_coro::executor, commit_done);
          co_await commit.async_wait(net::use_awaitable);
          if (co_await limiter.Pace()) sends.push_back(std::chrono::steady_clock::now());
        },
        net::detached);
  }
  io.run();
  REQUIRE(sends.size() == 8);
  std::sort(sends.begin(), sends.end());
  // The send-time burst (1: the burst of 2 less 20 ms of 50/s) at once, then one per 20 ms: the
  // last 7 spread over at least 140 ms.
  CHECK(sends.back() - sends.front() >= 135ms);
  for (std::size_t i = 2; i < sends.size(); ++i) CHECK(sends[i] - sends[i - 1] >= 15ms);
}

TEST_CASE("rate limiter: the send-time burst leaves room for path jitter, never below one") {
  CHECK(SendBurst(500, 100) == doctest::Approx(90));  // 20 ms of 500/s held back
  CHECK(SendBurst(50, 10) == doctest::Approx(9));
  CHECK(SendBurst(5, 1) == doctest::Approx(1));
  CHECK(SendBurst(1000, 5) == doctest::Approx(1));

  // 500/s, burst 100: 90 leave at once, the 91st waits for the rate.
  net::io_context io;
  RateLimiter limiter(io.get_executor(), 500, 100);
  std::vector<std::chrono::steady_clock::time_point> sends;
  for (int i = 0; i < 95; ++i) {
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
          if (co_await limiter.Acquire()) sends.push_back(std::chrono::steady_clock::now());
        },
        net::detached);
  }
  io.run();
  REQUIRE(sends.size() == 95);
  CHECK(sends[89] - sends[0] < 100ms);  // at the rate alone they would take 180 ms
  // The five after the burst leave at 500/s: the last at least 8 ms after the burst.
  CHECK(sends[94] - sends[89] >= 8ms);
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

// Spawns three tasks (the second throws) on `group`, joins them, and checks that all ran and
// the failure was rethrown.
void CheckJoinAndRethrow(net::io_context& io, TaskGroup& group) {
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
  CHECK(group.running() == 0);
}

TEST_CASE("task group: Join waits for every task and rethrows the first failure") {
  net::io_context io;
  TaskGroup group(io.get_executor());
  CheckJoinAndRethrow(io, group);
}

TEST_CASE(
    "task group: on an executor other than the loop's own, tasks still run and failures rethrow") {
  // Spawn binds the handler to the io_context's executor type when it can; a strand cannot, and
  // takes the type-erased path.
  net::io_context io;
  TaskGroup group(net::make_strand(io));
  CheckJoinAndRethrow(io, group);
}

TEST_CASE("item run: shedding drops the manifest item; submitting a shed item is refused") {
  manifest::Item item;
  item.id = "cat-1";
  item.prompt = std::string(500, 'p');  // long enough to live on the heap
  item.resolution = "2K";
  item.aspect_ratio = "16:9";
  item.output_format = "png";
  ItemRun run(std::move(item), 7);
  CHECK(SubmitFields(run).prompt.size() == 500);
  ShedSubmitFields(run);
  CHECK(run.item == nullptr);
  // What the rest of the lifecycle reads stays.
  CHECK(run.id == "cat-1");
  CHECK(run.resolution == "2K");
  CHECK(run.aspect_ratio == "16:9");
  CHECK(run.output_format == "png");
  CHECK(run.index == 7);
  CHECK_THROWS_AS(SubmitFields(run), std::logic_error);
}

// How a submit through the gate ends.
enum class Ending { kAnswered, kLost, kNotSent };

// One submit's way through `gate`, as the Submitter takes it.
net::awaitable<void> SubmitThroughGate(SubmitGate* gate, util::StopSignal* stop, Ending ending,
                                       std::vector<std::string>* log, std::string name) {
  SubmitGate::Pass pass(*gate);
  if (!co_await gate->Enter(pass, stop)) {
    log->push_back(name + " stopped");
    co_return;
  }
  log->push_back(name + (pass.probe() ? " probes" : " goes"));
  net::steady_timer answer(co_await net::this_coro::executor, 10ms);
  co_await answer.async_wait(net::use_awaitable);
  switch (ending) {
    case Ending::kLost:
      log->push_back(name + " lost " + std::to_string(gate->Lost(pass)));
      break;
    case Ending::kNotSent:
      log->push_back(name + " not sent " + std::to_string(gate->NotSent(pass)));
      break;
    case Ending::kAnswered:
      gate->Answered();
      log->push_back(name + " answered");
  }
}

net::awaitable<void> SubmitThroughGate(SubmitGate* gate, util::StopSignal* stop, bool lost,
                                       std::vector<std::string>* log, std::string name) {
  co_await SubmitThroughGate(gate, stop, lost ? Ending::kLost : Ending::kAnswered, log,
                             std::move(name));
}

TEST_CASE("submit gate: all go while answers come; one at a time once one is lost") {
  net::io_context io;
  SubmitGate gate(io.get_executor());
  util::StopSignal stop(io.get_executor());
  std::vector<std::string> log;
  // The first submit goes alone; the next once the API has answered it.
  CHECK(gate.narrowed());
  CHECK_FALSE(gate.losing());
  net::co_spawn(io, SubmitThroughGate(&gate, &stop, false, &log, "s1"), net::detached);
  net::co_spawn(io, SubmitThroughGate(&gate, &stop, false, &log, "s2"), net::detached);
  io.run();
  io.restart();
  CHECK(log == std::vector<std::string>{"s1 probes", "s1 answered", "s2 goes", "s2 answered"});
  log.clear();
  // Two go together; the first's answer is lost, the second's too (it was out already: no probe).
  net::co_spawn(io, SubmitThroughGate(&gate, &stop, true, &log, "a"), net::detached);
  net::co_spawn(io, SubmitThroughGate(&gate, &stop, true, &log, "b"), net::detached);
  io.run();
  io.restart();
  CHECK(log == std::vector<std::string>{"a goes", "b goes", "a lost 0", "b lost 0"});
  CHECK(gate.narrowed());
  CHECK(gate.losing());
  // Narrowed: c probes alone and is lost (1 in a row); d probes after it and is answered; e,
  // waiting behind d, goes as the gate opened.
  log.clear();
  for (const auto& [name, lost] :
       std::vector<std::pair<std::string, bool>>{{"c", true}, {"d", false}, {"e", false}}) {
    net::co_spawn(io, SubmitThroughGate(&gate, &stop, lost, &log, name), net::detached);
  }
  io.run();
  io.restart();
  CHECK(log == std::vector<std::string>{"c probes", "c lost 1", "d probes", "d answered", "e goes",
                                        "e answered"});
  CHECK_FALSE(gate.narrowed());
  // Narrowed again, a stop ends a wait for the probe at once.
  log.clear();
  net::co_spawn(io, SubmitThroughGate(&gate, &stop, true, &log, "f"), net::detached);
  io.run();
  io.restart();
  net::co_spawn(io, SubmitThroughGate(&gate, &stop, true, &log, "g"), net::detached);
  net::co_spawn(io, SubmitThroughGate(&gate, &stop, true, &log, "h"), net::detached);
  net::post(io, [&] { stop.Trigger(); });
  io.run();
  CHECK(log == std::vector<std::string>{"f goes", "f lost 0", "g probes", "h stopped", "g lost 1"});
}

TEST_CASE("submit gate: submits that cannot be sent narrow it too, and its probes count for all") {
  net::io_context io;
  SubmitGate gate(io.get_executor());
  util::StopSignal stop(io.get_executor());
  std::vector<std::string> log;
  const auto run = [&](const std::vector<std::pair<std::string, Ending>>& submits) {
    log.clear();
    for (const auto& [name, ending] : submits) {
      net::co_spawn(io, SubmitThroughGate(&gate, &stop, ending, &log, name), net::detached);
    }
    io.run();
    io.restart();
  };
  // At the start (narrow), the API unreachable: one probe at a time, each counted.
  run({{"s1", Ending::kNotSent}, {"s2", Ending::kNotSent}});
  CHECK(log ==
        std::vector<std::string>{"s1 probes", "s1 not sent 1", "s2 probes", "s2 not sent 2"});
  CHECK(gate.unreachable());
  CHECK_FALSE(gate.losing());
  CHECK(gate.probes_failed() == 2);
  // A lost answer counts in the same row, and makes the gate a losing one, which a submit not
  // sent does not undo.
  run({{"s3", Ending::kLost}, {"s4", Ending::kNotSent}});
  CHECK(log == std::vector<std::string>{"s3 probes", "s3 lost 3", "s4 probes", "s4 not sent 4"});
  CHECK(gate.losing());
  // An answer opens it and ends the row.
  run({{"s5", Ending::kAnswered}});
  CHECK_FALSE(gate.narrowed());
  CHECK(gate.probes_failed() == 0);
  // Open, two go together and neither is sent (no probes: not counted); the gate narrows.
  run({{"a", Ending::kNotSent}, {"b", Ending::kNotSent}});
  CHECK(log == std::vector<std::string>{"a goes", "b goes", "a not sent 0", "b not sent 0"});
  CHECK(gate.unreachable());
  run({{"c", Ending::kNotSent}});
  CHECK(log == std::vector<std::string>{"c probes", "c not sent 1"});
}

TEST_CASE("refusal streak: the third refused item in a row stops; an accepted one resets") {
  RefusalStreak streak;
  CHECK_FALSE(streak.Refused());
  CHECK_FALSE(streak.Refused());
  streak.Accepted();
  CHECK(streak.length() == 0);
  CHECK_FALSE(streak.Refused());
  CHECK_FALSE(streak.Refused());
  CHECK(streak.Refused());
  CHECK(streak.length() == RefusalStreak::kItemsBeforeStop);
  CHECK(streak.Refused());  // still a streak: each further refusal says stop again
}

}  // namespace
}  // namespace nanobatch::engine
