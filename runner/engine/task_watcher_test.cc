#include "runner/engine/task_watcher.h"

#include <doctest/doctest.h>

#include <boost/asio.hpp>

#include "runner/engine/idle_watcher.h"
#include "runner/util/random_token.h"

namespace nanobatch::engine {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

// Every verdict comes from a callback (IdleWatcher: polls go nowhere, an hour away).
struct Fixture : IdleWatcher {
  // Runs the loop until `done` or 5 s pass (every loop in a test is bounded).
  void RunUntil(const bool& done) {
    for (int i = 0; i < 500 && !done; ++i) {
      io.restart();  // a loop that ran out of work is stopped until restarted
      io.run_for(10ms);
    }
  }
};

std::string TaskBody(std::string_view id, std::string_view status) {
  return std::string(R"({"id":")") + std::string(id) + R"(","status":")" + std::string(status) +
         R"(","created_at":1775383908,"completed_at":1775383912,"output":{"urls":["https://f/a.png"]}})";
}

TEST_CASE("task watcher: an Await that is never awaited registers nothing") {
  Fixture f;
  {
    auto operation = f.watcher.Await(WatchedTask{.task_id = "task-1", .resolution = "1K"});
    CHECK(f.watcher.waiting() == 0);
  }
  f.io.run_for(10ms);
  CHECK(f.watcher.waiting() == 0);
  CHECK(f.watcher.pollers() == 0);
}

TEST_CASE("task watcher: a callback settles the awaited task at once, no poll sent") {
  Fixture f;
  const std::string token(32, 'a');
  f.watcher.Expect(token);
  f.watcher.Bind(token, "task-1");
  TaskVerdict verdict;
  bool done = false;
  net::co_spawn(
      f.io,
      [&]() -> net::awaitable<void> {
        WatchedTask task{.task_id = "task-1", .resolution = "1K"};
        verdict = *co_await f.watcher.Await(std::move(task));
        done = true;
      },
      net::detached);
  f.io.run_for(20ms);
  CHECK(f.watcher.waiting() == 1);
  // Forgeries first: none has any effect.
  CHECK(f.watcher.OnCallback(std::string(32, 'b'), TaskBody("task-1", "completed")) == 404);
  CHECK(f.watcher.OnCallback(token, "<html>hi</html>") == 400);
  CHECK(f.watcher.OnCallback(token, R"({"status":"completed"})") == 400);  // names no task
  CHECK(f.watcher.OnCallback(token, TaskBody("task-2", "completed")) == 409);
  CHECK(f.watcher.OnCallback(token, TaskBody("../x", "completed")) == 400);
  CHECK(f.watcher.OnCallback(token, TaskBody("task-1", "processing")) == 200);  // not final
  f.io.run_for(20ms);
  CHECK_FALSE(done);
  // The real one.
  CHECK(f.watcher.OnCallback(token, TaskBody("task-1", "completed")) == 200);
  f.RunUntil(done);
  REQUIRE(done);
  CHECK(verdict.kind == TaskVerdict::Kind::kCompleted);
  CHECK(verdict.by_callback);
  REQUIRE(verdict.status.urls.size() == 1);
  CHECK(f.watcher.stats().polls == 0);
  CHECK(f.watcher.stats().callbacks_refused == 5);
  // It taught the schedule from the API's timestamps (4 s).
  CHECK(f.watcher.schedule().Quantile("1K", 0.9)->count() == doctest::Approx(4));
  // Replays after the item is finished are harmless.
  f.watcher.Forget(token);
  CHECK(f.watcher.OnCallback(token, TaskBody("task-1", "completed")) == 200);
  CHECK(f.watcher.OnCallback(token, TaskBody("task-1", "failed")) == 200);
  CHECK(f.stops.empty());
}

TEST_CASE("task watcher: a callback before anyone awaits is kept; a duplicate changes nothing") {
  Fixture f;
  const std::string token(32, 'c');
  f.watcher.Expect(token);
  f.watcher.Bind(token, "task-9");
  CHECK(f.watcher.OnCallback(token, TaskBody("task-9", "failed")) == 200);
  CHECK(f.watcher.OnCallback(token, TaskBody("task-9", "completed")) == 200);  // ignored
  TaskVerdict verdict;
  bool done = false;
  net::co_spawn(
      f.io,
      [&]() -> net::awaitable<void> {
        WatchedTask task{.task_id = "task-9", .resolution = "2K"};
        verdict = *co_await f.watcher.Await(std::move(task));
        done = true;
      },
      net::detached);
  f.RunUntil(done);
  REQUIRE(done);
  CHECK(verdict.kind == TaskVerdict::Kind::kFailed);  // the first word stands
  CHECK(f.watcher.stats().callbacks_ignored == 1);
}

TEST_CASE("task watcher: a lost submit answer is recovered from the callback that names its task") {
  Fixture f;
  const std::string token(32, 'd');
  f.watcher.Expect(token);
  std::optional<std::string> revealed;
  bool done = false;
  net::co_spawn(
      f.io,
      [&]() -> net::awaitable<void> {
        revealed = co_await f.watcher.AwaitReveal(token, std::chrono::hours(1));
        done = true;
      },
      net::detached);
  f.io.run_for(20ms);
  CHECK_FALSE(done);
  CHECK(f.watcher.OnCallback(token, TaskBody("task-lost", "completed")) == 200);
  f.RunUntil(done);
  REQUIRE(done);
  CHECK(revealed == "task-lost");
  CHECK(f.watcher.stats().revealed == 1);
  // Its verdict waits for the Await that follows the recorded submission.
  TaskVerdict verdict;
  done = false;
  net::co_spawn(
      f.io,
      [&]() -> net::awaitable<void> {
        f.watcher.Bind(token, "task-lost");  // what the submitter does with the revealed id
        WatchedTask task{.task_id = "task-lost", .resolution = "1K"};
        verdict = *co_await f.watcher.Await(std::move(task));
        done = true;
      },
      net::detached);
  f.RunUntil(done);
  REQUIRE(done);
  CHECK(verdict.kind == TaskVerdict::Kind::kCompleted);
}

TEST_CASE("task watcher: a stop ends every wait at once, with the task left open") {
  Fixture f;
  f.watcher.Expect(std::string(32, 'e'));
  int open = 0, finished = 0;
  for (int i = 0; i < 3; ++i) {
    net::co_spawn(
        f.io,
        [&, i]() -> net::awaitable<void> {
          WatchedTask task{.task_id = "t" + std::to_string(i), .resolution = "1K"};
          const TaskVerdict verdict = *co_await f.watcher.Await(std::move(task));
          open += verdict.kind == TaskVerdict::Kind::kOpen;
          ++finished;
        },
        net::detached);
  }
  std::optional<std::string> revealed = "unset";
  net::co_spawn(
      f.io,
      [&]() -> net::awaitable<void> {
        revealed = co_await f.watcher.AwaitReveal(std::string(32, 'e'), std::chrono::hours(1));
        ++finished;
      },
      net::detached);
  f.io.run_for(20ms);
  f.halt.Trigger();
  for (int i = 0; i < 500 && finished < 4; ++i) f.io.run_for(10ms);
  CHECK(finished == 4);
  CHECK(open == 3);
  CHECK_FALSE(revealed.has_value());
}

TEST_CASE(
    "task watcher: thousands of waiting tasks are nodes, not coroutines; callbacks settle "
    "each one and the scheduler ends when nothing waits") {
  Fixture f;
  constexpr int kTasks = 2000;
  std::vector<std::string> tokens;
  int completed = 0, finished = 0;
  for (int i = 0; i < kTasks; ++i) {
    tokens.push_back(util::RandomToken());
    f.watcher.Expect(tokens.back());
    f.watcher.Bind(tokens.back(), "t" + std::to_string(i));
    net::co_spawn(
        f.io,
        [&, i]() -> net::awaitable<void> {
          WatchedTask task{.task_id = "t" + std::to_string(i), .resolution = "1K"};
          const std::unique_ptr<TaskVerdict> verdict = co_await f.watcher.Await(std::move(task));
          completed += verdict->kind == TaskVerdict::Kind::kCompleted && verdict->by_callback;
          ++finished;
        },
        net::detached);
  }
  // Until every task waits (2,000 coroutines take more than 50 ms to start under ASan on a
  // busy machine: 1,539 had, once).
  for (int i = 0; i < 1000 && f.watcher.waiting() < kTasks; ++i) f.io.run_for(10ms);
  CHECK(f.watcher.waiting() == kTasks);
  CHECK(f.watcher.pollers() == 0);  // the first polls are an hour away
  // Settled in reverse order of waiting: each leaves the schedule wherever it is.
  for (int i = kTasks - 1; i >= 0; --i) {
    CHECK(f.watcher.OnCallback(tokens[i], TaskBody("t" + std::to_string(i), "completed")) == 200);
  }
  for (int i = 0; i < 500 && finished < kTasks; ++i) f.io.run_for(10ms);
  CHECK(finished == kTasks);
  CHECK(completed == kTasks);
  CHECK(f.watcher.waiting() == 0);
  CHECK(f.watcher.stats().polls == 0);
  CHECK(f.watcher.stats().settled_by_callback == kTasks);
  // Nothing of the watcher is left running (no scheduler asleep): the loop runs out of work.
  f.io.restart();
  f.io.run_for(std::chrono::seconds(2));
  CHECK(f.io.stopped());
}

// Polls that go to a closed port on loopback: every poll fails at once (connection refused).
struct RefusingWatcher {
  explicit RefusingWatcher(std::size_t max_polls)
      : RefusingWatcher(TaskWatcherOptions{.retry_base = Seconds(0.01),
                                           .retry_max = Seconds(0.02),
                                           .max_failed_polls = 3,
                                           .max_concurrent_polls = max_polls}) {}
  explicit RefusingWatcher(TaskWatcherOptions options) {
    watcher.emplace(
        io.get_executor(), client, limiter, halt,
        [](http::Request::Method method, std::string target) {
          http::Request request;
          request.method = method;
          request.endpoint = *http::ParseUrl("https://127.0.0.1:" + std::to_string(port));
          request.endpoint.target = std::move(target);
          return request;
        },
        options, [this](StopReason, const std::string& detail) { stops.push_back(detail); });
  }
  static inline int port = 0;
  boost::asio::io_context io{1};
  http::Client client{io.get_executor(), {}};
  RateLimiter limiter{io.get_executor(), 10000, 1000};
  util::StopSignal halt{io.get_executor()};
  std::vector<std::string> stops;
  std::optional<TaskWatcher> watcher;
};

// A port with nothing listening: bound, then closed.
int ClosedPort() {
  net::io_context probe;
  net::ip::tcp::acceptor acceptor(probe, {net::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

TEST_CASE("task watcher: due polls go out through at most max_concurrent_polls pollers") {
  RefusingWatcher::port = ClosedPort();
  RefusingWatcher f(2);
  constexpr int kTasks = 30;
  int open = 0, finished = 0;
  std::size_t most_pollers = 0;
  for (int i = 0; i < kTasks; ++i) {
    net::co_spawn(
        f.io,
        [&, i]() -> net::awaitable<void> {
          WatchedTask task{.task_id = "t" + std::to_string(i), .resolution = "1K", .resumed = true};
          const std::unique_ptr<TaskVerdict> verdict = co_await f.watcher->Await(std::move(task));
          open += verdict->kind == TaskVerdict::Kind::kOpen;
          ++finished;
        },
        net::detached);
  }
  for (int i = 0; i < 5000 && finished < kTasks; ++i) {
    f.io.run_for(1ms);
    most_pollers = std::max(most_pollers, f.watcher->pollers());
  }
  CHECK(finished == kTasks);
  CHECK(open == kTasks);  // a task whose polls fail is never given up as failed
  CHECK(most_pollers >= 1);
  CHECK(most_pollers <= 2);
  // Each task: polled until its third consecutive failure, which asks to stop.
  CHECK(f.watcher->stats().polls == 3 * kTasks);
  CHECK(f.stops.size() == kTasks);
  CHECK(f.watcher->waiting() == 0);
}

TEST_CASE(
    "task watcher: tasks waiting on first_poll with nothing learned are re-aimed at the "
    "first lesson") {
  RefusingWatcher::port = ClosedPort();
  RefusingWatcher f(TaskWatcherOptions{.first_poll = Seconds(3600),
                                       .retry_base = Seconds(0.01),
                                       .retry_max = Seconds(0.02),
                                       .max_failed_polls = 3});
  // The first tasks of a resolution probe early; the rest wait an hour unless re-aimed.
  const int probes = PollSchedule::kProbes, cold = 5;
  std::vector<std::string> tokens;
  int finished = 0, open = 0;
  for (int i = 0; i < probes + cold; ++i) {
    const std::string id = "t" + std::to_string(i);
    if (i < probes) {
      tokens.push_back(util::RandomToken());
      f.watcher->Expect(tokens.back());
      f.watcher->Bind(tokens.back(), id);
    }
    net::co_spawn(
        f.io,
        [&, id]() -> net::awaitable<void> {
          WatchedTask task{.task_id = id, .resolution = "1K"};
          const std::unique_ptr<TaskVerdict> verdict = co_await f.watcher->Await(std::move(task));
          open += verdict->kind == TaskVerdict::Kind::kOpen;
          ++finished;
        },
        net::detached);
  }
  f.io.run_for(20ms);
  CHECK(f.watcher->waiting() == probes + cold);
  // The probes finish by callback: the API says 1K tasks take 1 s.
  for (int i = 0; i < probes; ++i) {
    const std::string body = R"({"id":"t)" + std::to_string(i) +
                             R"(","status":"completed","created_at":1775383908,)"
                             R"("completed_at":1775383909,"output":{"urls":["https://f/a.png"]}})";
    CHECK(f.watcher->OnCallback(tokens[i], body) == 200);
  }
  // The cold tasks now poll about 1 s after their submit (here: refused, three times each).
  for (int i = 0; i < 800 && finished < probes + cold; ++i) f.io.run_for(10ms);
  CHECK(finished == probes + cold);
  CHECK(open == cold);
  CHECK(f.watcher->stats().polls == 3 * cold);
  CHECK(f.stops.size() == cold);
}

}  // namespace
}  // namespace nanobatch::engine
