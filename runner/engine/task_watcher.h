#pragma once
// TaskWatcher: `co_await watcher.Await(task)` ends with the task's verdict from whichever comes
// first, a poll or a callback (the API's webhook). It owns everything about learning a task's
// fate: the poll schedule (learned from the API's timestamps), the polls themselves (rate token,
// deadline, the classification of every answer), the index task id -> waiter, and the book of
// callback tokens, so that the receiver, the submitter and the item coroutines share one owner.
//
// Callbacks: every submission carries a fresh token (>= 128 random bits) in its callback URL.
// Expect(token) before the POST, Bind(token, task id) once the answer names the task. A callback
// is accepted only for a known token and only with a body that decodes exactly like a poll
// answer and names the bound task (or, for a submission whose answer was lost, any valid task:
// that reveals its id, see AwaitReveal). Anything else is refused with a 4xx and changes nothing;
// duplicates and replays of a settled task are answered 200 and change nothing.
//
// The watcher decides nothing about money or the journal: it reports verdicts, and API-wide
// problems (401/403, a base URL that is no API, a dead API) through the `stop` callback.
//
// Example:
//   WatchedTask task{.task_id = id, .resolution = "1K"};   // named: see AwaitTask in engine.cc
//   TaskVerdict verdict = co_await watcher.Await(std::move(task));
//   if (verdict.kind == TaskVerdict::Kind::kCompleted) ... verdict.status.urls ...

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "runner/api/codec.h"
#include "runner/engine/poll_schedule.h"
#include "runner/engine/rate_limiter.h"
#include "runner/engine/stop_reason.h"
#include "runner/http/client.h"
#include "runner/http/server.h"
#include "runner/ratelimit/backoff.h"
#include "runner/util/async.h"

namespace nanobatch::engine {

using Clock = std::chrono::steady_clock;

struct TaskVerdict {
  enum class Kind {
    kCompleted,  // status holds the URLs (or an output problem)
    kFailed,     // the API says failed (credits refunded): status holds the error
    kNotFound,   // 404 task_not_found: the task is gone, its charge unknown
    kOpen,       // neither: past the deadline, or the run is stopping; poll it again next run
  };
  Kind kind = Kind::kOpen;
  api::TaskStatus status;
  api::ApiError error;       // kNotFound
  bool by_callback = false;  // settled by the webhook rather than a poll
};

struct WatchedTask {
  std::string task_id;
  std::string resolution;
  // Submitted by an earlier run (or long ago): may be long finished, so polled at once.
  bool resumed = false;
  Clock::time_point answered_at = Clock::now();  // when the submit's answer arrived
  // The job's own count of polls (serve hosts several jobs on one watcher), or null.
  std::uint64_t* poll_counter = nullptr;
};

struct TaskWatcherOptions {
  Seconds first_poll{8};
  Seconds max_interval{30};
  Seconds task_deadline{1800};
  Seconds request_timeout{30};
  Seconds retry_base{1};  // backoff after an unusable poll answer
  Seconds retry_max{60};
  unsigned max_failed_polls = 5;  // consecutive unusable poll answers before "the API is down"
  // With callbacks on, polls are a safety net: the first goes out this long after the
  // submit's answer at the earliest (and no sooner than twice the learned 99th percentile),
  // later ones at least this far apart.
  std::optional<Seconds> callback_safety_poll;
};

class TaskWatcher {
 public:
  using StopFn = std::function<void(StopReason, const std::string&)>;
  // Builds an API request (base URL and credentials are the caller's).
  using RequestFn = std::function<http::Request(http::Request::Method, std::string target)>;

  TaskWatcher(boost::asio::any_io_executor executor, http::Client& client, RateLimiter& limiter,
              util::StopSignal& halt, RequestFn request, TaskWatcherOptions options, StopFn stop);

  boost::asio::awaitable<TaskVerdict> Await(WatchedTask task);

  // --- callbacks -------------------------------------------------------------------------------
  void Expect(const std::string& token);
  void Bind(const std::string& token, const std::string& task_id);
  // The token's submission is over (the item finished or was abandoned): later callbacks for it
  // are answered 200 and ignored.
  void Forget(const std::string& token);
  // For a submission whose answer was lost: waits up to `wait` for a callback that names the task
  // it created. The task id, or nullopt (no callback, or stopping).
  boost::asio::awaitable<std::optional<std::string>> AwaitReveal(const std::string& token,
                                                                 Clock::duration wait);
  // A callback POSTed to the token's URL: the HTTP status to answer (200, 400, 404 or 409).
  int OnCallback(std::string_view token, std::string_view body);

  PollSchedule& schedule() { return schedule_; }
  struct Stats {
    std::uint64_t polls = 0;  // poll requests sent
    std::uint64_t settled_by_callback = 0;
    std::uint64_t callbacks_refused = 0;  // 4xx answered
    std::uint64_t callbacks_ignored = 0;  // duplicates, replays, non-final states
    std::uint64_t revealed = 0;           // lost submit answers recovered by a callback
  };
  const Stats& stats() const { return stats_; }
  std::size_t waiting() const { return waiters_.size(); }

 private:
  struct Waiter {
    explicit Waiter(boost::asio::any_io_executor executor) : timer(executor) {}
    boost::asio::steady_timer timer;  // its sleep; cancelled to wake it early
    std::string resolution;
    bool cold = false;  // waiting for its first poll with nothing learned
    // A verdict delivered by the webhook. Behind a pointer: every waiting task holds a Waiter in
    // its coroutine frame, and few ever receive a callback while waiting.
    std::unique_ptr<api::TaskStatus> callback;
  };
  // What one poll came to, for Await's loop. Small on purpose: Await's frame lives as long as
  // the task waits (thousands at once); the poll's request, response and decoding live in
  // Poll's frame, only while the poll is out.
  struct PollStep {
    enum class Kind {
      kVerdict,       // Await ends with `verdict` (final, not found, or stopping)
      kCallbackCame,  // the webhook answered while the poll was out
      kAnswered,      // an answer, not final: poll again at `next_poll`
      kRetry,         // told to slow down: poll again at `next_poll`, failures unchanged
      kFailed,        // no usable answer (`failure` says why)
    };
    Kind kind = Kind::kVerdict;
    std::unique_ptr<TaskVerdict> verdict;  // kVerdict; null: stopping (TaskVerdict{})
    Clock::time_point next_poll{};
    std::string failure;
  };
  boost::asio::awaitable<PollStep> Poll(const WatchedTask& task, const std::string& target,
                                        Waiter& waiter);
  struct Token {
    std::string task_id;                             // bound: the task its submission created
    std::optional<api::TaskStatus> early;            // a verdict that arrived before anyone awaited
    boost::asio::steady_timer* revealing = nullptr;  // AwaitReveal's sleep
  };

  // Sleeps until `when` or a wake-up; true if the run is stopping.
  boost::asio::awaitable<bool> SleepUntil(Waiter& waiter, Clock::time_point when);
  void Learn(const std::string& resolution, const api::TaskStatus& status);
  Clock::time_point FirstPollAt(const WatchedTask& task, bool probe) const;
  void Settled(const std::string& token);

  boost::asio::any_io_executor executor_;
  http::Client& client_;
  RateLimiter& limiter_;
  util::StopSignal& halt_;
  RequestFn request_;
  TaskWatcherOptions options_;
  StopFn stop_;
  PollSchedule schedule_;
  ratelimit::Backoff backoff_;
  std::unordered_map<std::string, Waiter*> waiters_;  // task id -> its Await
  std::unordered_map<std::string, Token> tokens_;     // live submissions
  std::unordered_map<std::string, std::string> token_of_task_;
  // Tokens whose submission is over, kept (bounded) so their replays are answered 200.
  std::unordered_set<std::string> settled_tokens_;
  std::deque<std::string> settled_order_;
  Stats stats_;
};

// The webhook receiver's answer to one request: POST to .../<token> (32 hex digits, the last
// path segment whatever a proxy put before it), settled through `watcher`.OnCallback.
http::Reply RouteCallback(TaskWatcher& watcher, const http::IncomingRequest& request);

}  // namespace nanobatch::engine
