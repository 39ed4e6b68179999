#include "runner/engine/task_watcher.h"

#include <boost/asio/as_tuple.hpp>
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

net::awaitable<bool> TaskWatcher::SleepUntil(Waiter& waiter, Clock::time_point when) {
  if (waiter.callback) co_return halt_.triggered();
  if (when <= Clock::now()) co_return halt_.triggered();
  waiter.timer.expires_at(when);
  co_return co_await halt_.SleepOn(waiter.timer);
}

Clock::time_point TaskWatcher::FirstPollAt(const WatchedTask& task, bool probe) const {
  if (task.resumed) return Clock::now();
  Seconds delay = probe ? schedule_.ProbeFirst() : schedule_.FirstPoll(task.resolution);
  if (options_.callback_safety_poll) {
    // The webhook is expected to settle the task: the poll only covers a callback that never
    // comes, so it waits well past the time nearly every task takes.
    auto slowest = schedule_.Quantile(task.resolution, 0.99);
    delay = std::max({*options_.callback_safety_poll, slowest ? *slowest * 2 : Seconds(0),
                      options_.first_poll * 2});
  }
  return task.answered_at + ToDuration(delay);
}

void TaskWatcher::Learn(const std::string& resolution, const api::TaskStatus& status) {
  auto took = api::ReportedDurationSeconds(status);
  if (!took) return;
  const bool first_lesson = !schedule_.Knows(resolution);
  schedule_.Learn(resolution, Seconds(static_cast<double>(*took)));
  if (!first_lesson) return;
  // Tasks waiting on first_poll because nothing was known are re-aimed at what is now known.
  for (auto& [task_id, waiter] : waiters_) {
    if (waiter->cold && waiter->resolution == resolution) waiter->timer.cancel();
  }
}

net::awaitable<TaskVerdict> TaskWatcher::Await(WatchedTask task) {
  const std::string& task_id = task.task_id;
  Waiter waiter(executor_);
  waiter.resolution = task.resolution;
  // A callback may have come before this wait began (it is answered as soon as it arrives).
  if (auto token = token_of_task_.find(task_id); token != token_of_task_.end()) {
    auto& entry = tokens_[token->second];
    if (entry.early) {
      waiter.callback = std::make_unique<api::TaskStatus>(std::move(*entry.early));
      entry.early.reset();
    }
  }
  waiters_[task_id] = &waiter;
  struct Unregister {
    TaskWatcher& watcher;
    const std::string& task_id;
    ~Unregister() { watcher.waiters_.erase(task_id); }
  } unregister{*this, task_id};

  const std::string target = api::TaskTarget(task_id);
  const auto deadline = task.answered_at + ToDuration(options_.task_deadline);
  const bool probe =
      !task.resumed && !options_.callback_safety_poll && schedule_.StartProbe(task.resolution);
  waiter.cold = !task.resumed && !probe && !schedule_.Knows(task.resolution);
  Clock::time_point next_poll = FirstPollAt(task, probe);
  unsigned failures = 0;  // consecutive polls without a usable answer
  auto failed_poll = [&](const std::string& what) {
    if (++failures >= options_.max_failed_polls) {
      stop_(StopReason::kServerDown, "polling task " + task_id + " failed " +
                                         std::to_string(failures) + " times in a row (" + what +
                                         ")");
      return false;
    }
    next_poll = Clock::now() + ToDuration(backoff_.Delay(failures - 1) + Seconds(0.1));
    return true;
  };

  while (true) {
    // Sleep until the poll is due, re-aiming while this task waits on nothing learned.
    while (!waiter.callback) {
      if (co_await SleepUntil(waiter, std::min(next_poll, deadline))) co_return TaskVerdict{};
      if (waiter.cold && schedule_.Knows(task.resolution)) {
        waiter.cold = false;
        next_poll = std::min(next_poll, FirstPollAt(task, false));
      }
      if (Clock::now() >= std::min(next_poll, deadline)) break;
    }
    waiter.cold = false;
    if (waiter.callback) {
      ++stats_.settled_by_callback;
      Learn(task.resolution, *waiter.callback);
      co_return VerdictOf(*waiter.callback, true);
    }
    if (Clock::now() >= deadline) {
      // Only the API saying `failed` or `task_not_found` frees an item for another payment.
      LogWarning("task " + task_id +
                 " is not finished after polling.task_deadline_s; it stays submitted and the "
                 "next run polls it again");
      co_return TaskVerdict{};
    }

    ++stats_.polls;
    if (task.poll_counter != nullptr) ++*task.poll_counter;
    PollStep step = co_await Poll(task, target, waiter);
    switch (step.kind) {
      case PollStep::Kind::kVerdict:
        co_return step.verdict ? std::move(*step.verdict) : TaskVerdict{};
      case PollStep::Kind::kCallbackCame:
        continue;
      case PollStep::Kind::kAnswered:
        failures = 0;
        next_poll = step.next_poll;
        continue;
      case PollStep::Kind::kRetry:
        next_poll = step.next_poll;
        continue;
      case PollStep::Kind::kFailed:
        if (!failed_poll(step.failure)) co_return TaskVerdict{};
        continue;
    }
  }
}

net::awaitable<TaskWatcher::PollStep> TaskWatcher::Poll(const WatchedTask& task,
                                                        const std::string& target, Waiter& waiter) {
  const std::string& task_id = task.task_id;
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
  http::Request request = request_(http::Request::Method::kGet, target);
  http::Client::Slot connection = co_await client_.AcquireSlot(request.endpoint, &halt_);
  if (!connection || !co_await limiter_.Acquire(&halt_)) co_return std::move(step);
  auto result = co_await client_.Send(connection, std::move(request),
                                      ToDuration(options_.request_timeout), api::kApiBodyLimit);
  if (halt_.triggered()) co_return std::move(step);
  if (waiter.callback) {
    step.kind = PollStep::Kind::kCallbackCame;
    co_return std::move(step);
  }
  const Seconds elapsed = Clock::now() - task.answered_at;
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
      Learn(task.resolution, *status);
      co_return verdict(VerdictOf(*status, false));
    }
    Seconds wait = schedule_.NextPoll(task.resolution, elapsed);
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
  auto waiter = waiters_.find(entry.task_id);
  if (waiter != waiters_.end()) {
    if (waiter->second->callback) {
      ++stats_.callbacks_ignored;  // a duplicate before the waiter woke
      return 200;
    }
    waiter->second->callback = std::make_unique<api::TaskStatus>(*status);
    waiter->second->timer.cancel();
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
  if (request.method != "POST") return {405, "POST only\n"};
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
