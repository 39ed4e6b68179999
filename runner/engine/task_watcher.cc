#include "runner/engine/task_watcher.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

#include "runner/util/log.h"
#include "runner/util/server_text.h"

namespace nanobatch::engine {
namespace {

namespace net = boost::asio;
using util::LogWarning;

// Tokens of finished submissions remembered so that their replays are answered 200 rather than
// 404 (which a sender might retry for ever). Bounded: a replay older than this gets a 404, which
// changes nothing either.
constexpr std::size_t kSettledTokensKept = 65536;

bool IsFinal(const api::TaskStatus& status) {
  return status.state == api::TaskStatus::State::kCompleted ||
         status.state == api::TaskStatus::State::kFailed;
}

TaskVerdict VerdictOf(const api::TaskStatus& status, bool by_callback) {
  TaskVerdict verdict;
  verdict.kind = status.state == api::TaskStatus::State::kCompleted ? TaskVerdict::Kind::kCompleted
                                                                    : TaskVerdict::Kind::kFailed;
  verdict.status = status;
  verdict.by_callback = by_callback;
  return verdict;
}

}  // namespace

TaskWatcher::TaskWatcher(net::any_io_executor executor, http::Client& client, RateLimiter& limiter,
                         util::StopSignal& halt, RequestFn request, TaskWatcherOptions options,
                         StopFn stop)
    : executor_(std::move(executor)),
      client_(client),
      limiter_(limiter),
      halt_(halt),
      request_(std::move(request)),
      options_(options),
      stop_(std::move(stop)),
      schedule_(options.first_poll, options.max_interval),
      backoff_(options.retry_base, options.retry_max, std::random_device{}()) {}

Clock::time_point TaskWatcher::FirstPollAt(const Watch& watch, bool probe) const {
  if (watch.resumed) return Clock::now();
  Seconds delay = probe ? schedule_.ProbeFirst() : schedule_.FirstPoll(*watch.resolution);
  if (options_.callback_safety_poll) {
    // The webhook is expected to settle the task: the poll only covers a callback that never
    // comes, so it waits well past the time nearly every task takes.
    auto slowest = schedule_.Quantile(*watch.resolution, 0.99);
    delay = std::max({*options_.callback_safety_poll, slowest ? *slowest * 2 : Seconds(0),
                      options_.first_poll * 2});
  }
  return watch.answered_at + ToDuration(delay);
}

void TaskWatcher::Learn(const std::string& resolution, const api::TaskStatus& status) {
  auto took = api::ReportedDurationSeconds(status);
  if (!took) return;
  const bool first_lesson = !schedule_.Knows(resolution);
  schedule_.Learn(resolution, Seconds(static_cast<double>(*took)));
  if (!first_lesson) return;
  // Tasks waiting on first_poll because nothing was known are re-aimed at what is now known.
  for (Watch& watch : watches_) {
    if (!watch.cold || Polling(watch) || *watch.resolution != resolution) continue;
    watch.cold = false;
    const Clock::time_point aimed = std::min(watch.next_poll, FirstPollAt(watch, false));
    if (aimed == watch.next_poll) continue;
    due_.erase(watch.slot);
    Arm(watch, aimed);
  }
}

TaskWatcher::~TaskWatcher() {
  // A scheduler still asleep (only if the watcher dies with tasks waiting) must not touch it.
  *alive_ = false;
  if (scheduler_timer_ != nullptr) scheduler_timer_->cancel();
}

Clock::time_point TaskWatcher::DeadlineOf(const Watch& watch) const {
  return watch.answered_at + ToDuration(options_.task_deadline);
}

TaskWatcher::AwaitOperation TaskWatcher::Await(WatchedTask task) {
  // The task travels to the initiation behind a pointer: the operation lives in the awaiting
  // frame for as long as the task waits.
  return net::async_initiate<const net::deferred_t&, void(std::unique_ptr<TaskVerdict>)>(
      AwaitInitiation{this}, net::deferred, std::make_unique<WatchedTask>(std::move(task)));
}

void TaskWatcher::Start(std::unique_ptr<WatchedTask> task_to_watch, Completion done) {
  static_assert(sizeof(Watch) <= 112, "a waiting task's node grows to the next allocation class");
  // Interned: insert copies the resolution only the first time it is seen.
  const std::string& resolution = *resolutions_.insert(task_to_watch->resolution).first;
  Watch& watch = watches_.emplace_back(*task_to_watch, resolution);
  task_to_watch.reset();
  watch.self = std::prev(watches_.end());
  watch.slot = due_.end();
  // Not move-assigned: Boost 1.81's any_completion_handler::operator=(&&) copies its argument
  // as an lvalue, which wraps it in itself without end.
  watch.done.swap(done);
  // Only a task with a callback token can be settled by a callback: only those are indexed (the
  // submitter and the job bind the token before the wait begins).
  if (auto token = token_of_task_.find(watch.task_id); token != token_of_task_.end()) {
    by_task_id_[watch.task_id] = &watch;
    // A callback may have come before this wait began (it is answered as soon as it arrives).
    auto& entry = tokens_[token->second];
    if (entry.early) {
      watch.callback = std::make_unique<api::TaskStatus>(std::move(*entry.early));
      entry.early.reset();
    }
  }
  if (watch.callback) return FinishByCallback(watch);
  if (halt_.triggered()) return Finish(watch, nullptr);
  const bool probe =
      !watch.resumed && !options_.callback_safety_poll && schedule_.StartProbe(*watch.resolution);
  watch.cold = !watch.resumed && !probe && !schedule_.Knows(*watch.resolution);
  Arm(watch, FirstPollAt(watch, probe));
}

void TaskWatcher::Arm(Watch& watch, Clock::time_point next_poll) {
  watch.next_poll = next_poll;
  const Clock::time_point due = std::min(next_poll, DeadlineOf(watch));
  watch.slot = due_.emplace(due, &watch);
  if (!scheduler_running_) {
    scheduler_running_ = true;
    net::co_spawn(executor_, RunSchedule(alive_), [](const std::exception_ptr& failure) {
      if (failure) std::rethrow_exception(failure);  // a bug: never dropped
    });
  } else if (due < scheduler_wake_ && pollers_ < options_.max_concurrent_polls) {
    // With every poller busy there is nothing to start: a poller takes the watch when it is
    // due, or wakes the scheduler as it ends.
    WakeScheduler();
  }
}

void TaskWatcher::WakeScheduler() {
  if (scheduler_timer_ != nullptr) scheduler_timer_->cancel();
}

void TaskWatcher::Finish(Watch& watch, std::unique_ptr<TaskVerdict> verdict) {
  if (!verdict) verdict = std::make_unique<TaskVerdict>();
  if (watch.slot != due_.end()) due_.erase(watch.slot);
  if (auto it = by_task_id_.find(watch.task_id); it != by_task_id_.end() && it->second == &watch) {
    by_task_id_.erase(it);
  }
  Completion done = std::move(watch.done);
  watches_.erase(watch.self);
  // Posted: the awaiting coroutine runs from the loop, not inside a poller or a callback.
  net::post(executor_, [done = std::move(done), verdict = std::move(verdict)]() mutable {
    std::move(done)(std::move(verdict));
  });
  if (watches_.empty()) WakeScheduler();  // so that it ends
}

void TaskWatcher::FinishByCallback(Watch& watch) {
  ++stats_.settled_by_callback;
  Learn(*watch.resolution, *watch.callback);
  Finish(watch, std::make_unique<TaskVerdict>(VerdictOf(*watch.callback, true)));
}

net::awaitable<void> TaskWatcher::RunSchedule(std::shared_ptr<const bool> alive) {
  // co_spawn starts a coroutine inline when called from the loop's thread: this one is spawned
  // from inside Arm (Learn iterates the watches meanwhile) and must not run until that returns.
  co_await net::post(executor_, net::use_awaitable);
  if (!*alive) co_return;
  net::steady_timer timer(executor_);
  while (true) {
    if (halt_.triggered()) {
      // Stop means every waiting task stops at once; one being polled ends with its poll.
      while (!due_.empty()) Finish(*due_.begin()->second, nullptr);
    }
    if (due_.empty() && (watches_.empty() || halt_.triggered())) break;
    const Clock::time_point now = Clock::now();
    // A poller per due watch, up to the limit (a poller takes due watches until none is left).
    for (auto due = due_.begin();
         pollers_ < options_.max_concurrent_polls && due != due_.end() && due->first <= now;
         ++due) {
      ++pollers_;
      net::co_spawn(executor_, RunPolls(alive_), [](const std::exception_ptr& failure) {
        if (failure) std::rethrow_exception(failure);  // a bug: never dropped
      });
    }
    // Sleep until the first watch is due; with watches due and every poller busy, until woken
    // (a poller that finds nothing due wakes the scheduler as it ends).
    const bool due = !due_.empty() && due_.begin()->first <= now;
    scheduler_wake_ = due_.empty() || due ? Clock::time_point::max() : due_.begin()->first;
    timer.expires_at(scheduler_wake_);
    scheduler_timer_ = &timer;
    co_await halt_.SleepOn(timer);
    if (!*alive) co_return;
    scheduler_timer_ = nullptr;
  }
  scheduler_timer_ = nullptr;
  scheduler_wake_ = Clock::time_point::max();
  scheduler_running_ = false;
}

net::awaitable<void> TaskWatcher::RunPolls(std::shared_ptr<const bool> alive) {
  // Started from the loop, not inline: the scheduler is walking due_ as it spawns pollers.
  co_await net::post(executor_, net::use_awaitable);
  if (!*alive) co_return;
  while (!halt_.triggered() && !due_.empty() && due_.begin()->first <= Clock::now()) {
    Watch& watch = *due_.begin()->second;
    due_.erase(watch.slot);
    watch.slot = due_.end();
    if (Clock::now() >= DeadlineOf(watch)) {
      // Only the API saying `failed` or `task_not_found` frees an item for another payment.
      LogWarning("task " + watch.task_id +
                 " is not finished after polling.task_deadline_s; it stays submitted and the "
                 "next run polls it again");
      auto open = std::make_unique<TaskVerdict>();
      open->past_deadline = true;
      Finish(watch, std::move(open));
      continue;
    }
    watch.cold = false;
    ++stats_.polls;
    if (watch.poll_counter != nullptr) ++*watch.poll_counter;
    PollStep step = co_await Poll(watch);
    if (watch.callback) {
      FinishByCallback(watch);  // the webhook answered while the poll was out
      continue;
    }
    if (halt_.triggered()) {
      Finish(watch, nullptr);
      break;
    }
    switch (step.kind) {
      case PollStep::Kind::kVerdict:
        if (step.verdict) ++polls_answered_;
        Finish(watch, std::move(step.verdict));
        break;
      case PollStep::Kind::kAnswered:
        watch.failures = 0;
        ++polls_answered_;
        Arm(watch, step.next_poll);
        break;
      case PollStep::Kind::kRetry:
        Arm(watch, step.next_poll);
        break;
      case PollStep::Kind::kFailed:
        if (watch.failures == 0) watch.answered_at_first_failure = polls_answered_;
        if (++watch.failures >= options_.max_failed_polls) {
          // An outage when no other poll was answered since this task's first failure:
          // submitting stops. When others were, the trouble is this task's (an answer the API
          // cannot give for it): it alone is left for the next run to poll, and the rest of the
          // run goes on. Either way it stays submitted, never paid again.
          if (polls_answered_ == watch.answered_at_first_failure) {
            stop_(StopReason::kServerDown, "polling task " + watch.task_id + " failed " +
                                               std::to_string(watch.failures) +
                                               " times in a row (" + step.failure + ")");
          } else {
            LogWarning("polling task " + watch.task_id + " failed " +
                       std::to_string(watch.failures) + " times in a row (" + step.failure +
                       ") while other tasks' polls are answered: it stays submitted, and the "
                       "next run polls it again");
          }
          Finish(watch, nullptr);
          break;
        }
        Arm(watch, Clock::now() + ToDuration(backoff_.Delay(watch.failures - 1) + Seconds(0.1)));
        break;
    }
  }
  --pollers_;
  WakeScheduler();  // it sleeps until woken while every poller is busy
}

net::awaitable<TaskWatcher::PollStep> TaskWatcher::Poll(Watch& watch) {
  const std::string& task_id = watch.task_id;
  PollStep step;
  auto verdict = [&step](TaskVerdict value) {
    step.kind = PollStep::Kind::kVerdict;
    step.verdict = std::make_unique<TaskVerdict>(std::move(value));
    return std::move(step);
  };
  auto failed = [&step](std::string why) {
    step.kind = PollStep::Kind::kFailed;
    step.failure = std::move(why);
    return std::move(step);
  };
  // A connection slot, then a rate token, then the request.
  http::Request request = request_(http::Request::Method::kGet, api::TaskTarget(task_id));
  http::Client::Slot connection = co_await client_.AcquireSlot(request.endpoint, &halt_);
  if (!connection || !co_await limiter_.Acquire(&halt_)) co_return std::move(step);
  auto result =
      co_await client_.Send(connection, std::move(request), ToDuration(options_.request_timeout),
                            api::kApiBodyLimit, &halt_);
  // Stopping, or the webhook answered while the poll was out: the poller sees which.
  if (halt_.triggered() || watch.callback) co_return std::move(step);
  const Seconds elapsed = Clock::now() - watch.answered_at;
  if (auto* network = std::get_if<http::NetworkError>(&result)) {
    if (network->permanent) {
      stop_(StopReason::kMisconfigured, network->what);
      co_return std::move(step);
    }
    co_return failed(network->what);
  }
  const http::Response& response = std::get<http::Response>(result);
  api::TaskResult decoded =
      api::DecodeTaskResponse(response.status, response.body, response.retry_after);
  if (auto* status = std::get_if<api::TaskStatus>(&decoded)) {
    if (!status->id.empty() && status->id != task_id) {
      // An answer about another task (a confused cache or proxy) is no answer.
      co_return failed("the answer is about task " + status->id);
    }
    if (IsFinal(*status)) {
      Learn(*watch.resolution, *status);
      co_return verdict(VerdictOf(*status, false));
    }
    Seconds wait = schedule_.NextPoll(*watch.resolution, elapsed);
    if (options_.callback_safety_poll) wait = std::max(wait, *options_.callback_safety_poll);
    step.kind = PollStep::Kind::kAnswered;
    step.next_poll = Clock::now() + ToDuration(wait * (1.05 + 0.05 * (backoff_.Jitter(1) - 1)));
    co_return std::move(step);
  }
  const api::ApiError& error = std::get<api::ApiError>(decoded);
  switch (api::ReactionTo(error)) {
    case api::Reaction::kSlowDown:
      limiter_.OnRateLimited(error.retry_after_s);
      step.kind = PollStep::Kind::kRetry;
      step.next_poll = Clock::now();
      co_return std::move(step);
    case api::Reaction::kStopRun:
      stop_(StopReason::kAuth, error.code + ": " + error.message);
      co_return std::move(step);
    case api::Reaction::kStopMisconfigured:
      stop_(StopReason::kMisconfigured, MisconfiguredMessage(error, "polling"));
      co_return std::move(step);
    case api::Reaction::kResubmit: {
      TaskVerdict not_found;
      not_found.kind = TaskVerdict::Kind::kNotFound;
      not_found.error = error;
      co_return verdict(std::move(not_found));
    }
    default:
      co_return failed(error.code + ": " + error.message);
  }
}

// ---------------------------------------------------------------------------------------------
// Callbacks

void TaskWatcher::Expect(const std::string& token) { tokens_.try_emplace(token); }

void TaskWatcher::Bind(const std::string& token, const std::string& task_id) {
  auto it = tokens_.find(token);
  if (it == tokens_.end()) return;
  Token& entry = it->second;
  if (!entry.task_id.empty() && entry.task_id != task_id) {
    // A callback revealed one task, the submit's answer names another: one of them lies. The
    // answer wins; a verdict learned from the callback is dropped (polls will tell).
    entry.early.reset();
  }
  if (!entry.task_id.empty()) token_of_task_.erase(entry.task_id);
  entry.task_id = task_id;
  token_of_task_[task_id] = token;
}

void TaskWatcher::Settled(const std::string& token) {
  if (settled_tokens_.insert(token).second) {
    settled_order_.push_back(token);
    if (settled_order_.size() > kSettledTokensKept) {
      settled_tokens_.erase(settled_order_.front());
      settled_order_.pop_front();
    }
  }
}

void TaskWatcher::Forget(const std::string& token) {
  auto it = tokens_.find(token);
  if (it == tokens_.end()) return;
  if (!it->second.task_id.empty()) token_of_task_.erase(it->second.task_id);
  if (it->second.revealing) it->second.revealing->cancel();
  tokens_.erase(it);
  Settled(token);
}

net::awaitable<std::optional<std::string>> TaskWatcher::AwaitReveal(const std::string& token,
                                                                    Clock::duration wait) {
  auto it = tokens_.find(token);
  if (it == tokens_.end()) co_return std::nullopt;
  if (it->second.task_id.empty()) {
    net::steady_timer timer(executor_, wait);
    it->second.revealing = &timer;
    co_await halt_.SleepOn(timer);
    it = tokens_.find(token);  // it may have been forgotten meanwhile
    if (it == tokens_.end()) co_return std::nullopt;
    it->second.revealing = nullptr;
  }
  if (it->second.task_id.empty()) co_return std::nullopt;
  co_return it->second.task_id;
}

int TaskWatcher::OnCallback(std::string_view token_text, std::string_view body) {
  const std::string token(token_text);
  auto it = tokens_.find(token);
  if (it == tokens_.end()) {
    if (settled_tokens_.count(token) > 0) {
      ++stats_.callbacks_ignored;  // a replay for a finished submission
      return 200;
    }
    ++stats_.callbacks_refused;
    return 404;
  }
  Token& entry = it->second;
  api::TaskResult decoded = api::DecodeTaskResponse(200, body, "");
  auto* status = std::get_if<api::TaskStatus>(&decoded);
  if (status == nullptr || status->id.empty()) {
    ++stats_.callbacks_refused;
    return 400;
  }
  if (!entry.task_id.empty() && status->id != entry.task_id) {
    ++stats_.callbacks_refused;
    LogWarning("refused a callback for token-bound task " + entry.task_id + " that names task " +
               status->id);
    return 409;
  }
  if (!IsFinal(*status)) {
    ++stats_.callbacks_ignored;
    return 200;
  }
  if (entry.task_id.empty()) {
    // The submission's answer has not arrived, or was lost: the callback tells which task it
    // created. Bound now, so the item is not submitted again.
    Bind(token, status->id);
    ++stats_.revealed;
    if (entry.revealing) entry.revealing->cancel();
  }
  if (auto found = by_task_id_.find(entry.task_id); found != by_task_id_.end()) {
    Watch& watch = *found->second;
    if (watch.callback) {
      ++stats_.callbacks_ignored;  // a duplicate while its poll is out
      return 200;
    }
    watch.callback = std::make_unique<api::TaskStatus>(*status);
    // Settled now, unless a poll is out: its poller settles it when the poll returns.
    if (!Polling(watch)) FinishByCallback(watch);
  } else if (!entry.early) {
    entry.early = *status;
  } else {
    ++stats_.callbacks_ignored;
  }
  return 200;
}

// The receiver takes the token from the last segment of the path, whatever comes before it: a
// reverse proxy may keep or strip its own prefix.
http::Reply RouteCallback(TaskWatcher& watcher, const http::IncomingRequest& request) {
  if (request.method != "POST") return {405, "POST only\n", "text/plain; charset=utf-8", "POST"};
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  const std::string_view token = path.substr(path.rfind('/') + 1);
  if (token.size() != 32 || token.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return {404, "unknown callback\n"};
  }
  switch (watcher.OnCallback(token, request.body)) {
    case 200:
      return {200, "ok\n"};
    case 400:
      return {400, "the body is not a task in the shape of the query response\n"};
    case 409:
      return {409, "the body names another task than this callback's\n"};
    default:
      return {404, "unknown callback\n"};
  }
}

}  // namespace nanobatch::engine
