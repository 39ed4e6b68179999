#include "runner/engine/service.h"

#include <algorithm>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <random>
#include <string>

#include "runner/util/log.h"

namespace nanobatch::engine {
namespace {

namespace net = boost::asio;
using util::LogInfo;
using util::LogWarning;

constexpr auto kDownloadGrace = std::chrono::seconds(5);

// Requests queue for a connection before taking their rate token, so the pool bounds how many
// submits share one journal commit: kMinConnectionsPerHost keeps group commits large without
// many idle TLS connections. The watcher's pollers are as many: more polls could not be out at
// once.
std::size_t ConnectionsPerHost(const config::Config& config) {
  return std::max<std::size_t>(Service::kMinConnectionsPerHost, config.limits.max_downloads);
}

// The line that says submitting stops (the service's, or one job's) and why.
std::string NoMoreSubmissions(StopReason reason, const std::string& detail) {
  return "no more submissions: " + std::string(Describe(reason)) +
         (detail.empty() ? "" : " (" + detail + ")") + "; finishing the tasks in flight";
}

// A number of seconds as a person writes it: "86400", "0.5".
std::string SecondsText(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", seconds);
  return text;
}

}  // namespace

Service::Service(net::any_io_executor executor, const config::Config& config,
                 const std::string& api_key)
    : executor_(executor),
      config_(config),
      authorization_("Bearer " + api_key),
      image_syncs_(executor_, disk_,
                   [this](double seconds) { counters_.image_sync_seconds.Observe(seconds); }),
      client_(executor_,
              http::ClientOptions{
                  .ca_file = config.api.ca_file,
                  .connect_timeout = ToDuration(config.timeouts.connect_s),
                  .max_connections_per_host = ConnectionsPerHost(config),
                  .download_stall = ToDuration(config.timeouts.download_stall_s),
                  .download_min_bytes_per_s = config.download.min_bytes_per_s,
                  .on_response = [this](bool is_post, const std::string& target,
                                        int status) { CountApiResponse(is_post, target, status); },
                  .lookup = {},  // getaddrinfo
              }),
      limiter_(executor_, config.limits.rate, config.limits.burst),
      ledger_(config.limits.budget_credits),
      in_flight_(executor_, config.limits.max_in_flight),
      submitting_(executor_, ConnectionsPerHost(config)),
      downloads_(executor_, config.limits.max_downloads),
      submit_gate_(executor_),
      halt_signal_(executor_),
      submit_signal_(executor_),
      no_new_submissions_(executor_),
      budget_changed_(executor_),
      backoff_(Seconds(config.retry.base_delay_s), Seconds(config.retry.max_delay_s),
               std::random_device{}()),
      grace_timer_(executor_),
      watcher_(
          executor_, client_, limiter_, halt_signal_,
          [this](http::Request::Method method, std::string target) {
            return ApiRequest(method, std::move(target), "");
          },
          WatcherOptions(config),
          [this](StopReason reason, const std::string& detail) { Halt(reason, detail); }),
      receiver_stop_(executor_) {
  api_endpoint_ = *http::ParseUrl(config.api.base_url);
  api_endpoint_.target = "/";
  // Halting cancels every waiting submit; cancelling them means no new ones either.
  halt_signal_.AddChild(submit_signal_);
  submit_signal_.AddChild(no_new_submissions_);
}

http::Request Service::ApiRequest(http::Request::Method method, std::string target,
                                  std::string body) const {
  http::Request request;
  request.method = method;
  request.endpoint = api_endpoint_;
  request.endpoint.target = std::move(target);
  request.headers.push_back({"Authorization", authorization_});
  request.body = std::move(body);
  return request;
}

void Service::CountApiResponse(bool is_post, const std::string& target, int status) {
  const char* endpoint = is_post                             ? "submit"
                         : target.starts_with("/v1/tasks")   ? "query"
                         : target.starts_with("/v1/credits") ? "credits"
                                                             : "other";
  ++counters_.api_requests[{endpoint, status}];
}

// ---------------------------------------------------------------------------------------------
// Credits and limits

Ledger::Durable Service::DurableCredits() const {
  Ledger::Durable durable{credits_of_other_jobs_, 0};
  for (const journal::Journal* journal : journals_) {
    durable.spent += journal->state().totals().credits_spent;
    durable.reserved += journal->state().totals().credits_reserved;
  }
  return durable;
}

void Service::ApplyLimits() {
  limiter_.Reconfigure(config_.limits.rate, config_.limits.burst);
  ledger_.set_budget(config_.limits.budget_credits);
  const Ledger::Durable durable = DurableCredits();
  const bool room =
      !config_.limits.budget_credits ||
      durable.spent + durable.reserved + ledger_.held() < *config_.limits.budget_credits;
  if (!halted_ && submitting_stopped_ && stop_reason_ == StopReason::kBudget && room) {
    LogInfo("the budget leaves room again: submitting resumes");
    submitting_stopped_ = false;
    stop_reason_ = StopReason::kNone;
    stop_detail_.clear();
    no_new_submissions_.Rearm();
  }
  NotifyBudgetChanged();
}

// ---------------------------------------------------------------------------------------------
// Stopping

void Service::StopSubmitting(StopReason reason, const std::string& detail) {
  if (!submitting_stopped_) LogWarning(NoMoreSubmissions(reason, detail));
  submitting_stopped_ = true;
  if (stop_reason_ == StopReason::kNone) {
    stop_reason_ = reason;
    stop_detail_ = detail;
  }
  // A budget stop lets the submissions already reserved go out (they fit the budget); any other
  // stop means the API would refuse them too: every submit still waiting is cancelled at once.
  if (reason == StopReason::kBudget) {
    no_new_submissions_.Trigger();
  } else {
    submit_signal_.Trigger();
  }
}

void Service::Halt(StopReason reason, const std::string& detail) {
  if (halted_) return;
  LogWarning("stopping: " + std::string(Describe(reason)) + (detail.empty() ? "" : ": " + detail));
  // An auth failure or a configuration problem outranks whatever stop came before it: it
  // decides the exit status.
  if (stop_reason_ == StopReason::kNone || reason == StopReason::kAuth ||
      (reason == StopReason::kMisconfigured && stop_reason_ != StopReason::kAuth)) {
    stop_reason_ = reason;
    stop_detail_ = detail;
  }
  submitting_stopped_ = true;
  halted_ = true;
  halt_signal_.Trigger();  // every wait ends: each observes this signal or one it implies
  // A download still waiting for its image (a host that never answers) ends now; those already
  // streaming may finish within the grace period, as may a submit waiting for its answer (the
  // id of a task it paid for); then everything is cut.
  client_.CutWaitingDownloads();
  grace_timer_.expires_after(kDownloadGrace);
  grace_timer_.async_wait([this](boost::system::error_code error) {
    if (!error) client_.Shutdown();
  });
}

void Service::EndGrace(const std::string& why) {
  if (!halted_) return;
  LogWarning(why +
             " again: not waiting for the images and answers still in flight (the next "
             "run fetches the images again; a submit left unanswered counts as a possible "
             "duplicate)");
  ReleaseLoop();
}

net::awaitable<bool> Service::HaltableSleep(Clock::duration duration) {
  co_return co_await halt_signal_.SleepFor(duration);
}

bool Service::PauseForSpendLimit(const api::ApiError& error, std::string& why) {
  const auto now = Clock::now();
  if (!spend_limited_since_) spend_limited_since_ = now;
  const double pause = std::max(error.retry_after_s.value_or(0), config_.retry.spend_limit_pause_s);
  // Stop now if the limit will not have lifted before the give-up time: waiting longer than that
  // would only delay the same outcome.
  if (now + ToDuration(pause) - *spend_limited_since_ >
      ToDuration(config_.retry.spend_limit_give_up_s)) {
    why = "waiting " + SecondsText(pause) + " s more would pass retry.spend_limit_give_up_s (" +
          SecondsText(config_.retry.spend_limit_give_up_s) +
          " s): run the same command again once the limit has lifted";
    return false;
  }
  if (spend_pause_until_ < now + ToDuration(pause)) {
    spend_pause_until_ = now + ToDuration(pause);
    LogWarning("spend limit reached (" + error.code + ": " + error.message +
               "); pausing submissions for " + std::to_string(static_cast<int>(pause)) + " s");
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Webhooks

TaskWatcherOptions Service::WatcherOptions(const config::Config& config) {
  TaskWatcherOptions options;
  options.first_poll = Seconds(config.polling.first_poll_s);
  options.max_interval = Seconds(config.polling.max_interval_s);
  options.task_deadline = Seconds(config.polling.task_deadline_s);
  options.request_timeout = Seconds(config.timeouts.request_s);
  options.retry_base = Seconds(config.retry.base_delay_s);
  options.retry_max = Seconds(config.retry.max_delay_s);
  options.max_failed_polls = config.retry.max_attempts;
  options.max_concurrent_polls = ConnectionsPerHost(config);
  if (!config.callbacks.public_url.empty()) {
    options.callback_safety_poll = Seconds(config.callbacks.safety_poll_s);
  }
  return options;
}

std::string Service::CallbackUrl(const std::string& token) const {
  std::string base = config_.callbacks.public_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/" + token;
}

bool Service::StartReceiver(TaskGroup& background, std::string& error) {
  if (!callbacks()) return true;
  receiver_.emplace(
      executor_,
      [this](const http::IncomingRequest& request) { return OnReceiverRequest(request); },
      http::ServerOptions{});
  if (!receiver_->Listen(config_.callbacks.listen, error)) {
    error = "webhook receiver: " + error + " (callbacks.listen, --callback-listen)";
    return false;
  }
  LogInfo("webhook receiver listening on " + config_.callbacks.listen + "; callbacks go to " +
          config_.callbacks.public_url + "/<token>");
  background.Spawn(receiver_->Run(receiver_stop_));
  return true;
}

http::Reply Service::OnReceiverRequest(const http::IncomingRequest& request) {
  return RouteCallback(watcher_, request);
}

// ---------------------------------------------------------------------------------------------
// Start and signals

net::awaitable<void> Service::LogBalance() {
  http::Request request = ApiRequest(http::Request::Method::kGet, "/v1/credits", "");
  http::Client::Slot connection = co_await client_.AcquireSlot(request.endpoint, &halt_signal_);
  if (!connection || !co_await limiter_.Acquire(&halt_signal_)) co_return;
  auto result =
      co_await client_.Send(connection, std::move(request), ToDuration(config_.timeouts.request_s),
                            api::kApiBodyLimit, &halt_signal_);
  if (auto* network = std::get_if<http::NetworkError>(&result)) {
    // The first request of the run: a certificate problem stops it before anything is paid.
    if (network->permanent) {
      Halt(StopReason::kMisconfigured, network->what);
    } else {
      LogWarning("credit balance unavailable: " + network->what);
    }
    co_return;
  }
  const http::Response& response = std::get<http::Response>(result);
  if (response.status == 401 || response.status == 403) {
    api::SubmitResult decoded = api::DecodeSubmitResponse(response.status, response.body, "");
    const api::ApiError& error = std::get<api::ApiError>(decoded);
    Halt(StopReason::kAuth, error.code + ": " + error.message);
    co_return;
  }
  if (auto balance = response.status == 200 ? api::DecodeCredits(response.body) : std::nullopt) {
    LogInfo("credit balance: " + std::to_string(*balance) + " credits");
  } else {
    LogInfo("credit balance: not reported (HTTP " + std::to_string(response.status) + ")");
  }
}

// ---------------------------------------------------------------------------------------------
// One job's stops

JobStop::JobStop(Service& service, std::string log_prefix)
    : service_(service),
      log_prefix_(std::move(log_prefix)),
      submit_signal_(service.executor()),
      no_new_submissions_(service.executor()) {
  submit_signal_.AddChild(no_new_submissions_);
  service_.submit_signal().AddChild(submit_signal_);
  service_.no_new_submissions().AddChild(no_new_submissions_);
  // A child hears only the triggers after it was added.
  if (service_.submit_signal().triggered()) submit_signal_.Trigger();
  if (service_.no_new_submissions().triggered()) no_new_submissions_.Trigger();
}

JobStop::~JobStop() {
  service_.submit_signal().RemoveChild(submit_signal_);
  service_.no_new_submissions().RemoveChild(no_new_submissions_);
}

void JobStop::Cancel() {
  cancelled_ = true;
  submit_signal_.Trigger();
}

void JobStop::Stop(StopReason reason, const std::string& detail) {
  if (stopped()) return;
  LogWarning(log_prefix_ + NoMoreSubmissions(reason, detail));
  reason_ = reason;
  detail_ = detail;
  submit_signal_.Trigger();
}

}  // namespace nanobatch::engine
