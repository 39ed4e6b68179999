#pragma once
// Job: one output directory's work on a Service: its journal (through a Recorder), its manifest
// (an ItemStore), its plan, and the item lifecycle that drives every item to an image on disk or
// a recorded failure. Each item is one coroutine whose body reads top to bottom:
//
//   hold credits -> submit (Submitter) -> await the task (TaskWatcher: poll or webhook)
//     -> fetch the images (ImageFetcher) -> record
//
// entering at the right step (through one switch at its top) when an earlier run left it
// submitted, completed or with an open intent. At most limits.max_in_flight items hold a slot
// from their submission until their images are on disk, so memory and paid-but-unfetched images
// both follow the work in flight; a fresh item's lifecycle starts only with a submit turn
// (Service::submitting(): one per API connection), so items that cannot submit yet cost nothing.
// While its task waits, the item's coroutine is suspended on the watcher and holds its frame
// and little else (ShedSubmitFields).
//
// Example:
//   Job job(service, config, store, std::move(plan), journal, flags);
//   int exit_code = co_await job.Run();

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runner/config/config.h"
#include "runner/engine/image_fetcher.h"
#include "runner/engine/item_run.h"
#include "runner/engine/job_plan.h"
#include "runner/engine/recorder.h"
#include "runner/engine/service.h"
#include "runner/engine/submitter.h"
#include "runner/engine/task_group.h"
#include "runner/journal/journal.h"
#include "runner/manifest/item_store.h"
#include "runner/manifest/shard.h"
#include "runner/terminal/progress_bar.h"

namespace nanobatch::engine {

struct JobFlags {
  bool retry_failed = false;  // give items in failed.jsonl a fresh set of attempts
  manifest::Shard shard;      // recorded in RunStarted (the plan holds only this shard's items)
  std::string manifest_path;  // recorded in RunStarted
  std::string name;           // serve's job name, prefixed to the job's log lines; empty for run
};

class Job {
 public:
  Job(Service& service, const manifest::ItemStore& store, JobPlan plan, journal::Journal& journal,
      JobFlags flags);
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  // The whole job: what the plan implies is recorded, then every item runs; returns the exit
  // status of interface.md (0, 1, 3, 4 or 5). The process around it (signals, systemd, the
  // webhook receiver, the first balance query) is the host's: RunEngine's or the daemon's.
  boost::asio::awaitable<int> Run();

  // One line: done, failed, in flight, queued, rate, credits, ETA.
  std::string ProgressLine() const;
  // Items of the plan not yet known to the journal (nor departed).
  std::uint64_t queued() const;
  std::uint64_t items() const { return plan_.items; }
  const journal::Journal& journal() const { return journal_; }
  // The report written at the end of Run() (report.json's content); empty before.
  const boost::json::object& report() const { return report_; }
  // No more submissions for this job (serve's DELETE /jobs/NAME): see JobStop. Run() returns once
  // the tasks already paid for have their images or their verdicts.
  void Cancel() { stop_.Cancel(); }
  bool cancelled() const { return stop_.cancelled(); }

 private:
  enum class Entry { kSubmit, kResume, kRecover };

  boost::asio::awaitable<void> SubmitLoop();
  // Starts the lifecycles of items already paid for (`entry`: kRecover or kResume), each once it
  // has an in-flight slot; false when the job halted meanwhile.
  boost::asio::awaitable<bool> SpawnPaid(const std::vector<std::uint32_t>& indexes, Entry entry);
  // `holds_slot`: an in-flight slot is the lifecycle's to give back; `holds_submit_turn`: so is
  // a unit of Service::submitting() (taken for a resubmission otherwise).
  boost::asio::awaitable<void> Lifecycle(ItemRun run, bool holds_slot, Entry entry,
                                         bool holds_submit_turn);
  // Reads item `index` of the manifest for its lifecycle; a manifest edited since validation
  // stops the run (nothing of the changed item is submitted).
  std::optional<ItemRun> LoadRun(std::uint32_t index);
  // Submit again after a failed task (refunded by the API), an abandoned intent or a mismatched
  // image, within the item's attempts and the budget; false: it stays queued for the next run.
  bool Resubmit(ItemRun& run);
  // After a failed task (kTaskFailed) or giving up (kGaveUp): commits the records; for a failed
  // task, gives up once the attempts are used, else holds the item for another submission
  // (Resubmit). True: submit again.
  boost::asio::awaitable<bool> AfterFailedTask(ItemRun& run, TaskOutcome outcome);
  // After a failed task: records the item given up (not committed) once its failed tasks reach
  // retry.max_task_attempts; true if it did.
  bool GiveUpAfterFailedTasks(const ItemRun& run);
  // The watcher's wait for the item's task (poll or webhook). Not a coroutine: while the task
  // waits, the item holds the lifecycle's frame and a node of the watcher, nothing more.
  // `resumed`: submitted by an earlier run, so it may be long finished: polled at once.
  TaskWatcher::AwaitOperation AwaitTask(const ItemRun& run, bool resumed);
  // Records the verdict (committed by the caller when the outcome needs it).
  TaskOutcome SettleTask(const ItemRun& run, const TaskVerdict& verdict);
  TaskOutcome RecordVerdict(const ItemRun& run, const std::string& task_id,
                            const TaskVerdict& verdict);
  // One more task in a row that ended as `streak` counts (lost, failed, unusable): a streak long
  // enough stops submitting for `reason`, naming the last task and what it ended with.
  void CountInARow(RefusalStreak& streak, StopReason reason, const std::string& task_id,
                   const std::string& what);
  // Records what the plan implies before anything is sent; false if the journal failed.
  boost::asio::awaitable<bool> RecordPlan();
  boost::asio::awaitable<void> Progress();
  // The progress bar's figures (terminal::ProgressBar), and drawing it at the terminal's width.
  terminal::ProgressFigures Figures() const;
  void DrawProgress() const;
  // The end-of-run block a terminal gets: done, failed by code, credits, time, retries, output.
  std::string SummaryBlock(int exit_code) const;
  int ExitCode() const;
  // Why this job stopped early: the service's reason (every job's), else its own (JobStop::Stop).
  StopReason stop_reason() const {
    return service_.stop_reason() != StopReason::kNone ? service_.stop_reason() : stop_.reason();
  }
  // The case the reason was given for (Service::stop_detail, or JobStop's).
  const std::string& stop_detail() const {
    return service_.stop_reason() != StopReason::kNone ? service_.stop_detail() : stop_.detail();
  }
  std::string Prefix() const { return flags_.name.empty() ? "" : "job " + flags_.name + ": "; }
  // The job's report: <out>/report.json and one log line (done, failed by code, credits spent
  // and refunded, duration, mean rate, polls per task).
  void Report(int exit_code);

  Service& service_;
  const config::Config& config_;
  const manifest::ItemStore& store_;
  JobPlan plan_;
  journal::Journal& journal_;
  JobFlags flags_;
  Recorder recorder_;
  JobStop stop_;  // before submitter_, which observes it
  Submitter submitter_;
  ImageFetcher fetcher_;
  TaskGroup items_;
  TaskGroup background_;
  util::AsyncEvent progress_stop_;
  Clock::time_point started_ = Clock::now();
  std::int64_t started_unix_ = 0;
  std::uint64_t tasks_settled_ = 0;     // completed or failed verdicts this run
  std::uint64_t credits_refunded_ = 0;  // failed tasks this run (api.md: refunded)
  std::uint64_t polls_ = 0;             // this job's polls (the watcher counts the service's)
  // Tasks the API said do not exist (task_not_found), in a row: a streak stops submitting, since
  // an API that loses every task would have every item paid for max_task_attempts times. Longer
  // than the refusals' streak: a lost task now and then is what resubmitting is for.
  static constexpr int kLostTasksBeforeStop = 5;
  RefusalStreak lost_tasks_{kLostTasksBeforeStop};
  // Tasks that failed (refunded), in a row with none completing: an upstream outage would fail
  // every item in flight after retry.max_task_attempts, minutes into a night's run. Long: prompts
  // the model refuses come in runs too, and each such item fails on its own.
  static constexpr int kFailedTasksBeforeStop = 20;
  RefusalStreak failed_tasks_{kFailedTasksBeforeStop};
  // Tasks completed (charged) without a usable image URL, in a row: the API's answers are not
  // what nanobatch reads, and each further item would be paid for in vain.
  RefusalStreak unusable_outputs_;
  // Tasks past polling.task_deadline_s, in a row with none completing: the model behind the API
  // hangs, and every slot freed by a task given up would pay for another that hangs too (all
  // max_in_flight of them again every task_deadline_s, all night). As long as the failures'.
  RefusalStreak expired_tasks_{kFailedTasksBeforeStop};
  std::uint64_t settled_by_callback_ = 0;
  boost::json::object report_;
};

}  // namespace nanobatch::engine
