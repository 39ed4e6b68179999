#pragma once
// Service: what every job of a process shares, built on an executor it does not own: the HTTPS
// client and its pool, the rate limiter, the credit Ledger, the TaskWatcher (polls and
// webhooks), the limits on tasks in flight and downloads, and the stop state. `run` is one
// Service and one Job; `serve` is one Service and many Jobs (runner/serve/daemon.h).
//
// Stopping composes: a stop reason triggers a util::StopSignal (halt, "cancel submits" or "no new
// submissions"), and every wait in the engine observes one of them (in-flight slots, connection
// slots, rate tokens, backoffs, pauses, polls, callbacks), so nothing keeps a list of things to
// wake.
//
// Example:
//   Service service(io.get_executor(), config, api_key);
//   if (!service.StartReceiver(error)) ...;          // webhooks, when configured
//   service.Halt(StopReason::kSignal, "SIGTERM");   // every wait ends at once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runner/config/config.h"
#include "runner/disk/blocking_worker.h"
#include "runner/disk/file_syncs.h"
#include "runner/engine/ledger.h"
#include "runner/engine/rate_limiter.h"
#include "runner/engine/stop_reason.h"
#include "runner/engine/submit_gate.h"
#include "runner/engine/task_group.h"
#include "runner/engine/task_watcher.h"
#include "runner/http/client.h"
#include "runner/http/server.h"
#include "runner/journal/journal.h"
#include "runner/metrics/exposition.h"
#include "runner/ratelimit/backoff.h"
#include "runner/util/async.h"

namespace nanobatch::engine {

// What the service accumulates for /metrics; everything else there is read from live state
// (journal totals, the limiter, the semaphores) when scraped.
struct ServiceCounters {
  // (endpoint, HTTP status; 0: no response) -> API requests. Endpoints: submit, query, credits.
  std::map<std::pair<std::string, int>, std::uint64_t> api_requests;
  std::uint64_t download_bytes = 0;
  // One fdatasync of a journal's group commit: what every recorded step waits for.
  metrics::Histogram journal_sync_seconds{
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
  // One sync of downloaded images (a syncfs for those written together, or one image's fsync:
  // output.image_sync): what an image waits for before its rename. A syncfs also waits for
  // other programs' writes to the same filesystem; this shows when that is slow.
  metrics::Histogram image_sync_seconds{
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
};

class Service {
 public:
  // Connections per API host, at the least (more when download.max_downloads is larger): as
  // many submissions as these can wait for one journal commit at once, which is what fills a
  // commit group (Recorder::kFullGroup, asserted there). With fewer, no group ever filled and
  // every submission waited out the commit interval: 8 connections (and 4 download slots)
  // made a 4,000-task run against the simulator take 25 s instead of 0.8.
  static constexpr std::size_t kMinConnectionsPerHost = 32;

  // Throws std::runtime_error when the TLS trust store cannot be loaded.
  Service(boost::asio::any_io_executor executor, const config::Config& config,
          const std::string& api_key);

  const boost::asio::any_io_executor& executor() const { return executor_; }
  const config::Config& config() const { return config_; }
  http::Client& client() { return client_; }
  RateLimiter& limiter() { return limiter_; }
  Ledger& ledger() { return ledger_; }
  TaskWatcher& watcher() { return watcher_; }
  util::AsyncSemaphore& in_flight() { return in_flight_; }
  // Items inside Submitter::Submit at once: as many as the API host's connections, since more
  // would only queue for one. The rest wait as entries of their job's plan, not as coroutines
  // (a submission's frame holds its request and body: about 1.5 KB).
  util::AsyncSemaphore& submitting() { return submitting_; }
  util::AsyncSemaphore& downloads() { return downloads_; }
  // One submit at a time while submit answers are being lost (every job's: one API).
  SubmitGate& submit_gate() { return submit_gate_; }
  // Submits that got a task id, every job's. An item the API refused (500, 503) retry.max_attempts
  // times while other submits got through since its first refusal meets a refusal of its own
  // (its prompt, its parameters: 503 upstream_error also means "sensitive content"), not an
  // outage: it alone is left queued rather than every item stopped.
  std::uint64_t submits_accepted() const { return submits_accepted_; }
  void SubmitAccepted() { ++submits_accepted_; }
  // Images downloaded, every job's: an image whose downloads kept failing (5xx, network) while
  // none came through since its first failure meets an image host that delivers nothing, and
  // the run stops (each paid task's download would wait out the same).
  std::uint64_t downloads_succeeded() const { return downloads_succeeded_; }
  void DownloadSucceeded() { ++downloads_succeeded_; }
  ratelimit::Backoff& backoff() { return backoff_; }
  ratelimit::RetryBudget& retry_budget() { return retry_budget_; }
  const http::Endpoint& api_endpoint() const { return api_endpoint_; }
  ServiceCounters& counters() { return counters_; }
  // The thread for blocking disk syncs: every job's journal, images and directory syncs.
  disk::BlockingWorker& disk() { return disk_; }
  const disk::BlockingWorker& disk() const { return disk_; }
  // Every job's image syncs, one FileSyncs per output filesystem: serve's jobs writing to one
  // disk share its syncfs calls.
  disk::SharedFileSyncs& image_syncs() { return image_syncs_; }
  // Read-only views for /metrics and status lines.
  const ServiceCounters& counters() const { return counters_; }
  const RateLimiter& limiter() const { return limiter_; }
  const Ledger& ledger() const { return ledger_; }
  const TaskWatcher& watcher() const { return watcher_; }
  std::size_t in_flight_available() const { return in_flight_.available(); }
  std::size_t downloads_available() const { return downloads_.available(); }
  // A request to the API: its base URL, the credentials.
  http::Request ApiRequest(http::Request::Method method, std::string target,
                           std::string body) const;

  // --- credits of every job ----------------------------------------------------------------------
  // The ledger's budget check counts the journals of every job on this service (each Job adds
  // its own while it runs) plus what jobs no longer running spent (serve persists that).
  void AddJournal(const journal::Journal& journal) { journals_.push_back(&journal); }
  void RemoveJournal(const journal::Journal& journal) { std::erase(journals_, &journal); }
  void set_credits_of_other_jobs(std::uint64_t credits) { credits_of_other_jobs_ = credits; }
  Ledger::Durable DurableCredits() const;
  // The config's limits and budget changed (serve's SIGHUP): the limiter and the ledger take
  // them from now on, and a budget stop lifts if the new budget leaves room.
  void ApplyLimits();

  // --- stopping --------------------------------------------------------------------------------
  // No more submissions; the tasks in flight finish. A budget stop lets the submissions already
  // holding credits go out; any other cancels every submit still waiting.
  void StopSubmitting(StopReason reason, const std::string& detail);
  // Everything stops: every wait ends at once; downloads already streaming get a grace period.
  void Halt(StopReason reason, const std::string& detail);
  bool halted() const { return halted_; }
  bool submitting_stopped() const { return submitting_stopped_; }
  StopReason stop_reason() const { return stop_reason_; }
  // What the stop's reason said of this case ("5 submits in a row ..."), with the reason.
  const std::string& stop_detail() const { return stop_detail_; }
  // A submit must not go out: halted, or stopped for any reason but the budget.
  bool SubmitsCancelled() const {
    return halted_ || (submitting_stopped_ && stop_reason_ != StopReason::kBudget);
  }
  // The three stop signals, each implying the next: halt (everything), cancel submits (every
  // submit still waiting), no new submissions (a budget stop: the ones holding credits go out).
  util::StopSignal& halt_signal() { return halt_signal_; }
  util::StopSignal& submit_signal() { return submit_signal_; }
  util::StopSignal& no_new_submissions() { return no_new_submissions_; }
  // Sleeps unless halted; true if halted.
  boost::asio::awaitable<bool> HaltableSleep(Clock::duration duration);
  // Credits held or given back: a submit loop waiting for refunds checks again.
  void NotifyBudgetChanged() { budget_changed_.Notify(); }
  // Waits for credits to come back; false once `stop` (a job's no_new_submissions(), which this
  // service's implies) is triggered.
  boost::asio::awaitable<bool> WaitBudgetChanged(util::StopSignal& stop) {
    return budget_changed_.Wait(stop);
  }

  // --- the spend limit (429 spend_limit_exceeded) ------------------------------------------------
  // Pauses every submission until `until`; false when the limit would last past the give-up time
  // (then submitting stops), with `why` saying so and what to do.
  bool PauseForSpendLimit(const api::ApiError& error, std::string& why);
  void SpendLimitLifted() { spend_limited_since_.reset(); }
  Clock::time_point spend_pause_until() const { return spend_pause_until_; }

  // --- webhooks ----------------------------------------------------------------------------------
  bool callbacks() const { return !config_.callbacks.public_url.empty(); }
  std::string CallbackUrl(const std::string& token) const;
  // Binds callbacks.listen and starts the receiver in `background` (no-op without callbacks).
  bool StartReceiver(TaskGroup& background, std::string& error);
  void StopReceiver() { receiver_stop_.Trigger(); }
  // One request to the receiver (its own listener, or serve's shared one).
  http::Reply OnReceiverRequest(const http::IncomingRequest& request);

  // --- start and end -----------------------------------------------------------------------------
  // Logs the account's balance (advisory); a certificate or credential problem stops here,
  // before anything is paid.
  boost::asio::awaitable<void> LogBalance();
  // The loop's work is over: the grace timer is cancelled and the pooled connections closed
  // (an idle connection's deadline timer may still be waiting, and would keep the loop running).
  void ReleaseLoop() {
    grace_timer_.cancel();
    client_.Shutdown();
  }
  // A second stop signal (Ctrl-C pressed again): after Halt, the grace given to bodies streaming
  // and to submits waiting for their answers ends now. What they would have brought is left to
  // the next run (a download again; a lost submit answer counted as a possible duplicate).
  void EndGrace(const std::string& why);

 private:
  static TaskWatcherOptions WatcherOptions(const config::Config& config);
  void CountApiResponse(bool is_post, const std::string& target, int status);

  boost::asio::any_io_executor executor_;
  const config::Config& config_;
  const std::string authorization_;
  http::Endpoint api_endpoint_;
  ServiceCounters counters_;
  disk::BlockingWorker disk_;
  disk::SharedFileSyncs image_syncs_;  // after disk_ and counters_, which it uses
  http::Client client_;
  RateLimiter limiter_;
  Ledger ledger_;
  util::AsyncSemaphore in_flight_;
  util::AsyncSemaphore submitting_;
  util::AsyncSemaphore downloads_;
  SubmitGate submit_gate_;
  std::uint64_t submits_accepted_ = 0;
  std::uint64_t downloads_succeeded_ = 0;
  util::StopSignal halt_signal_;
  util::StopSignal submit_signal_;
  util::StopSignal no_new_submissions_;
  util::AsyncEvent budget_changed_;
  ratelimit::Backoff backoff_;
  ratelimit::RetryBudget retry_budget_;
  boost::asio::steady_timer grace_timer_;
  TaskWatcher watcher_;
  std::optional<http::Server> receiver_;
  util::StopSignal receiver_stop_;

  std::vector<const journal::Journal*> journals_;
  std::uint64_t credits_of_other_jobs_ = 0;
  bool submitting_stopped_ = false;
  bool halted_ = false;
  StopReason stop_reason_ = StopReason::kNone;
  std::string stop_detail_;
  Clock::time_point spend_pause_until_{};
  std::optional<Clock::time_point> spend_limited_since_;
};

// JobStop: the stops one job's submissions observe. A stop of the service reaches every job (this
// job's signals are children of the service's); Cancel() and Stop() stop this job's submissions
// alone, as the service's "cancel submits" stops everyone's: every submit not yet sent ends at
// once, and none starts. What is already paid for goes on (a POST already sent gets its answer,
// tasks get their verdicts, images are downloaded): a stopped job costs nothing more and loses
// nothing paid. Halting stays the service's alone.
//
// Example:
//   JobStop stop(service, "job j1: ");
//   if (!co_await slots.Acquire(&stop.no_new_submissions())) ...
//   stop.Cancel();  // DELETE /jobs/NAME
class JobStop {
 public:
  // `log_prefix` names the job in the log lines of Stop() ("job NAME: ", or empty for `run`).
  JobStop(Service& service, std::string log_prefix);
  ~JobStop();
  JobStop(const JobStop&) = delete;
  JobStop& operator=(const JobStop&) = delete;

  void Cancel();
  bool cancelled() const { return cancelled_; }
  // No more submissions for this job, for a reason of its own (its manifest: the API refuses its
  // requests), said once with `detail`; the service's other jobs go on. The first reason stays.
  void Stop(StopReason reason, const std::string& detail);
  StopReason reason() const { return reason_; }
  const std::string& detail() const { return detail_; }
  // Service::SubmitsCancelled() and submitting_stopped(), for this job.
  bool SubmitsCancelled() const { return stopped() || service_.SubmitsCancelled(); }
  bool SubmittingStopped() const { return stopped() || service_.submitting_stopped(); }
  // Service::submit_signal() and no_new_submissions(), each also triggered by Cancel().
  util::StopSignal& submit_signal() { return submit_signal_; }
  util::StopSignal& no_new_submissions() { return no_new_submissions_; }
  // Sleeps unless this job's submitting stops (for any reason but the budget); true if it did.
  boost::asio::awaitable<bool> SubmitSleep(Clock::duration duration) {
    return submit_signal_.SleepFor(duration);
  }
  // Sleeps through a spend-limit pause; true if no new submission may go out meanwhile.
  boost::asio::awaitable<bool> SubmitPauseSleep(Clock::duration duration) {
    return no_new_submissions_.SleepFor(duration);
  }
  // Waits for credits to come back; false when no new submission may go out any more.
  boost::asio::awaitable<bool> WaitBudgetChanged() {
    return service_.WaitBudgetChanged(no_new_submissions_);
  }

 private:
  bool stopped() const { return cancelled_ || reason_ != StopReason::kNone; }

  Service& service_;
  const std::string log_prefix_;
  util::StopSignal submit_signal_;
  util::StopSignal no_new_submissions_;
  bool cancelled_ = false;
  StopReason reason_ = StopReason::kNone;
  std::string detail_;
};

}  // namespace nanobatch::engine
