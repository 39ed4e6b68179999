#include "runner/serve/daemon.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <variant>

#include "runner/engine/job.h"
#include "runner/engine/job_inputs.h"
#include "runner/engine/service.h"
#include "runner/http/server.h"
#include "runner/journal/journal.h"
#include "runner/journal/status.h"
#include "runner/manifest/manifest.h"
#include "runner/metrics/exposition.h"
#include "runner/serve/spool.h"
#include "runner/util/did_you_mean.h"
#include "runner/util/input_file.h"
#include "runner/util/json_text.h"
#include "runner/util/log.h"
#include "runner/util/service_notify.h"
#include "runner/util/sha256.h"

namespace nanobatch::serve {
namespace {

namespace net = boost::asio;
namespace json = boost::json;
using engine::Clock;
using engine::StopReason;
using util::LogError;
using util::LogInfo;
using util::LogWarning;

constexpr std::size_t kCallbackBodyLimit = std::size_t{64} << 10;
constexpr std::size_t kTokenFileLimit = 4096;

enum class JobState { kQueued, kRunning, kWaiting, kDone, kFailed };

const char* StateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kWaiting:
      return "waiting";
    case JobState::kDone:
      return "done";
    case JobState::kFailed:
      return "failed";
  }
  return "unknown";
}

// What the daemon knows of each job name it has seen: the list GET /jobs answers with.
struct JobRecord {
  JobState state = JobState::kQueued;
  std::uint64_t order = 0;  // arrival, for listing
  int exit_code = -1;       // of its last end; -1 while it has none
  std::string manifest;     // jobs/NAME/.nanobatch/manifest.EXT once claimed
  std::uint64_t spent = 0;  // credits its journal counts, while it is not running
  std::uint64_t reserved = 0;
  bool cancelled = false;  // DELETE /jobs/NAME: it ends in failed/ rather than resuming
  // Why its last run stopped early, said as in report.json (what to change); empty when it did
  // not. What an operator reads on /jobs for a job left waiting.
  std::string stop_reason;
  std::string stop_detail;  // the case, as report.json's stop_detail
  // POST /jobs?retry_failed=1: its next run takes up its failed items again, as `run
  // --retry-failed` does (paid downloads fetched again, the rest submitted anew). Not kept across
  // a restart of the service.
  bool retry_failed = false;
};

// Why the job's last run stopped early, for /jobs and /jobs/NAME: nothing when it did not.
void PutStop(const JobRecord& record, json::object& job) {
  if (!record.stop_reason.empty()) job["stop_reason"] = record.stop_reason;
  if (!record.stop_detail.empty()) job["stop_detail"] = record.stop_detail;
}

// A job on the service: its journal, manifest store and plan, and the engine's Job over them.
struct RunningJob {
  std::string name;
  std::string manifest;
  engine::JobInputs inputs;
  std::unique_ptr<engine::Job> job;
};

http::Reply JsonReply(int status, const json::value& body) {
  return {status, util::JsonText(body) + "\n", "application/json"};
}

http::Reply JsonError(int status, const std::string& message) {
  return JsonReply(status, json::object{{"error", message}});
}

// Constant time in the content: both sides are hashed first, so neither the length nor the
// first differing byte of the token shows in the time taken.
bool SameToken(std::string_view given, std::string_view expected) {
  const std::string a = util::Sha256::HexOf(given);
  const std::string b = util::Sha256::HexOf(expected);
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// The POST /jobs token of serve.token_file (empty path: none, POST refused), without trailing
// whitespace; at least 16 characters. The same rules at start and on reload.
bool ReadToken(const std::string& path, std::string& token, std::string& error) {
  token.clear();
  if (path.empty()) return true;
  if (!util::ReadInputFile(path, kTokenFileLimit, token, error)) {
    error = path + ": " + error;
    return false;
  }
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
    token.pop_back();
  }
  if (token.size() < 16) {
    error = path + ": the token must be at least 16 characters";
    return false;
  }
  return true;
}

// Input errors as "NAME.EXT:LINE: field: message" lines: the errors of the file at `path` are
// shown under the name the user gave it (`shown`), not the spool's internal path.
json::array ErrorLines(const util::InputErrors& errors, const std::string& path,
                       const std::string& shown) {
  json::array lines;
  for (util::InputError error : errors.stored()) {
    if (error.path == path) error.path = shown;
    lines.push_back(json::string(error.Format()));
  }
  return lines;
}

int ExitCodeFor(StopReason reason) {
  switch (reason) {
    case StopReason::kNone:
    case StopReason::kSignal:
      return 0;
    case StopReason::kAuth:
      return 4;
    case StopReason::kMisconfigured:
    case StopReason::kDownloadPolicy:
    case StopReason::kRequestRefused:
    case StopReason::kUnusableOutput:
      return 5;
    default:
      return 3;
  }
}

class Daemon {
 public:
  Daemon(net::io_context& io, config::Config& config, std::string config_path,
         std::unique_ptr<Spool> spool, std::string token, const std::string& api_key)
      : io_(io),
        config_(config),
        config_path_(std::move(config_path)),
        spool_(std::move(spool)),
        token_(std::move(token)),
        service_(io.get_executor(), config_, api_key),
        scan_wake_(io.get_executor()),
        stop_(io.get_executor()),
        listener_stop_(io.get_executor()),
        jobs_group_(io.get_executor()),
        background_(io.get_executor()) {}

  net::awaitable<int> Run();

 private:
  // --- jobs --------------------------------------------------------------------------------------
  void LoadSpool();
  net::awaitable<void> Schedule();
  void ScanInbox();
  bool MayStartJobs() const {
    return !draining_ && !service_.halted() && !service_.submitting_stopped();
  }
  void StartNext();
  void StartJob(const std::string& name, const std::string& manifest);
  net::awaitable<void> RunJob(RunningJob* running);
  void FinishJob(RunningJob& running, int exit_code);
  // Ends a cancelled job that is not running (or no longer): failed/, with `summary` and what
  // its journal counted. An open intent counts as spent from now on, as for every job at rest.
  void ConcludeCancelled(const std::string& name, json::object summary);
  // Moves an ended job's manifest to done/ or failed/ with its summary, after recording what it
  // spent. A spool that cannot be written halts the service: the job stays active and is
  // finished again at the next start.
  bool Conclude(const std::string& name, const std::string& manifest, bool done,
                json::object summary);
  // What the journals of the jobs not running counted when they ended (or at start).
  engine::Ledger::Durable CreditsAtRest() const;
  // The running jobs' journal counters, summed (/metrics and STATUS=); `queued` counts the
  // plans' items the journals do not know yet.
  struct RunningSums : journal::Totals {
    std::uint64_t in_flight() const { return intent + submitted + completed; }
  };
  RunningSums SumRunning() const;
  void UpdateOtherCredits();
  JobRecord& Record(const std::string& name) {
    auto [it, inserted] = records_.try_emplace(name);
    if (inserted) it->second.order = next_order_++;
    return it->second;
  }

  // --- HTTP --------------------------------------------------------------------------------------
  http::Reply Handle(const http::IncomingRequest& request);
  http::Reply Ready() const;
  http::Reply ListJobs() const;
  http::Reply JobStatus(const std::string& name) const;
  // `params`: ?name=NAME and ?format= jsonl (also when absent) or yaml.
  http::Reply PostJob(const http::IncomingRequest& request, boost::urls::params_view params);
  http::Reply CancelJob(const http::IncomingRequest& request, const std::string& name);
  // The reply refusing a request that changes jobs (POST, DELETE) without the token; none if
  // the request has it.
  std::optional<http::Reply> RefuseUnauthorized(const http::IncomingRequest& request,
                                                const char* what) const;
  std::string MetricsPage() const;

  // --- the process -------------------------------------------------------------------------------
  void WatchSignals(net::signal_set& signals);
  void Drain(const char* why);
  void Reload();
  std::string StatusLine() const;
  std::uint64_t CountIn(JobState state) const;

  net::io_context& io_;
  config::Config& config_;
  std::string config_path_;
  std::unique_ptr<Spool> spool_;
  std::string token_;
  engine::Service service_;
  std::optional<http::Server> listener_;
  util::AsyncEvent scan_wake_;
  util::AsyncEvent stop_;  // the scheduler and the heartbeat end
  util::StopSignal listener_stop_;
  engine::TaskGroup jobs_group_;
  engine::TaskGroup background_;

  std::map<std::string, JobRecord> records_;
  std::uint64_t next_order_ = 0;
  std::deque<std::string> resumable_;  // active jobs of the spool to start first
  std::vector<InboxEntry> inbox_;      // ready in inbox/, in arrival order
  std::map<std::string, std::unique_ptr<RunningJob>> running_;
  bool draining_ = false;
  bool ready_ = false;
  std::uint64_t jobs_started_ = 0;
  std::uint64_t jobs_cancelled_ = 0;  // by DELETE /jobs/NAME, since the service started
  const Clock::time_point started_ = Clock::now();
};

// ---------------------------------------------------------------------------------------------
// Jobs

void Daemon::LoadSpool() {
  for (const FinishedJob& finished : spool_->ScanFinished()) {
    JobRecord& record = Record(finished.name);
    record.state = finished.done ? JobState::kDone : JobState::kFailed;
    record.exit_code = finished.exit_code;
    record.cancelled = finished.cancelled;
  }
  for (const auto& [name, credits] : spool_->finished_credits()) Record(name).spent = credits;
  std::string error;
  for (const ActiveJob& active : spool_->ScanActive(error)) {
    // Stopped by a restart (or the budget): resumed first, from its journal. What it spent so
    // far counts against the budget before it runs again.
    JobRecord& record = Record(active.name);
    record.state = JobState::kWaiting;
    record.manifest = active.manifest;
    std::string read_error;
    if (auto state = journal::Journal::OpenReadOnly(spool_->JobDir(active.name), read_error)) {
      record.spent = state->totals().credits_spent;
      record.reserved = state->totals().credits_reserved;
    }
    if (active.cancelled) {
      // Cancelled by DELETE before the service stopped: it ends now, not resumed.
      record.cancelled = true;
      ConcludeCancelled(active.name, {});
      continue;
    }
    resumable_.push_back(active.name);
  }
  if (!error.empty()) LogWarning(error);
  if (!resumable_.empty()) {
    LogInfo(std::to_string(resumable_.size()) + " jobs of an earlier start resume first");
  }
  UpdateOtherCredits();
}

engine::Ledger::Durable Daemon::CreditsAtRest() const {
  engine::Ledger::Durable credits;
  for (const auto& [name, record] : records_) {
    if (running_.contains(name)) continue;
    credits.spent += record.spent;
    credits.reserved += record.reserved;
  }
  return credits;
}

Daemon::RunningSums Daemon::SumRunning() const {
  RunningSums sum;
  for (const auto& [name, running] : running_) {
    const journal::Totals& totals = running->inputs.journal->state().totals();
    sum.done += totals.done;
    sum.gave_up += totals.gave_up;
    sum.intent += totals.intent;
    sum.submitted += totals.submitted;
    sum.completed += totals.completed;
    sum.credits_spent += totals.credits_spent;
    sum.credits_reserved += totals.credits_reserved;
    sum.possible_duplicates += totals.possible_duplicates;
    sum.flagged_images += totals.flagged_images;
    sum.queued += running->job->queued();
  }
  return sum;
}

void Daemon::UpdateOtherCredits() {
  // The budget counts every job's journal: running jobs' live, the others' as they ended (an
  // open intent of a job at rest may yet be charged: it counts as spent here).
  const engine::Ledger::Durable at_rest = CreditsAtRest();
  service_.set_credits_of_other_jobs(at_rest.spent + at_rest.reserved);
}

void Daemon::ScanInbox() {
  std::vector<std::string> ignored;
  inbox_ = spool_->ScanInbox(&ignored);
  for (const std::string& message : ignored) LogWarning(message);
  for (const InboxEntry& entry : inbox_) {
    JobRecord& record = Record(entry.name);
    if (record.state == JobState::kDone || record.state == JobState::kFailed) {
      record.state = JobState::kQueued;  // the same name again: it resumes its directory
      record.exit_code = -1;
      record.cancelled = false;
      record.retry_failed = false;  // a file in the inbox says nothing of that
    }
  }
}

void Daemon::StartNext() {
  while (MayStartJobs() && running_.size() < config_.serve.max_jobs) {
    if (!resumable_.empty()) {
      const std::string name = resumable_.front();
      resumable_.pop_front();
      if (running_.contains(name)) continue;
      StartJob(name, records_.at(name).manifest);
      continue;
    }
    // The first inbox manifest whose name is not an active job's (one that holds a claimed
    // manifest, running or waiting): a second drop of that name waits for the job to end.
    auto next = std::find_if(inbox_.begin(), inbox_.end(), [&](const InboxEntry& entry) {
      return records_.at(entry.name).manifest.empty();
    });
    if (next == inbox_.end()) return;
    const InboxEntry entry = *next;
    inbox_.erase(next);
    std::string error;
    auto manifest = spool_->Claim(entry, error);
    if (!manifest) {
      LogError("job " + entry.name + ": " + error);
      continue;  // left in inbox/; tried again at the next scan
    }
    Record(entry.name).manifest = *manifest;
    StartJob(entry.name, *manifest);
  }
}

bool Daemon::Conclude(const std::string& name, const std::string& manifest, bool done,
                      json::object summary) {
  JobRecord& record = Record(name);
  summary["name"] = name;
  summary["state"] = done ? "done" : "failed";
  std::string error;
  // The credits first: a crash before the move leaves the job active, its journal counted.
  if (!spool_->RecordFinishedCredits(name, record.spent, error) ||
      !spool_->Finish(name, manifest, done, util::JsonText(summary) + "\n", error)) {
    LogError("job " + name + ": " + error);
    record.state = JobState::kWaiting;
    service_.Halt(StopReason::kDisk, "the spool cannot be written: " + error);
    return false;
  }
  record.state = done ? JobState::kDone : JobState::kFailed;
  record.manifest.clear();
  record.reserved = 0;
  return true;
}

void Daemon::StartJob(const std::string& name, const std::string& manifest) {
  JobRecord& record = Record(name);
  util::InputErrors errors;
  // Validation and planning are synchronous: a 10M-line manifest holds the loop ~10 s (the
  // watchdog allows 60).
  auto opened = engine::OpenJobInputs({.plan = {.manifest = manifest,
                                                .out = spool_->JobDir(name),
                                                .callbacks = service_.callbacks(),
                                                .retry_failed = record.retry_failed,
                                                .verify_images = false,
                                                .shard = {},
                                                .redo = {}},
                                       .defaults = config_.defaults},
                                      errors);
  if (auto* failure = std::get_if<engine::JobInputsFailure>(&opened)) {
    if (failure->exit_code == 3) {
      // The disk, not the manifest: the job stays where it is; the service stops (exit 3).
      record.state = JobState::kWaiting;
      service_.Halt(StopReason::kDisk, "job " + name + ": " + failure->message);
      return;
    }
    LogWarning("job " + name + ": refused, nothing was submitted: " +
               (failure->message.empty()
                    ? std::to_string(errors.total()) +
                          (errors.total() == 1 ? " error" : " errors") + " in its manifest"
                    : failure->message));
    const json::array listed =
        ErrorLines(errors, manifest, name + manifest.substr(manifest.rfind('.')));
    for (const auto& line : listed) LogWarning("job " + name + ": " + line.as_string().c_str());
    json::object summary{
        {"exit_code", 2},
        {"errors", listed},
        {"error_count", errors.total()},
        {"message", failure->message.empty() ? "the manifest has errors; nothing was submitted"
                                             : failure->message},
        {"credits_spent", 0}};
    record.exit_code = 2;
    Conclude(name, manifest, /*done=*/false, std::move(summary));
    return;
  }
  auto running = std::make_unique<RunningJob>();
  running->name = name;
  running->manifest = manifest;
  running->inputs = std::move(std::get<engine::JobInputs>(opened));
  running->job = std::make_unique<engine::Job>(
      service_, *running->inputs.store, std::move(running->inputs.plan), *running->inputs.journal,
      engine::JobFlags{.retry_failed = record.retry_failed,
                       .shard = {},
                       .manifest_path = manifest,
                       .name = name});
  record.state = JobState::kRunning;
  record.exit_code = -1;
  RunningJob* raw = running.get();
  running_[name] = std::move(running);
  UpdateOtherCredits();
  ++jobs_started_;
  LogInfo("job " + name + ": started (" + std::to_string(running_.size()) + " of " +
          std::to_string(config_.serve.max_jobs) + " running)");
  jobs_group_.Spawn(RunJob(raw));
}

net::awaitable<void> Daemon::RunJob(RunningJob* running) {
  const int exit_code = co_await running->job->Run();
  FinishJob(*running, exit_code);
  running_.erase(running->name);  // closes its journal (and its lock)
  UpdateOtherCredits();
  scan_wake_.Notify();
}

void Daemon::FinishJob(RunningJob& running, int exit_code) {
  JobRecord& record = Record(running.name);
  const journal::Totals& totals = running.inputs.journal->state().totals();
  record.spent = totals.credits_spent;
  record.reserved = totals.credits_reserved;
  record.exit_code = exit_code;
  const json::value* reason = running.job->report().if_contains("stop_reason");
  record.stop_reason = reason && reason->is_string() ? std::string(reason->as_string()) : "";
  const json::value* detail = running.job->report().if_contains("stop_detail");
  record.stop_detail = detail && detail->is_string() ? std::string(detail->as_string()) : "";
  // interface.md: done/ for 0, failed/ for 1, 2 and 4; stopped jobs (3, 5) stay in jobs/ and
  // resume from their journals, unless they were cancelled.
  if ((exit_code == 3 || exit_code == 5) && record.cancelled) {
    ConcludeCancelled(running.name, running.job->report());
    return;
  }
  if (exit_code == 3 || exit_code == 5) {
    record.state = JobState::kWaiting;
    LogInfo("job " + running.name + ": stopped (exit " + std::to_string(exit_code) +
            "); it resumes from its journal " +
            (exit_code == 3 && service_.stop_reason() == StopReason::kBudget
                 ? "when a reload raises the budget"
                 : "at the next start"));
    return;
  }
  const bool done = exit_code == 0;
  if (!Conclude(running.name, running.manifest, done, running.job->report())) return;
  LogInfo("job " + running.name + ": " + (done ? "done" : "failed") + " (exit " +
          std::to_string(exit_code) + "); summary in " + spool_->path() + "/" +
          (done ? "done/" : "failed/") + running.name + ".summary.json");
}

void Daemon::ConcludeCancelled(const std::string& name, json::object summary) {
  JobRecord& record = Record(name);
  record.spent += record.reserved;
  record.reserved = 0;
  summary["cancelled"] = true;
  summary["credits_spent"] = record.spent;
  if (!summary.contains("exit_code") && record.exit_code >= 0) {
    summary["exit_code"] = record.exit_code;
  }
  summary["message"] = "cancelled by DELETE /jobs/" + name +
                       "; a manifest of the same name resumes its directory (nothing paid for "
                       "is submitted again)";
  if (!Conclude(name, record.manifest, /*done=*/false, std::move(summary))) return;
  LogInfo("job " + name + ": cancelled; summary in " + spool_->path() + "/failed/" + name +
          ".summary.json");
}

net::awaitable<void> Daemon::Schedule() {
  while (true) {
    if (!draining_) {
      ScanInbox();
      StartNext();
    }
    // Stop when nothing more can happen: drained, or stopped for good (not for the budget,
    // which a reload may raise), with every job ended.
    const bool stopped_for_good =
        service_.halted() ||
        (service_.submitting_stopped() && service_.stop_reason() != StopReason::kBudget);
    if ((draining_ || stopped_for_good) && running_.empty()) co_return;
    co_await scan_wake_.WaitFor(engine::ToDuration(config_.serve.scan_interval_s));
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

http::Reply Daemon::Handle(const http::IncomingRequest& request) {
  auto url = boost::urls::parse_origin_form(request.target);
  if (!url) return JsonError(400, "the request target is not a path");
  const std::string path = url->path();
  if (request.method == "POST" && path != "/jobs") {
    return service_.OnReceiverRequest(request);  // the webhooks share the listener
  }
  if (path == "/jobs" && request.method == "POST") {
    return PostJob(request, url->params());
  }
  if (request.method == "DELETE" && path.starts_with("/jobs/")) {
    return CancelJob(request, path.substr(6));
  }
  const bool job = path.starts_with("/jobs/");
  if (!job && path != "/jobs" && path != "/healthz" && path != "/readyz" && path != "/metrics") {
    return JsonError(404, "no such endpoint: /healthz, /readyz, /metrics, /jobs, /jobs/NAME");
  }
  if (request.method != "GET") {
    http::Reply refusal = JsonError(405, job               ? "GET or DELETE " + path + " only"
                                         : path == "/jobs" ? "GET or POST /jobs only"
                                                           : "GET " + path + " only");
    refusal.allow = job ? "GET, HEAD, DELETE" : path == "/jobs" ? "GET, HEAD, POST" : "GET, HEAD";
    return refusal;
  }
  if (path == "/healthz") return {200, "ok\n"};
  if (path == "/readyz") return Ready();
  if (path == "/metrics") {
    return {200, MetricsPage(), "text/plain; version=0.0.4; charset=utf-8"};
  }
  if (path == "/jobs") return ListJobs();
  return JobStatus(path.substr(6));
}

http::Reply Daemon::Ready() const {
  if (!ready_) return {503, "starting\n"};
  if (draining_) return {503, "draining: stopping every job\n"};
  if (service_.halted() || service_.submitting_stopped()) {
    const StopReason reason = service_.stop_reason();
    return {503, std::string("stopped: ") + engine::Describe(reason) +
                     (reason == StopReason::kBudget
                          ? " (raise limits.budget_credits and reload with SIGHUP)\n"
                          : "\n")};
  }
  return {200, "ready\n"};
}

http::Reply Daemon::ListJobs() const {
  std::vector<std::pair<std::uint64_t, const std::string*>> order;
  for (const auto& [name, record] : records_) order.emplace_back(record.order, &name);
  std::sort(order.begin(), order.end());
  json::array list;
  for (const auto& [position, name] : order) {
    const JobRecord& record = records_.at(*name);
    json::object job{{"name", *name}, {"state", StateName(record.state)}};
    if (record.exit_code >= 0) job["exit_code"] = record.exit_code;
    PutStop(record, job);
    if (record.cancelled) job["cancelled"] = true;
    if (auto it = running_.find(*name); it != running_.end()) {
      const journal::Totals& totals = it->second->inputs.journal->state().totals();
      job["items"] = it->second->job->items();
      job["done"] = totals.done;
      job["failed"] = totals.gave_up;
      job["queued"] = it->second->job->queued();
      job["credits_spent"] = totals.credits_spent;
    } else if (record.state != JobState::kQueued) {
      job["credits_spent"] = record.spent;
    }
    list.push_back(std::move(job));
  }
  return JsonReply(200, list);
}

http::Reply Daemon::JobStatus(const std::string& name) const {
  // The name is checked before it touches a path: nothing outside the spool can be named.
  auto record = records_.find(name);
  if (!Spool::IsJobName(name) || record == records_.end()) {
    return JsonError(404, "no job named \"" + name.substr(0, 128) + "\"");
  }
  json::object status;
  if (auto it = running_.find(name); it != running_.end()) {
    status = journal::StatusJson(it->second->inputs.journal->state());
  } else {
    std::string error;
    auto state = journal::Journal::OpenReadOnly(spool_->JobDir(name), error);
    if (state) {
      status = journal::StatusJson(*state);
    } else if (record->second.state != JobState::kQueued &&
               record->second.state != JobState::kFailed) {
      return JsonError(500, "job " + name + ": " + error);
    }
  }
  status["name"] = name;
  status["state"] = StateName(record->second.state);
  if (record->second.exit_code >= 0) status["exit_code"] = record->second.exit_code;
  PutStop(record->second, status);
  if (record->second.cancelled) status["cancelled"] = true;
  return JsonReply(200, status);
}

std::optional<http::Reply> Daemon::RefuseUnauthorized(const http::IncomingRequest& request,
                                                      const char* what) const {
  if (token_.empty()) {
    return JsonError(403, std::string(what) + " is disabled: set serve.token_file to enable it");
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (!request.authorization.starts_with(kBearer) ||
      !SameToken(std::string_view(request.authorization).substr(kBearer.size()), token_)) {
    return JsonError(401, "a valid Authorization: Bearer <token> is required");
  }
  return std::nullopt;
}

http::Reply Daemon::CancelJob(const http::IncomingRequest& request, const std::string& name) {
  if (auto refused = RefuseUnauthorized(request, "DELETE /jobs/NAME")) return *refused;
  auto found = records_.find(name);
  if (!Spool::IsJobName(name) || found == records_.end()) {
    return JsonError(404, "no job named \"" + name.substr(0, 128) + "\"");
  }
  JobRecord& record = found->second;
  const auto running = running_.find(name);
  if (running == running_.end() &&
      (record.state == JobState::kDone || record.state == JobState::kFailed)) {
    return JsonError(409, "job " + name + " has already ended (" + StateName(record.state) + ")");
  }
  if (running == running_.end() && record.state == JobState::kQueued) {
    // Not claimed yet: claimed now, so that it ends like any other job, with its summary. A
    // file seen for the first time is ready at its second scan (the scan's guard against a copy
    // still being written; moved to failed/ all the same, the copy would still complete).
    auto entry = inbox_.end();
    for (int scan = 0; scan < 2 && entry == inbox_.end(); ++scan) {
      ScanInbox();
      entry = std::find_if(inbox_.begin(), inbox_.end(),
                           [&](const InboxEntry& e) { return e.name == name; });
    }
    if (entry == inbox_.end()) {
      return JsonError(409, "job " + name + " is still being written to inbox/; try again");
    }
    std::string error;
    auto manifest = spool_->Claim(*entry, error);
    if (!manifest) return JsonError(500, "job " + name + ": " + error);
    inbox_.erase(entry);
    record.manifest = *manifest;
  }
  // Marked first: a restart before the job has ended ends it rather than resuming it.
  if (!record.cancelled) {
    if (std::string error; !spool_->MarkCancelled(name, error)) {
      return JsonError(500, "job " + name + ": " + error);
    }
    record.cancelled = true;
    ++jobs_cancelled_;
  }
  std::uint64_t in_flight = 0;
  if (running != running_.end()) {
    // Running: no more submissions; it ends once what it paid for is in.
    const journal::Totals& totals = running->second->inputs.journal->state().totals();
    in_flight = totals.intent + totals.submitted + totals.completed;
    if (!running->second->job->cancelled()) {
      running->second->job->Cancel();
      LogInfo("job " + name + ": cancelled by DELETE: nothing more is submitted; its " +
              std::to_string(in_flight) +
              " tasks already paid for get their images first, then it ends in failed/ (in "
              "done/ if every item is done by then)");
    }
  } else {
    // Queued or waiting: it ends here, without running.
    resumable_.erase(std::remove(resumable_.begin(), resumable_.end(), name), resumable_.end());
    ConcludeCancelled(name, {});
    UpdateOtherCredits();
  }
  return JsonReply(running != running_.end() ? 202 : 200,
                   json::object{{"name", name},
                                {"state", StateName(record.state)},
                                {"cancelled", true},
                                {"in_flight", in_flight}});
}

http::Reply Daemon::PostJob(const http::IncomingRequest& request, boost::urls::params_view params) {
  if (auto refused = RefuseUnauthorized(request, "POST /jobs")) return *refused;
  if (draining_) return JsonError(503, "draining: not taking jobs");
  // A misspelt parameter would be dropped in silence: ?fromat=yaml, and a YAML manifest read
  // as JSONL.
  static constexpr std::array<std::string_view, 3> kParams = {"name", "format", "retry_failed"};
  for (const auto& given : params) {
    if (std::find(kParams.begin(), kParams.end(), given.key) == kParams.end()) {
      const std::string key = given.key.substr(0, 64);
      return JsonError(400, "unknown query parameter \"" + key + "\"" +
                                util::DidYouMeanSuffix(key, kParams) +
                                ": POST /jobs takes ?name=, ?format= and ?retry_failed=");
    }
  }
  // Twice is a contradiction, not a choice: ?name=a&name=b must not queue one of them.
  for (std::string_view key : kParams) {
    if (params.count(key) > 1) {
      return JsonError(400, "?" + std::string(key) + "= is given more than once");
    }
  }
  auto param = [&](const char* key) {
    auto found = params.find(key);
    return found != params.end() && (*found).has_value ? std::string((*found).value)
                                                       : std::string();
  };
  const std::string name = param("name");
  const std::string format = param("format");
  if (!Spool::IsJobName(name)) {
    return JsonError(400, "?name= must be 1 to 128 of A-Z a-z 0-9 . _ - (not starting with '.')");
  }
  if (!format.empty() && format != "jsonl" && format != "yaml") {
    return JsonError(400, "?format= must be jsonl (the default) or yaml");
  }
  const std::string retry = param("retry_failed");
  if (!retry.empty() && retry != "0" && retry != "1" && retry != "false" && retry != "true") {
    return JsonError(400, "?retry_failed= must be 1 or true (or 0, false: the default)");
  }
  const bool retry_failed = retry == "1" || retry == "true";
  const std::string extension = format.empty() ? "jsonl" : format;
  // An active job (running or waiting) holds its claimed manifest.
  if (spool_->InInbox(name) || (records_.contains(name) && !records_.at(name).manifest.empty())) {
    return JsonError(409, "job " + name + " is already queued or running");
  }
  if (request.body.empty()) {
    return JsonError(400, "the body must be a manifest (JSONL, or YAML with ?format=yaml)");
  }
  std::string error;
  auto staged = spool_->StageUpload(name, request.body, error, extension);
  if (!staged) return JsonError(500, error);
  // Checked before it is queued: a bad manifest is answered here, with every error.
  util::InputErrors errors;
  manifest::ReadManifest(
      *staged, config_.defaults, [](manifest::Item&&) {}, errors);
  if (!errors.empty()) {
    spool_->DiscardUpload(name, extension);
    return JsonReply(422,
                     json::object{{"error", "the manifest has errors; nothing was queued"},
                                  {"errors", ErrorLines(errors, *staged, name + "." + extension)},
                                  {"error_count", errors.total()}});
  }
  if (!spool_->PublishUpload(name, error, extension)) {
    spool_->DiscardUpload(name, extension);
    return JsonError(500, error);
  }
  JobRecord& record = Record(name);
  record.state = JobState::kQueued;
  record.exit_code = -1;
  record.cancelled = false;
  record.retry_failed = retry_failed;
  LogInfo("job " + name + ": queued by POST /jobs (" + std::to_string(request.body.size()) +
          " bytes" + (retry_failed ? "; its failed items are taken up again" : "") + ")");
  scan_wake_.Notify();
  return JsonReply(202, json::object{{"name", name}, {"state", "queued"}});
}

std::string Daemon::MetricsPage() const {
  metrics::Exposition page;
  const engine::ServiceCounters& counters = service_.counters();

  page.Family(
      "nanobatch_api_requests_total", "counter",
      "API requests by endpoint (submit, query, credits) and HTTP status (0: no response).");
  for (const auto& [key, count] : counters.api_requests) {
    page.Sample("nanobatch_api_requests_total",
                {{"endpoint", key.first}, {"code", std::to_string(key.second)}},
                static_cast<double>(count));
  }

  const RunningSums sum = SumRunning();
  page.Family("nanobatch_items", "gauge", "Items of the running jobs, by state.");
  page.Sample("nanobatch_items", {{"state", "queued"}}, static_cast<double>(sum.queued));
  page.Sample("nanobatch_items", {{"state", "in_flight"}}, static_cast<double>(sum.in_flight()));
  page.Sample("nanobatch_items", {{"state", "done"}}, static_cast<double>(sum.done));
  page.Sample("nanobatch_items", {{"state", "failed"}}, static_cast<double>(sum.gave_up));
  page.Family("nanobatch_tasks", "gauge",
              "Tasks of the running jobs by state: intent (submit recorded, outcome unknown "
              "yet), submitted (awaiting the API), completed (images downloading).");
  page.Sample("nanobatch_tasks", {{"state", "intent"}}, static_cast<double>(sum.intent));
  page.Sample("nanobatch_tasks", {{"state", "submitted"}}, static_cast<double>(sum.submitted));
  page.Sample("nanobatch_tasks", {{"state", "completed"}}, static_cast<double>(sum.completed));

  page.Family("nanobatch_credits_spent_total", "counter",
              "Credits spent by every job of this spool, finished or not (the journals' count).");
  page.Sample("nanobatch_credits_spent_total", {},
              static_cast<double>(sum.credits_spent + CreditsAtRest().spent));
  page.Family("nanobatch_credits_reserved", "gauge",
              "Credits of submissions recorded but not yet known to be charged.");
  page.Sample("nanobatch_credits_reserved", {},
              static_cast<double>(sum.credits_reserved + service_.ledger().held()));
  page.Family("nanobatch_budget_credits", "gauge",
              "limits.budget_credits, what all jobs together may spend (+Inf: no budget).");
  page.Sample("nanobatch_budget_credits", {},
              config_.limits.budget_credits ? static_cast<double>(*config_.limits.budget_credits)
                                            : std::numeric_limits<double>::infinity());
  page.Family("nanobatch_possible_duplicate_submissions", "gauge",
              "Submissions of the running jobs whose answer was lost (possibly paid twice).");
  page.Sample("nanobatch_possible_duplicate_submissions", {},
              static_cast<double>(sum.possible_duplicates));
  page.Family("nanobatch_images_flagged", "gauge",
              "Images of the running jobs whose format or aspect ratio is not what was asked "
              "(download.on_mismatch).");
  page.Sample("nanobatch_images_flagged", {}, static_cast<double>(sum.flagged_images));

  page.Family("nanobatch_jobs", "gauge", "Jobs of the spool by state.");
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kWaiting, JobState::kDone,
                         JobState::kFailed}) {
    page.Sample("nanobatch_jobs", {{"state", StateName(state)}},
                static_cast<double>(CountIn(state)));
  }
  page.Family("nanobatch_jobs_started_total", "counter", "Jobs started since the service began.");
  page.Sample("nanobatch_jobs_started_total", {}, static_cast<double>(jobs_started_));
  page.Family("nanobatch_jobs_cancelled_total", "counter",
              "Jobs cancelled by DELETE /jobs/NAME since the service started.");
  page.Sample("nanobatch_jobs_cancelled_total", {}, static_cast<double>(jobs_cancelled_));

  page.Family("nanobatch_download_bytes_total", "counter", "Image bytes downloaded.");
  page.Sample("nanobatch_download_bytes_total", {}, static_cast<double>(counters.download_bytes));

  page.Family("nanobatch_rate_limit_requests_per_second", "gauge",
              "The rate limiter's current rate (halved on 429, recovering) and configured rate.");
  page.Sample("nanobatch_rate_limit_requests_per_second", {{"kind", "current"}},
              service_.limiter().current_rate());
  page.Sample("nanobatch_rate_limit_requests_per_second", {{"kind", "configured"}},
              service_.limiter().configured_rate());
  page.Family("nanobatch_rate_limit_tokens", "gauge", "Tokens in the rate limiter's bucket.");
  page.Sample("nanobatch_rate_limit_tokens", {}, service_.limiter().tokens());

  page.Family("nanobatch_tasks_in_flight", "gauge",
              "Items holding an in-flight slot (limits.max_in_flight), and the limit.");
  page.Sample("nanobatch_tasks_in_flight", {{"kind", "used"}},
              static_cast<double>(config_.limits.max_in_flight -
                                  std::min<std::size_t>(config_.limits.max_in_flight,
                                                        service_.in_flight_available())));
  page.Sample("nanobatch_tasks_in_flight", {{"kind", "limit"}},
              static_cast<double>(config_.limits.max_in_flight));
  page.Family("nanobatch_downloads_in_flight", "gauge", "Image downloads in progress.");
  page.Sample("nanobatch_downloads_in_flight", {},
              static_cast<double>(config_.limits.max_downloads -
                                  std::min<std::size_t>(config_.limits.max_downloads,
                                                        service_.downloads_available())));

  const engine::TaskWatcher::Stats& watch = service_.watcher().stats();
  page.Family("nanobatch_polls_total", "counter", "Task polls sent.");
  page.Sample("nanobatch_polls_total", {}, static_cast<double>(watch.polls));
  page.Family("nanobatch_tasks_settled_by_callback_total", "counter",
              "Tasks settled by the API's webhook rather than a poll.");
  page.Sample("nanobatch_tasks_settled_by_callback_total", {},
              static_cast<double>(watch.settled_by_callback));
  page.Family("nanobatch_tasks_awaiting_verdict", "gauge",
              "Submitted tasks waiting for their verdict (a poll or the webhook).");
  page.Sample("nanobatch_tasks_awaiting_verdict", {},
              static_cast<double>(service_.watcher().waiting()));
  page.Family("nanobatch_pollers", "gauge",
              "Poller coroutines sending due polls (at most one per API connection).");
  page.Sample("nanobatch_pollers", {}, static_cast<double>(service_.watcher().pollers()));

  page.Family("nanobatch_journal_sync_seconds", "histogram",
              "Latency of one journal group commit's fdatasync.");
  page.Write("nanobatch_journal_sync_seconds", {}, counters.journal_sync_seconds);
  page.Family("nanobatch_image_sync_seconds", "histogram",
              "Latency of one sync of downloaded images (one syncfs for the images written "
              "together, or one image's fsync).");
  page.Write("nanobatch_image_sync_seconds", {}, counters.image_sync_seconds);

  page.Family("nanobatch_up_seconds", "gauge", "Seconds since the service started.");
  page.Sample("nanobatch_up_seconds", {},
              std::chrono::duration<double>(Clock::now() - started_).count());
  return page.Take();
}

// ---------------------------------------------------------------------------------------------
// The process

std::uint64_t Daemon::CountIn(JobState state) const {
  std::uint64_t count = 0;
  for (const auto& [name, record] : records_) count += record.state == state;
  return count;
}

std::string Daemon::StatusLine() const {
  const RunningSums sum = SumRunning();
  const engine::Ledger::Durable credits = service_.DurableCredits();
  std::ostringstream line;
  line << running_.size() << " jobs running, " << CountIn(JobState::kQueued) << " queued, "
       << CountIn(JobState::kWaiting) << " waiting, " << CountIn(JobState::kDone) << " done, "
       << CountIn(JobState::kFailed) << " failed; items " << sum.done << " done, "
       << sum.in_flight() << " in flight, " << sum.queued << " queued; credits " << credits.spent
       << " spent";
  if (config_.limits.budget_credits) line << " of " << *config_.limits.budget_credits;
  if (draining_) line << "; draining";
  return line.str();
}

void Daemon::WatchSignals(net::signal_set& signals) {
  signals.async_wait([this, &signals](boost::system::error_code error, int signal) {
    if (error) return;
    if (signal == SIGHUP) {
      Reload();
    } else {
      Drain(signal == SIGINT ? "SIGINT" : "SIGTERM");
    }
    WatchSignals(signals);
  });
}

void Daemon::Drain(const char* why) {
  if (draining_) {
    service_.EndGrace(why);  // asked again: what is in flight is not waited for
    return;
  }
  draining_ = true;
  LogInfo(std::string(why) +
          ": draining: every job stops where it is (journaled) and resumes at "
          "the next start");
  util::NotifyService("STOPPING=1\nSTATUS=" + StatusLine());
  service_.Halt(StopReason::kSignal, why);
  scan_wake_.Notify();
}

void Daemon::Reload() {
  LogInfo("SIGHUP: reloading " + config_path_);
  config::Config fresh;
  util::InputErrors errors;
  if (config::LoadConfigFile(config_path_, fresh, errors)) {
    config::ValidateConfig(fresh, errors, {.require_paths = false, .serve = true});
  }
  std::string token;
  if (std::string error; errors.empty() && !ReadToken(fresh.serve.token_file, token, error)) {
    errors.Add({config_path_, 0, "serve.token_file", error});
  }
  if (!errors.empty()) {
    std::ostringstream text;
    errors.Print(text);
    LogError("reload refused, nothing changed: " + text.str());
    return;
  }
  std::vector<std::string> changed;
  auto note = [&](const std::string& key, const std::string& before, const std::string& after) {
    if (before != after) changed.push_back(key + " " + before + " -> " + after);
  };
  auto number = [](double value) {
    std::ostringstream text;
    text << value;
    return text.str();
  };
  auto budget = [](const std::optional<std::uint64_t>& value) {
    return value ? std::to_string(*value) : std::string("none");
  };
  note("limits.rate", number(config_.limits.rate), number(fresh.limits.rate));
  note("limits.burst", std::to_string(config_.limits.burst), std::to_string(fresh.limits.burst));
  note("limits.budget_credits", budget(config_.limits.budget_credits),
       budget(fresh.limits.budget_credits));
  note("log.level", config_.log.level, fresh.log.level);
  note("serve.max_jobs", std::to_string(config_.serve.max_jobs),
       std::to_string(fresh.serve.max_jobs));
  note("serve.scan_interval_s", number(config_.serve.scan_interval_s),
       number(fresh.serve.scan_interval_s));
  if (token != token_) changed.push_back("serve.token_file (the token)");
  // What a running service cannot change: said, not silently ignored.
  std::vector<std::string> need_restart;
  auto fixed = [&](const std::string& key, const std::string& before, const std::string& after) {
    if (before != after) need_restart.push_back(key);
  };
  fixed("api.base_url", config_.api.base_url, fresh.api.base_url);
  fixed("api.key_file", config_.api.key_file, fresh.api.key_file);
  fixed("api.ca_file", config_.api.ca_file, fresh.api.ca_file);
  fixed("serve.spool_dir", config_.serve.spool_dir, fresh.serve.spool_dir);
  fixed("serve.listen", config_.serve.listen, fresh.serve.listen);
  fixed("callbacks.public_url", config_.callbacks.public_url, fresh.callbacks.public_url);
  fixed("limits.max_in_flight", std::to_string(config_.limits.max_in_flight),
        std::to_string(fresh.limits.max_in_flight));
  fixed("limits.max_downloads", std::to_string(config_.limits.max_downloads),
        std::to_string(fresh.limits.max_downloads));
  fixed("log.format", config_.log.format, fresh.log.format);

  config_.limits.rate = fresh.limits.rate;
  config_.limits.burst = fresh.limits.burst;
  config_.limits.budget_credits = fresh.limits.budget_credits;
  config_.log.level = fresh.log.level;
  config_.serve.max_jobs = fresh.serve.max_jobs;
  config_.serve.scan_interval_s = fresh.serve.scan_interval_s;
  config_.serve.token_file = fresh.serve.token_file;
  token_ = token;
  util::SetLogLevel(*util::ParseLogLevel(config_.log.level));
  const bool budget_stopped =
      service_.submitting_stopped() && service_.stop_reason() == StopReason::kBudget;
  service_.ApplyLimits();
  if (budget_stopped && !service_.submitting_stopped()) {
    // Jobs stopped by the budget go on.
    for (const auto& [name, record] : records_) {
      if (record.state == JobState::kWaiting && !running_.contains(name) &&
          std::find(resumable_.begin(), resumable_.end(), name) == resumable_.end()) {
        resumable_.push_back(name);
      }
    }
  }
  std::string said;
  for (const std::string& change : changed) said += (said.empty() ? "" : ", ") + change;
  LogInfo("reloaded: " + (said.empty() ? "nothing that serve reloads changed" : said));
  for (const std::string& key : need_restart) {
    LogWarning("reload: " + key +
               " changed; it takes effect at the next start (systemctl restart)");
  }
  scan_wake_.Notify();
}

net::awaitable<int> Daemon::Run() {
  LoadSpool();
  listener_.emplace(
      io_.get_executor(), [this](const http::IncomingRequest& request) { return Handle(request); },
      http::ServerOptions{.body_limit = [this](std::string_view method, std::string_view target) {
        return method == "POST" && target.starts_with("/jobs")
                   ? static_cast<std::size_t>(config_.serve.max_manifest_bytes)
                   : kCallbackBodyLimit;
      }});
  std::string error;
  if (!listener_->Listen(config_.serve.listen, error)) {
    LogError("serve.listen: " + error);
    co_return 2;
  }
  const std::string address = config_.serve.listen.substr(0, config_.serve.listen.rfind(':')) +
                              ":" + std::to_string(listener_->port());
  background_.Spawn(listener_->Run(listener_stop_));
  net::signal_set signals(io_.get_executor(), SIGINT, SIGTERM, SIGHUP);
  WatchSignals(signals);
  background_.Spawn(util::ReportToService([this] { return StatusLine(); }, stop_));

  co_await service_.LogBalance();  // a certificate or credential problem stops here, unpaid
  ready_ = true;
  LogInfo("serving " + spool_->path() + " on http://" + address + " (" +
          std::to_string(config_.serve.max_jobs) + " jobs at once" +
          (service_.callbacks() ? "; webhooks at " + config_.callbacks.public_url : "") + ")");
  util::NotifyService("READY=1\nSTATUS=" + StatusLine());

  co_await Schedule();
  co_await jobs_group_.Join();
  if (!draining_) util::NotifyService("STOPPING=1\nSTATUS=" + StatusLine());
  stop_.Notify();
  listener_stop_.Trigger();
  co_await background_.Join();
  signals.cancel();
  service_.ReleaseLoop();
  const StopReason reason = draining_ ? StopReason::kSignal : service_.stop_reason();
  const int exit_code = ExitCodeFor(reason);
  LogInfo("serve ended (exit " + std::to_string(exit_code) + ")" +
          (reason != StopReason::kNone ? std::string(": ") + engine::Describe(reason) : ""));
  co_return exit_code;
}

}  // namespace

int RunDaemon(config::Config config, const std::string& config_path, const std::string& api_key) {
  std::string error;
  auto spool = Spool::Open(config.serve.spool_dir, error);
  if (!spool) {
    LogError(error);
    return 2;
  }
  std::string token;
  if (!ReadToken(config.serve.token_file, token, error)) {
    LogError("serve.token_file: " + error);
    return 2;
  }
  net::io_context io(1);
  Daemon daemon(io, config, config_path, std::move(spool), std::move(token), api_key);
  int exit_code = 3;
  net::co_spawn(io, daemon.Run(), [&](std::exception_ptr failure, int code) {
    if (failure) std::rethrow_exception(failure);  // a bug: main reports it (exit 70)
    exit_code = code;
  });
  io.run();
  return exit_code;
}

}  // namespace nanobatch::serve
