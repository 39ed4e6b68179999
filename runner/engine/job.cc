#include "runner/engine/job.h"

#include <algorithm>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <memory>
#include <sstream>

#include "runner/fs/output_dir.h"
#include "runner/util/json_text.h"
#include "runner/util/log.h"
#include "runner/util/server_text.h"
#include "runner/version.h"

namespace nanobatch::engine {

namespace net = boost::asio;
using util::LogError;
using util::LogInfo;
using util::LogWarning;

Job::Job(Service& service, const manifest::ItemStore& store, JobPlan plan,
         journal::Journal& journal, JobFlags flags)
    : service_(service),
      config_(service.config()),
      store_(store),
      plan_(std::move(plan)),
      journal_(journal),
      flags_(std::move(flags)),
      recorder_(service, journal, Prefix()),
      stop_(service, Prefix()),
      submitter_(service, stop_, recorder_),
      fetcher_(service, recorder_),
      items_(service.executor()),
      background_(service.executor()),
      progress_stop_(service.executor()) {
  service_.AddJournal(journal_);  // its credits count against the service's budget from now on
}

Job::~Job() { service_.RemoveJournal(journal_); }

// ---------------------------------------------------------------------------------------------
// Scheduling: one lifecycle per item, at most max_in_flight items holding a slot at once.

std::optional<ItemRun> Job::LoadRun(std::uint32_t index) {
  std::string error;
  std::optional<manifest::Item> item = store_.Load(index, error);
  if (!item) {
    service_.Halt(StopReason::kMisconfigured, error);
    return std::nullopt;
  }
  ItemRun run(std::move(*item), index);
  run.price = config::PriceOf(config_, run.resolution);
  // An item given up on in an earlier run and retried (--retry-failed) gets a fresh set of
  // attempts: its failed tasks so far do not count against them.
  const proto::ItemSnapshot* snapshot = recorder_.Snapshot(run);
  if (snapshot && snapshot->phase() == proto::ItemSnapshot::GAVE_UP) {
    run.failed_tasks_base = snapshot->failed_tasks();
  }
  return run;
}

net::awaitable<bool> Job::SpawnPaid(const std::vector<std::uint32_t>& indexes, Entry entry) {
  util::AsyncSemaphore& slots = service_.in_flight();
  for (std::uint32_t index : indexes) {
    if (!co_await slots.Acquire(&service_.halt_signal())) co_return false;
    std::optional<ItemRun> run = LoadRun(index);
    if (!run) {
      slots.Release();
      co_return false;
    }
    items_.Spawn(Lifecycle(std::move(*run), true, entry, false));
  }
  co_return true;
}

net::awaitable<void> Job::SubmitLoop() {
  util::AsyncSemaphore& slots = service_.in_flight();
  // Open intents of an earlier run wait for their callbacks (they hold credits already). Items
  // already submitted or completed are finished next; they cost nothing more. Each holds a slot
  // (polls and downloads go on after submitting stopped; only a halt ends them).
  if (!co_await SpawnPaid(plan_.recover, Entry::kRecover)) co_return;
  if (!co_await SpawnPaid(plan_.resume, Entry::kResume)) co_return;
  util::AsyncSemaphore& submitting = service_.submitting();
  for (std::uint32_t index : plan_.fresh) {
    std::optional<ItemRun> run;
    while (true) {
      if (!co_await slots.Acquire(&stop_.no_new_submissions())) co_return;
      if (stop_.SubmittingStopped()) {
        slots.Release();
        co_return;
      }
      // Spend-limit pause: nothing new goes out until it lifts.
      if (Clock::now() < service_.spend_pause_until()) {
        slots.Release();
        if (co_await stop_.SubmitPauseSleep(service_.spend_pause_until() - Clock::now())) {
          co_return;
        }
        continue;
      }
      if (!run && !(run = LoadRun(index))) {
        slots.Release();
        co_return;
      }
      // Hold the credits here, synchronously, so that no two items can both pass the budget
      // check with the same credits.
      const Ledger::Hold hold = service_.ledger().TryHold(run->price, service_.DurableCredits());
      if (hold == Ledger::Hold::kHeld) break;
      slots.Release();
      if (hold == Ledger::Hold::kExhausted) {
        // Say why the budget is reached while some of it is left: the next item costs more.
        const std::uint64_t spent = service_.DurableCredits().spent;
        const std::uint64_t budget = *service_.ledger().budget();
        service_.StopSubmitting(StopReason::kBudget,
                                std::to_string(spent) + " of " + std::to_string(budget) +
                                    " credits spent; the next item costs " +
                                    std::to_string(run->price) + ", more than the " +
                                    std::to_string(budget - std::min(spent, budget)) + " left");
        co_return;
      }
      // Reserved credits may come back (a failed task is refunded): wait for that, then retry.
      if (!co_await stop_.WaitBudgetChanged()) co_return;
    }
    // A submit turn, taken last: items that cannot submit yet wait here as plan entries, not as
    // lifecycles, and the loop never holds a turn while it waits for a slot or for credits (with
    // many serve jobs, turns held that way could starve the resubmissions that free both).
    if (!co_await submitting.Acquire(&stop_.no_new_submissions())) {
      submitter_.Release(*run);
      slots.Release();
      co_return;
    }
    items_.Spawn(Lifecycle(std::move(*run), true, Entry::kSubmit, true));
  }
}

// ---------------------------------------------------------------------------------------------
// The item lifecycle

net::awaitable<void> Job::Lifecycle(ItemRun run, bool holds_slot, Entry entry,
                                    bool holds_submit_turn) {
  // The slot is held from the submission until the images are on disk (or the item stops).
  util::HeldUnit slot{service_.in_flight(), holds_slot};
  util::HeldUnit submit_turn{service_.submitting(), holds_submit_turn};
  // A resumed task may be long finished: its first poll goes out at once.
  bool resumed = entry == Entry::kResume;
  while (true) {
    // The one switch: the step this item is at. Each step records what it learned before the
    // next is chosen, so a crash anywhere resumes at the right step.
    if (entry == Entry::kRecover) {
      entry = Entry::kResume;
      if (co_await submitter_.Recover(run) == SubmitOutcome::kFailedItem && Resubmit(run)) {
        entry = Entry::kSubmit;
        continue;
      }
    }
    if (entry == Entry::kSubmit) {
      entry = Entry::kResume;
      // Not taken when stopping: Submit itself then records the item as not sent.
      if (!submit_turn.held) {
        submit_turn.held = co_await service_.submitting().Acquire(&stop_.submit_signal());
      }
      const SubmitOutcome submitted = co_await submitter_.Submit(run);
      submit_turn.Release();
      if (submitted != SubmitOutcome::kSubmitted) co_return;
      continue;
    }
    const auto phase = recorder_.PhaseOf(run);
    if (phase == proto::ItemSnapshot::SUBMITTED) {
      ShedSubmitFields(run);
      std::unique_ptr<TaskVerdict> verdict = co_await AwaitTask(run, resumed);
      resumed = false;
      const TaskOutcome outcome = SettleTask(run, *verdict);
      verdict.reset();
      if (outcome == TaskOutcome::kStillOpen) co_return;
      // A completed task is not waited for: the download follows, and its commit carries the
      // record (lost in a crash, it costs one more poll of a known task, never credits).
      if (outcome == TaskOutcome::kCompleted) continue;  // its images next
      if (!co_await AfterFailedTask(run, outcome)) co_return;
      entry = Entry::kSubmit;
      continue;
    }
    if (phase == proto::ItemSnapshot::COMPLETED) {
      // A mismatched image may ask for the item once more (download.on_mismatch: retry).
      if (co_await fetcher_.FetchAll(run) == ImageFetcher::FetchOutcome::kRedo && Resubmit(run)) {
        entry = Entry::kSubmit;
        continue;
      }
      co_return;
    }
    co_return;  // DONE, GAVE_UP, QUEUED or an intent still open: nothing more this run
  }
}

// ---------------------------------------------------------------------------------------------
// Awaiting a task: the watcher settles it (poll or webhook); the verdict is recorded here.

// Synchronous helpers of the lifecycle: their locals stay out of its coroutine frame, which
// lives as long as the item is in flight.
bool Job::Resubmit(ItemRun& run) {
  if (stop_.SubmittingStopped()) return false;
  if (!run.item) {
    // The submission's fields, read back from the manifest (an edited manifest stops the run).
    std::optional<ItemRun> fresh = LoadRun(run.index);
    if (!fresh) return false;
    fresh->failed_tasks_base = run.failed_tasks_base;
    run = std::move(*fresh);
  }
  return submitter_.Hold(run);
}

// One await in the lifecycle for what follows a failure: its frame holds a slot for every
// await, for as long as the item is in flight.
net::awaitable<bool> Job::AfterFailedTask(ItemRun& run, TaskOutcome outcome) {
  // Committed before anything follows; a failed task that cannot be recorded stays open.
  // A named local, not `if (!co_await ...) co_return`: GCC 12.2 miscompiles that statement in a
  // coroutine with no local variable (it resumed a destroyed frame: SIGILL in engine_test).
  // A six-line asio reproduction crashes the same way; any local variable avoids it.
  const bool committed = co_await recorder_.Commit();
  if (!committed || outcome == TaskOutcome::kGaveUp) co_return false;
  if (GiveUpAfterFailedTasks(run)) {
    co_await recorder_.Commit();
    co_return false;
  }
  co_return Resubmit(run);  // false: stays queued for the next run
}

bool Job::GiveUpAfterFailedTasks(const ItemRun& run) {
  const proto::ItemSnapshot* failed = recorder_.Snapshot(run);
  const std::uint32_t failures = failed->failed_tasks() - run.failed_tasks_base;
  if (failures < config_.retry.max_task_attempts) return false;
  recorder_.RecordGaveUp(
      run, failed->last_error_code(),
      failed->last_error_message() + " (after " + std::to_string(failures) + " failed tasks)");
  return true;
}

TaskWatcher::AwaitOperation Job::AwaitTask(const ItemRun& run, bool resumed) {
  const proto::ItemSnapshot* snapshot = recorder_.Snapshot(run);
  const std::string& token = snapshot->callback_token();
  if (service_.callbacks() && !token.empty()) {
    // A task of an earlier run (or an earlier attempt) still answers to its token.
    service_.watcher().Expect(token);
    service_.watcher().Bind(token, snapshot->task_id());
  }
  return service_.watcher().Await(WatchedTask{.task_id = snapshot->task_id(),
                                              .resolution = run.resolution,
                                              .resumed = resumed,
                                              .poll_counter = &polls_});
}

TaskOutcome Job::SettleTask(const ItemRun& run, const TaskVerdict& verdict) {
  const proto::ItemSnapshot* snapshot = recorder_.Snapshot(run);
  settled_by_callback_ += verdict.by_callback;
  if (verdict.kind != TaskVerdict::Kind::kOpen && !snapshot->callback_token().empty()) {
    service_.watcher().Forget(snapshot->callback_token());
  }
  // A copy: recording the verdict changes the snapshot.
  const std::string task_id = snapshot->task_id();
  return RecordVerdict(run, task_id, verdict);
}

// Synchronous on purpose: the records and messages built here stay out of the lifecycle's
// coroutine frame, which lives as long as the item is in flight (thousands at once).
TaskOutcome Job::RecordVerdict(const ItemRun& run, const std::string& task_id,
                               const TaskVerdict& verdict) {
  // `credits_unknown`: the task's charge is unknown (it vanished), so its credits stay spent.
  auto record_failed = [&](const std::string& code, const std::string& message,
                           bool credits_unknown) {
    proto::Record record;
    auto* failed = record.mutable_task_failed();
    failed->set_item_id(run.id);
    failed->set_task_id(task_id);
    failed->set_error_code(code);
    failed->set_message(message);
    failed->set_attempt(recorder_.Snapshot(run)->attempt());
    failed->set_credits_spent_unknown(credits_unknown);
    recorder_.Append(std::move(record));
  };
  switch (verdict.kind) {
    case TaskVerdict::Kind::kOpen:
      if (verdict.past_deadline) {
        CountInARow(expired_tasks_, StopReason::kTasksStuck, task_id,
                    "not finished after polling.task_deadline_s");
      }
      return TaskOutcome::kStillOpen;
    case TaskVerdict::Kind::kCompleted: {
      ++tasks_settled_;
      lost_tasks_.Accepted();
      failed_tasks_.Accepted();
      expired_tasks_.Accepted();
      const api::TaskStatus& task = verdict.status;
      proto::Record record;
      auto* completed = record.mutable_completed();
      completed->set_item_id(run.id);
      completed->set_task_id(task_id);
      for (const std::string& url : task.urls) completed->add_urls(url);
      recorder_.Append(std::move(record));
      if (task.output_problem != api::TaskStatus::OutputProblem::kNone) {
        // Completed (and so charged), but with nothing usable: the item fails with its own
        // code rather than being paid for again.
        const std::string problem = api::DescribeOutputProblem(task);
        recorder_.RecordGaveUp(run, std::string(api::OutputProblemCode(task.output_problem)),
                               "task " + task_id + ": " + problem);
        CountInARow(unusable_outputs_, StopReason::kUnusableOutput, task_id, problem);
        return TaskOutcome::kGaveUp;
      }
      unusable_outputs_.Accepted();
      return TaskOutcome::kCompleted;
    }
    case TaskVerdict::Kind::kFailed: {
      // api.md: the credits of a failed task are refunded automatically.
      ++tasks_settled_;
      lost_tasks_.Accepted();  // the API knew the task
      credits_refunded_ += run.price;
      const api::TaskStatus& task = verdict.status;
      record_failed(task.error_code, task.error_message, false);
      CountInARow(failed_tasks_, StopReason::kTasksFailing, task_id,
                  task.error_code + ": " + task.error_message);
      // Resubmitted within retry.max_task_attempts (a last failure is logged when given up).
      util::LogTransient("failed tasks resubmitted", ItemLabel(Prefix(), run) + ": task " +
                                                         task_id + " failed: " + task.error_code +
                                                         ": " + task.error_message);
      return TaskOutcome::kTaskFailed;
    }
    case TaskVerdict::Kind::kNotFound:
      // The API says the task does not exist; whether it was charged is unknown.
      record_failed(verdict.error.code, verdict.error.message, true);
      CountInARow(lost_tasks_, StopReason::kTasksLost, task_id,
                  verdict.error.code + ": " + verdict.error.message);
      return TaskOutcome::kTaskFailed;
  }
  return TaskOutcome::kStillOpen;
}

void Job::CountInARow(RefusalStreak& streak, StopReason reason, const std::string& task_id,
                      const std::string& what) {
  // The service's stop, not this job's: every job's tasks go to the same API.
  if (streak.Refused()) {
    service_.StopSubmitting(reason, std::to_string(streak.length()) + " tasks in a row, the last " +
                                        task_id + ": " + what);
  }
}

// ---------------------------------------------------------------------------------------------
// Start, progress, end

net::awaitable<bool> Job::RecordPlan() {
  journal_.ReserveItems(journal_.state().size() + plan_.fresh.size());
  std::string error;
  for (const std::string& id : plan_.returned) {
    proto::Record record;
    record.mutable_item_returned()->set_item_id(id);
    recorder_.Append(std::move(record));
  }
  for (const std::string& id : plan_.abandon) {
    // Interrupted between recording the intent and recording its outcome: the POST may have
    // gone out. Counted as a possible duplicate; submitted again.
    recorder_.RecordAbandoned(id,
                              "the previous run stopped before the submit's outcome was "
                              "recorded");
  }
  for (const std::string& id : plan_.redo) {
    // Generated again on purpose: the old images kept in .previous/, the item queued.
    if (!co_await recorder_.Redo(id, /*mismatch=*/false, "run --redo")) co_return false;
  }
  if (!plan_.redo.empty()) {
    LogInfo(std::to_string(plan_.redo.size()) +
            " items will be generated again (--redo); their previous images are in " +
            journal_.dir().PathOf(fs::kPreviousDir));
  }
  std::size_t downloads_retried = 0;
  for (const std::string& id : plan_.refetch) {
    // Missing or changed on disk, or its downloads failed: downloaded again from its permanent
    // URL, not paid again.
    const proto::ItemSnapshot* snapshot = journal_.state().Find(id);
    downloads_retried += snapshot->phase() == proto::ItemSnapshot::GAVE_UP;
    proto::Record record;
    auto* completed = record.mutable_completed();
    completed->set_item_id(id);
    completed->set_task_id(snapshot->task_id());
    *completed->mutable_urls() = snapshot->urls();
    recorder_.Append(std::move(record));
  }
  if (plan_.refetch.size() > downloads_retried) {
    LogWarning(std::to_string(plan_.refetch.size() - downloads_retried) +
               " finished images are missing or changed on disk; downloading them again");
  }
  if (downloads_retried > 0) {
    LogInfo(std::to_string(downloads_retried) +
            " failed items had their tasks completed and paid for; downloading their images "
            "again (--retry-failed), not paying again");
  }
  // Items of earlier runs that left the manifest are left alone, and marked so that `status`
  // counts them apart.
  for (const std::string& id : plan_.departed) {
    proto::Record gone;
    gone.mutable_item_departed()->set_item_id(id);
    recorder_.Append(std::move(gone));
  }
  if (!plan_.departed.empty()) {
    LogInfo(plan_.departed.size() == 1
                ? std::string("1 item of an earlier run is no longer in the manifest; it is left "
                              "alone")
                : std::to_string(plan_.departed.size()) +
                      " items of earlier runs are no longer in the manifest; they are left alone");
  }
  proto::Record record;
  auto* started = record.mutable_run_started();
  started->set_manifest_path(flags_.manifest_path);
  started->set_manifest_items(plan_.items);
  started->set_shard_index(flags_.shard.index);
  started->set_shard_count(flags_.shard.count);
  started->set_has_budget(config_.limits.budget_credits.has_value());
  started->set_budget_credits(config_.limits.budget_credits.value_or(0));
  started->set_version(kVersion);
  started->set_retry_failed(flags_.retry_failed);
  recorder_.Append(std::move(record));
  if (!co_await recorder_.Commit()) co_return false;
  if (!recorder_.outputs().Rewrite(journal_.state(), error)) {
    LogError("cannot write the output files: " + error);
    co_return false;
  }
  co_return true;
}

std::uint64_t Job::queued() const {
  // The journal counts the manifest's items it knows (departed items apart); the rest are
  // queued. Counters, not a walk over a million items, every second.
  const journal::Totals& totals = journal_.state().totals();
  const std::uint64_t known =
      totals.done + totals.gave_up + totals.intent + totals.submitted + totals.completed;
  return plan_.items > known ? plan_.items - known : 0;
}

std::string Job::ProgressLine() const {
  const journal::Totals& totals = journal_.state().totals();
  const std::uint64_t done = totals.done, failed = totals.gave_up;
  const std::uint64_t in_flight = totals.intent + totals.submitted + totals.completed;
  const std::uint64_t queued = this->queued();
  const double elapsed = std::chrono::duration<double>(Clock::now() - started_).count();
  const double rate = elapsed > 0 ? submitter_.sent() / elapsed : 0;
  const double done_rate = elapsed > 0 ? fetcher_.done() / elapsed : 0;
  std::ostringstream line;
  line.precision(2);
  line << std::fixed << Prefix() << "progress: " << done << " done, " << failed << " failed, "
       << in_flight << " in flight, " << queued << " queued; " << rate << " submits/s; credits "
       << totals.credits_spent << " spent + " << totals.credits_reserved + service_.ledger().held()
       << " reserved";
  if (config_.limits.budget_credits) line << " of " << *config_.limits.budget_credits;
  // Once nothing more is submitted (a budget, a stop, a cancel), the queued items will not go
  // this run: the ETA is the tasks in flight's alone (it said "ETA 10 s" for 14 items that
  // never would).
  const bool submitting = !service_.submitting_stopped() && !cancelled();
  const std::uint64_t to_come = submitting ? queued + in_flight : in_flight;
  if (done_rate > 0 && to_come > 0) {
    line << "; ETA " << static_cast<long>(to_come / done_rate) << " s";
    if (!submitting) line << " for the tasks in flight";
  }
  return line.str();
}

terminal::ProgressFigures Job::Figures() const {
  const journal::Totals& totals = journal_.state().totals();
  terminal::ProgressFigures figures;
  figures.total = plan_.items;
  figures.done = totals.done;
  figures.failed = totals.gave_up;
  figures.in_flight = totals.intent + totals.submitted + totals.completed;
  figures.credits_spent = totals.credits_spent;
  figures.budget = config_.limits.budget_credits;
  figures.elapsed_s = std::chrono::duration<double>(Clock::now() - started_).count();
  figures.retries = util::TransientCount();
  // Images a minute over the last two minutes of finished items (or the whole run, if shorter).
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  constexpr std::int64_t kWindowS = 120;
  std::uint64_t recent = 0;
  for (const std::int64_t done_at : journal_.state().recent_done_times()) {
    if (done_at >= now - kWindowS && done_at >= started_unix_) ++recent;
  }
  const double window = std::min<double>(kWindowS, std::max(1.0, figures.elapsed_s));
  figures.images_per_minute = static_cast<double>(recent) * 60 / window;
  const std::uint64_t left = queued() + figures.in_flight;
  if (figures.images_per_minute > 0)
    figures.eta_s = static_cast<double>(left) * 60 / figures.images_per_minute;
  if (left == 0) figures.eta_s = 0;
  return figures;
}

void Job::DrawProgress() const {
  util::SetProgressLine(terminal::RenderProgressBar(Figures(), util::TerminalColumns()));
}

std::string Job::SummaryBlock(int exit_code) const {
  const journal::Totals& totals = journal_.state().totals();
  const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  std::string failures;
  for (const auto& [code, count] : journal_.state().FailuresByCode()) {
    failures += (failures.empty() ? " (" : ", ") + code + ": " + std::to_string(count);
  }
  if (!failures.empty()) failures += ")";
  std::ostringstream block;
  block.precision(1);
  block << std::fixed << "\n"
        << Prefix() << "nanobatch run ended, exit " << exit_code << "\n"
        << "  done      " << totals.done << " of " << plan_.items << " items, " << totals.images
        << " images";
  if (totals.flagged_images > 0) block << " (" << totals.flagged_images << " not as asked)";
  block << "\n  failed    " << totals.gave_up << failures << "\n"
        << "  credits   " << totals.credits_spent << " spent";
  if (config_.limits.budget_credits) block << " of a budget of " << *config_.limits.budget_credits;
  block << ", " << credits_refunded_ << " refunded this run\n"
        << "  time      " << terminal::Clock(seconds) << ", "
        << (seconds > 0 ? fetcher_.done() * 60 / seconds : 0.0) << " images/min\n";
  if (util::TransientCount() > 0) block << "  retried   " << util::TransientSummary() << "\n";
  if (totals.possible_duplicates > 0) {
    block << "  possible duplicate submissions: " << totals.possible_duplicates << "\n";
  }
  block << "  output    " << journal_.dir().path()
        << "/ (metadata.jsonl, failed.jsonl, report.json)\n";
  return block.str();
}

net::awaitable<void> Job::Progress() {
  // One job on a terminal draws a progress bar (serve's jobs log lines).
  const bool terminal = util::StderrIsTerminal() && flags_.name.empty();
  const auto period = terminal ? std::chrono::milliseconds(500)
                               : std::chrono::duration_cast<std::chrono::milliseconds>(
                                     ToDuration(config_.log.progress_interval_s));
  // A resized terminal gets its bar redrawn at once, at the new width.
  std::shared_ptr<net::signal_set> resized;
  if (terminal) {
    resized = std::make_shared<net::signal_set>(co_await net::this_coro::executor, SIGWINCH);
    struct Redraw {
      const Job* job;
      std::weak_ptr<net::signal_set> signals;
      void operator()(const boost::system::error_code& error, int) const {
        auto alive = signals.lock();
        if (error || !alive) return;
        job->DrawProgress();
        alive->async_wait(*this);
      }
    };
    resized->async_wait(Redraw{this, resized});
    DrawProgress();
  }
  while (!co_await progress_stop_.WaitFor(period)) {
    // A long run's journal is compacted as it goes (Compact is synchronous: no record can slip
    // in between the snapshot and the switch to the new file; it waits for a turn with no
    // batch in flight).
    std::string error;
    if (!journal_.failed() && !journal_.MaybeCompact(error) && !error.empty()) {
      LogWarning("journal compaction failed: " + error);
    }
    if (terminal) {
      DrawProgress();
    } else {
      LogInfo(ProgressLine());
    }
  }
  if (terminal) {
    resized->cancel();
    resized.reset();
    DrawProgress();  // the final figures stay on screen above the summary
    std::fputs("\n", stderr);
    util::SetProgressLine("");
  }
}

int Job::ExitCode() const {
  const StopReason reason = stop_reason();
  if (reason == StopReason::kAuth) return 4;
  const bool misconfigured = reason == StopReason::kMisconfigured ||
                             reason == StopReason::kDownloadPolicy ||
                             reason == StopReason::kRequestRefused ||
                             reason == StopReason::kUnusableOutput || fetcher_.policy_blocked() > 0;
  const journal::Totals& totals = journal_.state().totals();
  const std::uint64_t finished = totals.done + totals.gave_up;
  if (plan_.items > finished) return misconfigured ? 5 : 3;
  return totals.gave_up > 0 ? 1 : 0;
}

namespace {

// A figure for report.json, to a thousandth: 18.547 s, not 18.546814037.
double Thousandths(double value) { return std::round(value * 1000) / 1000; }

}  // namespace

void Job::Report(int exit_code) {
  const journal::Totals& totals = journal_.state().totals();
  const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  const std::uint64_t polls = polls_;
  const double polls_per_task = tasks_settled_ > 0 ? double(polls) / tasks_settled_ : 0;
  const double rate = seconds > 0 ? fetcher_.done() / seconds : 0;
  boost::json::object failures;
  std::string failure_text;
  for (const auto& [code, count] : journal_.state().FailuresByCode()) {
    failures[code] = count;
    failure_text += (failure_text.empty() ? "" : ", ") + code + " " + std::to_string(count);
  }
  const StopReason reason = stop_reason();
  boost::json::object report{
      {"exit_code", exit_code},
      {"stop_reason", reason == StopReason::kNone ? boost::json::value(nullptr)
                                                  : boost::json::value(Describe(reason))},
      {"stop_detail", reason == StopReason::kNone || stop_detail().empty()
                          ? boost::json::value(nullptr)
                          // Server text may be in it: scrubbed of the key, capped.
                          : boost::json::value(util::ServerText(stop_detail(), 1000))},
      {"cancelled", stop_.cancelled()},
      {"items", plan_.items},
      {"done", totals.done},
      {"failed", totals.gave_up},
      {"failed_by_code", std::move(failures)},
      {"credits_spent", totals.credits_spent},
      {"credits_reserved", totals.credits_reserved},
      {"credits_refunded", credits_refunded_},
      {"budget_credits", config_.limits.budget_credits
                             ? boost::json::value(*config_.limits.budget_credits)
                             : boost::json::value(nullptr)},
      {"possible_duplicate_submissions", totals.possible_duplicates},
      {"this_run",
       boost::json::object{
           {"started_unix", started_unix_},
           {"duration_s", Thousandths(seconds)},
           {"submissions", submitter_.sent()},
           {"items_done", fetcher_.done()},
           {"items_per_s", Thousandths(rate)},
           {"tasks_settled", tasks_settled_},
           {"polls", polls},
           {"polls_per_task", Thousandths(polls_per_task)},
           {"settled_by_callback", settled_by_callback_},
           {"credits_refunded", credits_refunded_},
       }},
  };
  std::string error;
  report_ = report;
  if (!fs::WriteFileAtomically(journal_.dir().fd(), "report.json", util::JsonText(report) + "\n",
                               fs::kPublishedFileMode, error)) {
    LogWarning("cannot write report.json: " + error);
  }
  std::ostringstream line;
  line.precision(2);
  line << std::fixed << Prefix() << "report: " << totals.done << " done, " << totals.gave_up
       << " failed" << (failure_text.empty() ? "" : " (" + failure_text + ")") << " of "
       << plan_.items << "; credits " << totals.credits_spent << " spent, " << credits_refunded_
       << " refunded this run; " << seconds << " s, " << rate << " items/s, " << polls_per_task
       << " polls per task";
  LogInfo(line.str());
}

net::awaitable<int> Job::Run() {
  started_unix_ = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  // The journal or the output files cannot be written: 3 (free space, then run again).
  if (!co_await RecordPlan()) co_return 3;
  const journal::Totals& totals = journal_.state().totals();
  const std::string shard = flags_.shard.count > 1
                                ? " (shard " + std::to_string(flags_.shard.index) + " of " +
                                      std::to_string(flags_.shard.count) + " of " +
                                      std::to_string(store_.size()) + ")"
                                : "";
  LogInfo(Prefix() + "run: " + std::to_string(plan_.items) +
          (plan_.items == 1 ? " item" : " items") + shard + "; " +
          std::to_string(plan_.fresh.size()) + " to submit, " +
          std::to_string(plan_.resume.size() + plan_.recover.size()) + " to resume; " +
          std::to_string(totals.credits_spent) + " credits spent so far" +
          (config_.limits.budget_credits
               ? " of a budget of " + std::to_string(*config_.limits.budget_credits)
               : std::string()));

  background_.Spawn(Progress());
  if (!service_.halted()) items_.Spawn(SubmitLoop());
  co_await items_.Join();
  progress_stop_.Notify();
  co_await background_.Join();

  std::string error;
  co_await recorder_.Commit();
  if (!journal_.failed() && !journal_.MaybeCompact(error) && !error.empty()) {
    LogWarning(Prefix() + "journal compaction skipped: " + error);
  }
  if (!recorder_.outputs().Finish(journal_.state(), error)) {
    LogError(Prefix() + "cannot write the output files: " + error);
  }

  const int exit_code = ExitCode();
  const StopReason reason = stop_reason();
  if (util::StderrIsTerminal() && flags_.name.empty()) {
    const std::string block = SummaryBlock(exit_code);
    std::fwrite(block.data(), 1, block.size(), stderr);
  } else {
    LogInfo(ProgressLine());
  }
  Report(exit_code);
  LogInfo(Prefix() + "run ended (exit " + std::to_string(exit_code) + ")" +
          (reason != StopReason::kNone ? std::string(": ") + Describe(reason)
           : stop_.cancelled()         ? std::string(": cancelled")
                                       : std::string()) +
          "; possible duplicate submissions so far: " +
          std::to_string(journal_.state().totals().possible_duplicates));
  co_return exit_code;
}

}  // namespace nanobatch::engine
