#pragma once
// TaskWatcher: `co_await watcher.Await(task)` ends with the task's verdict from whichever comes
// first, a poll or a callback (the API's webhook). It owns everything about learning a task's
// fate: the poll schedule (learned from the API's timestamps), the polls themselves (rate token,
// deadline, the classification of every answer), the index task id -> waiter, and the book of
// callback tokens, so that the receiver, the submitter and the item coroutines share one owner.
//
// A waiting task costs a small node, not a coroutine: thousands wait at once for minutes, and
// each would otherwise hold a frame, a timer and a timer operation. The item's coroutine is
// suspended on Await; its task is a Watch in one time-ordered schedule with one timer (the
// scheduler coroutine's, which runs only while something waits), and the polls that come due are
// sent by at most `max_concurrent_polls` poller coroutines (no more could be out at once anyway:
// each needs a connection of the API host). Pollers take due tasks earliest first.
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
//   WatchedTask task{.task_id = id, .resolution = "1K"};   // named: GCC 12 and co_await
//   std::unique_ptr<TaskVerdict> verdict = co_await watcher.Await(std::move(task));
//   if (verdict->kind == TaskVerdict::Kind::kCompleted) ... verdict->status.urls ...

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
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
  api::ApiError error;         // kNotFound
  bool by_callback = false;    // settled by the webhook rather than a poll
  bool past_deadline = false;  // kOpen because polling.task_deadline_s passed (not a stop)
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
  std::optional<Seconds> callback_safety_poll{};
  // Polls out at once (pollers): more would only queue for the API host's connections.
  std::size_t max_concurrent_polls = 32;
};

class TaskWatcher {
 public:
  using StopFn = std::function<void(StopReason, const std::string&)>;
  // Builds an API request (base URL and credentials are the caller's).
  using RequestFn = std::function<http::Request(http::Request::Method, std::string target)>;

  TaskWatcher(boost::asio::any_io_executor executor, http::Client& client, RateLimiter& limiter,
              util::StopSignal& halt, RequestFn request, TaskWatcherOptions options, StopFn stop);
  ~TaskWatcher();
  TaskWatcher(const TaskWatcher&) = delete;
  TaskWatcher& operator=(const TaskWatcher&) = delete;

  // The task's verdict, never null (kOpen: past its deadline, or the run is stopping). Behind a
  // pointer so that the awaiting frame holds 8 bytes, not a verdict, while the task waits.
  // A deferred operation, not a coroutine: `co_await` suspends the awaiting coroutine directly on
  // it, with no frame of its own (a use_awaitable initiation is a 180-byte coroutine frame for
  // as long as the task waits). The task is registered only if the operation is started.
  struct AwaitInitiation;
  using AwaitOperation =
      boost::asio::deferred_async_operation<void(std::unique_ptr<TaskVerdict>), AwaitInitiation,
                                            std::unique_ptr<WatchedTask>>;
  AwaitOperation Await(WatchedTask task);

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
  std::size_t waiting() const { return watches_.size(); }
  // Poller coroutines running now (at most options.max_concurrent_polls).
  std::size_t pollers() const { return pollers_; }

 private:
  struct Watch;
  using Completion = boost::asio::any_completion_handler<void(std::unique_ptr<TaskVerdict>)>;
  using DueQueue = std::multimap<Clock::time_point, Watch*>;  // when due -> task; FIFO on ties
  // One waiting task: what it needs of its WatchedTask, laid out to fit 112 bytes (a list node
  // of 128: thousands wait at once).
  struct Watch {
    Watch(WatchedTask& watched, const std::string& interned_resolution)
        : task_id(std::move(watched.task_id)),
          resolution(&interned_resolution),
          answered_at(watched.answered_at),
          poll_counter(watched.poll_counter),
          resumed(watched.resumed) {}
    std::string task_id;
    const std::string* resolution;  // in resolutions_
    Clock::time_point answered_at;  // when the submit's answer arrived
    std::uint64_t* poll_counter;    // the job's count of polls, or null
    Clock::time_point next_poll{};
    std::uint16_t failures = 0;                   // consecutive polls without a usable answer
    bool cold = false;                            // waiting for its first poll with nothing learned
    bool resumed;                                 // submitted by an earlier run: polled at once
    std::uint32_t answered_at_first_failure = 0;  // polls_answered_ then
    // A verdict delivered by the webhook. Behind a pointer: few ever receive one while waiting.
    std::unique_ptr<api::TaskStatus> callback;
    DueQueue::iterator slot;          // in due_ while waiting for its next poll; else end()
    std::list<Watch>::iterator self;  // in watches_
    Completion done;                  // the awaiting coroutine
  };
  // What one poll came to, for the poller. The poll's request, response and decoding live in
  // Poll's frame, only while the poll is out.
  struct PollStep {
    enum class Kind {
      kVerdict,   // the watch ends with `verdict` (final, not found; null: stopping)
      kAnswered,  // an answer, not final: poll again at `next_poll`
      kRetry,     // told to slow down: poll again at `next_poll`, failures unchanged
      kFailed,    // no usable answer (`failure` says why)
    };
    Kind kind = Kind::kVerdict;
    std::unique_ptr<TaskVerdict> verdict;  // kVerdict; null: stopping (TaskVerdict{})
    Clock::time_point next_poll{};
    std::string failure;
  };
  boost::asio::awaitable<PollStep> Poll(Watch& watch);
  struct Token {
    std::string task_id;                             // bound: the task its submission created
    std::optional<api::TaskStatus> early;            // a verdict that arrived before anyone awaited
    boost::asio::steady_timer* revealing = nullptr;  // AwaitReveal's sleep
  };

  // Await's initiation: the watch joins the schedule (or ends at once: an early callback, a halt).
  void Start(std::unique_ptr<WatchedTask> task, Completion done);
  // Past it, the task stays open (polled again next run); not stored: a watch is one of
  // thousands, and 8 bytes move it to a larger allocation class.
  Clock::time_point DeadlineOf(const Watch& watch) const;
  // Puts the watch in the schedule for its next poll (or its deadline, if sooner).
  void Arm(Watch& watch, Clock::time_point next_poll);
  // Ends the watch: out of every index, its coroutine resumed (posted, never inline) with
  // `verdict`; null: the task stays open.
  void Finish(Watch& watch, std::unique_ptr<TaskVerdict> verdict);
  void FinishByCallback(Watch& watch);
  // A live watch is either in due_ or held by a poller whose poll is out.
  bool Polling(const Watch& watch) const { return watch.slot == due_.end(); }
  // Sleeps until the first watch is due, starts pollers for due watches, ends every waiting
  // watch on a halt. Runs while anything waits; `alive` is false once the watcher is gone.
  boost::asio::awaitable<void> RunSchedule(std::shared_ptr<const bool> alive);
  // Polls due watches, earliest first, until none is due.
  boost::asio::awaitable<void> RunPolls(std::shared_ptr<const bool> alive);
  void WakeScheduler();
  void Learn(const std::string& resolution, const api::TaskStatus& status);
  Clock::time_point FirstPollAt(const Watch& watch, bool probe) const;
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
  // Every resolution a task has waited with (a handful): a watch points at its own.
  std::set<std::string, std::less<>> resolutions_;
  // Polls answered, every task's (wrapping): a task whose polls keep failing while others are
  // answered since its first failure has trouble of its own, not the API.
  std::uint32_t polls_answered_ = 0;
  std::list<Watch> watches_;  // every waiting task (stable addresses)
  DueQueue due_;              // the watches not being polled, by when they are due
  // task id -> its watch, for callbacks (a server repeating a task id: the latest watch wins);
  // tasks without a callback token are not in it.
  std::unordered_map<std::string_view, Watch*> by_task_id_;
  bool scheduler_running_ = false;
  boost::asio::steady_timer* scheduler_timer_ = nullptr;  // its sleep, while it sleeps
  Clock::time_point scheduler_wake_ = Clock::time_point::max();
  std::size_t pollers_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unordered_map<std::string, Token> tokens_;  // live submissions
  std::unordered_map<std::string, std::string> token_of_task_;
  // Tokens whose submission is over, kept (bounded) so their replays are answered 200.
  std::unordered_set<std::string> settled_tokens_;
  std::deque<std::string> settled_order_;
  Stats stats_;
};

struct TaskWatcher::AwaitInitiation {
  TaskWatcher* watcher;
  template <typename Handler>
  void operator()(Handler&& handler, std::unique_ptr<WatchedTask> task) const {
    // A plain allocation of its own size: the handler's default allocator is Asio's recycling
    // one, which hands out a cached block of whatever operation freed it last (a socket send:
    // several hundred bytes) and would keep it for as long as the task waits.
    watcher->Start(std::move(task), Completion(boost::asio::bind_allocator(
                                        std::allocator<void>(), std::forward<Handler>(handler))));
  }
};

// The webhook receiver's answer to one request: POST to .../<token> (32 hex digits, the last
// path segment whatever a proxy put before it), settled through `watcher`.OnCallback.
http::Reply RouteCallback(TaskWatcher& watcher, const http::IncomingRequest& request);

}  // namespace nanobatch::engine
