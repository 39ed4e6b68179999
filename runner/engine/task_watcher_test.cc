#include "runner/engine/task_watcher.h"

#include <doctest/doctest.h>

#include <boost/asio.hpp>

#include "runner/engine/idle_watcher.h"

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
        verdict = co_await f.watcher.Await(std::move(task));
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
        verdict = co_await f.watcher.Await(std::move(task));
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
        verdict = co_await f.watcher.Await(std::move(task));
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
          const TaskVerdict verdict = co_await f.watcher.Await(std::move(task));
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

}  // namespace
}  // namespace nanobatch::engine
