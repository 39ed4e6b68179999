#include "runner/engine/engine.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <boost/asio.hpp>
#include <cmath>
#include <cstdio>
#include <deque>
#include <optional>
#include <random>
#include <sstream>

#include "runner/api/codec.h"
#include "runner/download/image_file.h"
#include "runner/engine/ledger.h"
#include "runner/engine/rate_limiter.h"
#include "runner/engine/stop_reason.h"
#include "runner/engine/task_group.h"
#include "runner/engine/task_watcher.h"
#include "runner/http/client.h"
#include "runner/http/server.h"
#include "runner/http/url.h"
#include "runner/output/output_files.h"
#include "runner/ratelimit/backoff.h"
#include "runner/util/async.h"
#include "runner/util/log.h"
#include "runner/util/random_token.h"
#include "runner/util/server_text.h"
#include "runner/util/service_notify.h"
#include "runner/version.h"

namespace nanobatch::engine {
namespace {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;
using util::LogError;
using util::LogInfo;
using util::LogWarning;

constexpr std::size_t kApiBodyLimit = 1 << 20;  // API responses are small JSON
constexpr auto kDownloadGrace = std::chrono::seconds(5);

Clock::duration ToDuration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

Clock::duration ToDuration(Seconds seconds) {
  return std::chrono::duration_cast<Clock::duration>(seconds);
}

// Consecutive items whose images were refused by the download policy before submitting stops:
// one odd URL is the item's; the same refusal for several items in a row is the configuration.
constexpr int kRefusalsBeforeStop = 3;

enum class SubmitOutcome { kSubmitted, kFailedItem, kStopped };
// kStillOpen: the task is neither finished nor known to be lost (past its deadline, or the run is
// stopping): it stays submitted and the next run polls it again, never pays for it again.
enum class PollOutcome { kCompleted, kTaskFailed, kGaveUp, kStillOpen };

// One item during its lifecycle: read from the manifest when the lifecycle starts, held only
// while it runs (memory follows the work in flight, not the manifest's size).
struct ItemRun {
  manifest::Item item;
  std::string content_hash;
  std::uint32_t price;
  std::uint32_t failed_tasks_base;  // failed tasks before this run's fresh attempts
};

class Engine {
 public:
  Engine(net::io_context& io, const config::Config& config, std::string api_key,
         const manifest::ItemStore& store, JobPlan plan, journal::Journal& journal,
         EngineFlags flags)
      : io_(io),
        executor_(io.get_executor()),
        config_(config),
        authorization_("Bearer " + api_key),
        store_(store),
        plan_(std::move(plan)),
        journal_(journal),
        flags_(flags),
        client_(
            executor_,
            http::ClientOptions{
                .ca_file = config.api.ca_file,
                .connect_timeout = ToDuration(config.timeouts.connect_s),
                // Requests queue for a connection before taking their rate token, so the pool
                // bounds how many submits share one journal commit: 32 keeps group commits
                // large without many idle TLS connections.
                .max_connections_per_host = std::max<std::size_t>(32, config.limits.max_downloads),
            }),
        limiter_(executor_, config.limits.rate, config.limits.burst),
        in_flight_(executor_, config.limits.max_in_flight),
        downloads_(executor_, config.limits.max_downloads),
        submit_stop_event_(executor_),
        halt_signal_(executor_),
        submit_signal_(executor_),
        flushed_(executor_),
        budget_changed_(executor_),
        progress_stop_(executor_),
        group_(executor_),
        background_(executor_),
        backoff_(Seconds(config.retry.base_delay_s), Seconds(config.retry.max_delay_s),
                 std::random_device{}()),
        outputs_(journal.dir()),
        grace_timer_(executor_),
        watcher_(
            executor_, client_, limiter_, halt_signal_,
            [this](http::Request::Method method, std::string target) {
              return ApiRequest(method, std::move(target), "");
            },
            WatcherOptions(config), [this](StopReason reason, const std::string& detail) {
              Halt(reason, detail);
            }),
        receiver_stop_(executor_),
        ledger_(config.limits.budget_credits) {
    api_endpoint_ = *http::ParseUrl(config.api.base_url);
    api_endpoint_.target = "/";
    halt_signal_.AddChild(submit_signal_);  // halting stops submitting too
  }

  net::awaitable<int> Run();

 private:
  // --- journal -------------------------------------------------------------------------------
  net::awaitable<bool> Commit();
  void Append(proto::Record record) { journal_.Append(std::move(record)); }
  const proto::ItemSnapshot* Snapshot(const ItemRun& run) const {
    return journal_.state().Find(run.item.id);
  }
  // Credits are reserved (in memory) when an item is scheduled, and the intent is recorded only
  // once the rate limiter lets its POST go: a crash can then leave open only the intents whose
  // POST was about to go out or was out, which is the window the API leaves (no idempotency key).
  // Credits: held in the ledger (budget checked) before anything is recorded or sent.
  Ledger::Durable DurableCredits() const;
  bool Reserve(const ItemRun& run);
  void Unreserve(const ItemRun& run);
  void AppendIntent(const ItemRun& run, const std::string& callback_token);
  void RecordNotSent(const ItemRun& run, const std::string& code, const std::string& message);
  // `code` and `message` are copied: they often come from the item's own snapshot, which
  // Finalize releases.
  void RecordGaveUp(const ItemRun& run, std::string code, std::string message);

  // --- stopping ------------------------------------------------------------------------------
  void StopSubmitting(StopReason reason, const std::string& detail);
  void Halt(StopReason reason, const std::string& detail);
  net::awaitable<bool> HaltableSleep(Clock::duration duration);
  // Sleeps through a spend-limit pause; true if submitting stopped meanwhile.
  net::awaitable<bool> SubmitPauseSleep(Clock::duration duration);

  // --- the lifecycle -------------------------------------------------------------------------
  net::awaitable<void> SubmitLoop();
  // Where an item enters its lifecycle: a new submission (credits reserved by the submit loop),
  // a task to settle or images to fetch (the journal says which), or an open intent to recover.
  enum class Entry { kSubmit, kResume, kRecover };
  net::awaitable<void> Lifecycle(ItemRun run, bool holds_permit, Entry entry);
  // Reads item `index` of the manifest for its lifecycle; a manifest edited since validation
  // stops the run (nothing of the changed item is submitted).
  std::optional<ItemRun> LoadRun(std::uint32_t index);
  net::awaitable<SubmitOutcome> SendSubmit(const ItemRun& run);
  // Settles the item's task through the watcher (poll or webhook) and records the verdict.
  // `resumed`: the task was submitted by an earlier run and may be long finished: poll at once.
  net::awaitable<PollOutcome> AwaitTask(const ItemRun& run, bool resumed);
  // An intent of an earlier run with no recorded outcome: its callback may still name the task.
  net::awaitable<SubmitOutcome> Recover(const ItemRun& run);
  void RecordSubmitted(const ItemRun& run, const std::string& task_id, bool revealed);
  // --- webhooks ------------------------------------------------------------------------------
  bool callbacks() const { return !config_.callbacks.public_url.empty(); }
  std::string CallbackUrl(const std::string& token) const;
  http::Reply OnReceiverRequest(const http::IncomingRequest& request);
  static TaskWatcherOptions WatcherOptions(const config::Config& config);
  net::awaitable<void> DownloadAll(const ItemRun& run);
  net::awaitable<bool> DownloadOne(const ItemRun& run, int index, const std::string& url);
  net::awaitable<void> LogBalance();
  net::awaitable<void> Progress();
  // SIGINT and SIGTERM stop the run; SIGHUP is logged and ignored (a terminal that closes must
  // not kill an overnight run).
  void WatchSignals(net::signal_set& signals);
  // Sleeps unless submitting stops (for any reason but the budget); true if it stopped.
  net::awaitable<bool> SubmitSleep(Clock::duration duration) {
    co_return co_await submit_signal_.SleepFor(duration);  // a halt triggers it too
  }
  bool SubmitsCancelled() const {
    return halted_ || (submitting_stopped_ && stop_reason_ != StopReason::kBudget);
  }

  http::Request ApiRequest(http::Request::Method method, std::string target,
                           std::string body) const {
    http::Request request;
    request.method = method;
    request.endpoint = api_endpoint_;
    request.endpoint.target = std::move(target);
    request.headers.push_back({"Authorization", authorization_});
    request.body = std::move(body);
    return request;
  }

  int ExitCode() const;
  std::string ProgressLine() const;

  net::io_context& io_;
  net::any_io_executor executor_;
  const config::Config& config_;
  const std::string authorization_;
  const manifest::ItemStore& store_;
  JobPlan plan_;
  journal::Journal& journal_;
  EngineFlags flags_;
  http::Client client_;
  http::Endpoint api_endpoint_;
  RateLimiter limiter_;
  util::AsyncSemaphore in_flight_;
  util::AsyncSemaphore downloads_;
  util::AsyncEvent submit_stop_event_;  // notified when submitting stops (or everything halts)
  // Every wait observes one of these: a halt ends all waits at once; a stop of submitting (for
  // any reason but the budget, which lets reserved submissions go) ends every wait of a submit
  // for a connection, a rate token or a backoff, so no doomed POST is sent after a 402 or 401.
  util::StopSignal halt_signal_;
  util::StopSignal submit_signal_;
  util::AsyncEvent flushed_;
  util::AsyncEvent budget_changed_;
  util::AsyncEvent progress_stop_;
  TaskGroup group_;
  TaskGroup background_;
  ratelimit::Backoff backoff_;
  ratelimit::RetryBudget retry_budget_;
  output::OutputFiles outputs_;
  net::steady_timer grace_timer_;
  TaskWatcher watcher_;
  std::optional<http::Server> receiver_;
  util::StopSignal receiver_stop_;


  Ledger ledger_;
  bool flushing_ = false;
  bool submitting_stopped_ = false;
  bool halted_ = false;
  StopReason stop_reason_ = StopReason::kNone;
  Clock::time_point spend_pause_until_{};
  std::optional<Clock::time_point> spend_limited_since_;
  int consecutive_refusals_ = 0;       // items in a row whose images the policy refused
  std::uint64_t policy_blocked_ = 0;   // paid items held back by the download policy this run
  std::uint64_t submissions_this_run_ = 0;
  std::uint64_t done_this_run_ = 0;
  Clock::time_point started_ = Clock::now();
};

// ---------------------------------------------------------------------------------------------
// Journal helpers

net::awaitable<bool> Engine::Commit() {
  if (journal_.failed()) co_return false;
  if (flushing_) {
    // Someone is about to write: our record is in their batch.
    co_await flushed_.Wait();
    co_return !journal_.failed();
  }
  flushing_ = true;
  // Let every coroutine that is ready append first, then write them all with one fdatasync.
  co_await net::post(executor_, net::use_awaitable);
  std::string error;
  const bool ok = journal_.Sync(error);
  flushing_ = false;
  flushed_.Notify();
  // Every change of reserved or spent credits is followed by a commit: a submit loop waiting
  // for credits to come back re-checks now.
  budget_changed_.Notify();
  if (!ok) {
    Halt(StopReason::kDisk, error + "; free space in " + config_.out +
                                " (or fix its permissions) and run the same command again");
  }
  co_return ok;
}

Ledger::Durable Engine::DurableCredits() const {
  const journal::Totals& totals = journal_.state().totals();
  return {totals.credits_spent, totals.credits_reserved};
}

bool Engine::Reserve(const ItemRun& run) {
  return ledger_.TryHold(run.price, DurableCredits()) == Ledger::Hold::kHeld;
}

void Engine::Unreserve(const ItemRun& run) {
  ledger_.Release(run.price);
  budget_changed_.Notify();
}

void Engine::AppendIntent(const ItemRun& run, const std::string& callback_token) {
  ledger_.Recorded(run.price);  // from here on the journal holds the reservation
  const proto::ItemSnapshot* snapshot = Snapshot(run);
  proto::Record record;
  auto* intent = record.mutable_submit_intent();
  intent->set_item_id(run.item.id);
  intent->set_content_hash(run.content_hash);
  intent->set_attempt((snapshot ? snapshot->attempt() : 0) + 1);
  intent->set_credits(run.price);
  intent->set_prompt(run.item.prompt);
  intent->set_resolution(run.item.resolution);
  intent->set_aspect_ratio(run.item.aspect_ratio);
  intent->set_output_format(run.item.output_format);
  for (const std::string& url : run.item.image_urls) intent->add_image_urls(url);
  intent->set_callback_token(callback_token);
  Append(std::move(record));
}

void Engine::RecordSubmitted(const ItemRun& run, const std::string& task_id, bool revealed) {
  proto::Record record;
  auto* submitted = record.mutable_submitted();
  submitted->set_item_id(run.item.id);
  submitted->set_task_id(task_id);
  submitted->set_credits(run.price);
  submitted->set_attempt(Snapshot(run)->attempt());
  submitted->set_revealed_by_callback(revealed);
  Append(std::move(record));
}

void Engine::RecordNotSent(const ItemRun& run, const std::string& code,
                           const std::string& message) {
  proto::Record record;
  auto* failed = record.mutable_task_failed();
  failed->set_item_id(run.item.id);
  failed->set_error_code(code);
  failed->set_message(message);
  Append(std::move(record));
  budget_changed_.Notify();
}

void Engine::RecordGaveUp(const ItemRun& run, std::string code, std::string message) {
  proto::Record record;
  auto* gave_up = record.mutable_gave_up();
  gave_up->set_item_id(run.item.id);
  gave_up->set_error_code(code);
  gave_up->set_message(message);
  const proto::ItemSnapshot* snapshot = Snapshot(run);
  gave_up->set_attempts(snapshot ? snapshot->attempt() : 0);
  Append(std::move(record));
  outputs_.AppendFailure(*Snapshot(run));
  LogWarning("item " + run.item.id + " failed for good: " + code + ": " + message);
  journal_.Finalize(run.item.id);  // finished: kept compact from now on
  budget_changed_.Notify();
}

// ---------------------------------------------------------------------------------------------
// Stopping

void Engine::StopSubmitting(StopReason reason, const std::string& detail) {
  if (!submitting_stopped_) {
    LogWarning("no more submissions: " + std::string(Describe(reason)) +
               (detail.empty() ? "" : " (" + detail + ")") + "; finishing the tasks in flight");
  }
  submitting_stopped_ = true;
  if (stop_reason_ == StopReason::kNone) stop_reason_ = reason;
  // A budget stop lets the submissions already reserved go out (they fit the budget); any other
  // stop means the API would refuse them too: every submit still waiting is cancelled at once.
  if (reason != StopReason::kBudget) submit_signal_.Trigger();
  in_flight_.Close();  // wakes the submit loop
  submit_stop_event_.Notify();
  budget_changed_.Notify();
}

void Engine::Halt(StopReason reason, const std::string& detail) {
  if (halted_) return;
  LogWarning("stopping: " + std::string(Describe(reason)) + (detail.empty() ? "" : ": " + detail));
  // An auth failure or a configuration problem outranks whatever stop came before it: it
  // decides the exit status.
  if (stop_reason_ == StopReason::kNone || reason == StopReason::kAuth ||
      (reason == StopReason::kMisconfigured && stop_reason_ != StopReason::kAuth)) {
    stop_reason_ = reason;
  }
  submitting_stopped_ = true;
  halted_ = true;
  halt_signal_.Trigger();
  in_flight_.Close();
  limiter_.Close();
  submit_stop_event_.Notify();
  budget_changed_.Notify();
  // Downloads already streaming may finish within the grace period; then everything is cut.
  grace_timer_.expires_after(kDownloadGrace);
  grace_timer_.async_wait([this](boost::system::error_code error) {
    if (!error) client_.Shutdown();
  });
}

net::awaitable<bool> Engine::SubmitPauseSleep(Clock::duration duration) {
  if (submitting_stopped_) co_return true;
  if (duration > Clock::duration::zero()) co_await submit_stop_event_.WaitFor(duration);
  co_return submitting_stopped_;
}

net::awaitable<bool> Engine::HaltableSleep(Clock::duration duration) {
  co_return co_await halt_signal_.SleepFor(duration);
}

// ---------------------------------------------------------------------------------------------
// The submit loop: one lifecycle per item, at most max_in_flight tasks open at once.

std::optional<ItemRun> Engine::LoadRun(std::uint32_t index) {
  std::string error;
  std::optional<manifest::Item> item = store_.Load(index, error);
  if (!item) {
    Halt(StopReason::kMisconfigured, error);
    return std::nullopt;
  }
  ItemRun run{std::move(*item), "", 0, 0};
  run.content_hash = manifest::ContentHash(run.item);
  run.price = config::PriceOf(config_, run.item.resolution);
  // An item given up on in an earlier run and retried (--retry-failed) gets a fresh set of
  // attempts: its failed tasks so far do not count against them.
  const proto::ItemSnapshot* snapshot = Snapshot(run);
  if (snapshot && snapshot->phase() == proto::ItemSnapshot::GAVE_UP) {
    run.failed_tasks_base = snapshot->failed_tasks();
  }
  return run;
}

net::awaitable<void> Engine::SubmitLoop() {
  // Open intents of an earlier run wait for their callbacks (they hold credits already).
  for (std::uint32_t index : plan_.recover) {
    if (halted_ || !co_await in_flight_.Acquire(&halt_signal_)) co_return;
    std::optional<ItemRun> run = LoadRun(index);
    if (!run) co_return;
    group_.Spawn(Lifecycle(std::move(*run), true, Entry::kRecover));
  }
  // Items already submitted or completed are finished first; they cost nothing more.
  for (std::uint32_t index : plan_.resume) {
    if (halted_) co_return;
    std::optional<ItemRun> run = LoadRun(index);
    if (!run) co_return;
    // A task still open counts against max_in_flight. If submitting has stopped (budget,
    // credits) the semaphore is closed; polling is still free, so the task goes on without one.
    const bool needs_permit = Snapshot(*run)->phase() == proto::ItemSnapshot::SUBMITTED;
    const bool got_permit = needs_permit && co_await in_flight_.Acquire();
    if (halted_) {
      if (got_permit) in_flight_.Release();
      co_return;
    }
    group_.Spawn(Lifecycle(std::move(*run), got_permit, Entry::kResume));
  }
  for (std::uint32_t index : plan_.fresh) {
    std::optional<ItemRun> run;
    while (true) {
      if (submitting_stopped_ || halted_) co_return;
      if (!co_await in_flight_.Acquire()) co_return;
      if (submitting_stopped_ || halted_) {
        in_flight_.Release();
        co_return;
      }
      // Spend-limit pause: nothing new goes out until it lifts.
      if (Clock::now() < spend_pause_until_) {
        in_flight_.Release();
        if (co_await SubmitPauseSleep(spend_pause_until_ - Clock::now())) co_return;
        continue;
      }
      if (!run && !(run = LoadRun(index))) {
        in_flight_.Release();
        co_return;
      }
      // Hold the credits here, synchronously, so that no two items can both pass the budget
      // check with the same credits.
      const Ledger::Hold hold = ledger_.TryHold(run->price, DurableCredits());
      if (hold == Ledger::Hold::kHeld) break;
      in_flight_.Release();
      if (hold == Ledger::Hold::kExhausted) {
        StopSubmitting(StopReason::kBudget, std::to_string(DurableCredits().spent) + " of " +
                                                std::to_string(*ledger_.budget()) +
                                                " credits spent");
        co_return;
      }
      // Reserved credits may come back (a failed task is refunded): wait for that, then retry.
      co_await budget_changed_.Wait();
    }
    group_.Spawn(Lifecycle(std::move(*run), true, Entry::kSubmit));
  }
}

net::awaitable<void> Engine::Lifecycle(ItemRun run, bool holds_permit, Entry entry) {
  auto release = [&] {
    if (holds_permit) in_flight_.Release();
    holds_permit = false;
  };
  // A resumed task may be long finished: its first poll goes out at once.
  bool resumed = entry == Entry::kResume;
  // Submit again after a failed task (refunded by the API) or an abandoned intent, within the
  // item's attempts and the budget; otherwise it stays queued for the next run.
  auto resubmit = [&]() {
    if (submitting_stopped_ || halted_ || !Reserve(run)) return false;
    entry = Entry::kSubmit;
    return true;
  };
  while (true) {
    // The one switch: the step this item is at. Each step records what it learned before the
    // next is chosen, so a crash anywhere resumes at the right step.
    if (entry == Entry::kRecover) {
      entry = Entry::kResume;
      if (co_await Recover(run) == SubmitOutcome::kFailedItem && resubmit()) continue;
    }
    if (entry == Entry::kSubmit) {
      entry = Entry::kResume;
      if (co_await SendSubmit(run) != SubmitOutcome::kSubmitted) {
        release();
        co_return;
      }
      continue;
    }
    const proto::ItemSnapshot* snapshot = Snapshot(run);
    const auto phase = snapshot ? snapshot->phase() : proto::ItemSnapshot::QUEUED;
    if (phase == proto::ItemSnapshot::SUBMITTED) {
      const PollOutcome outcome = co_await AwaitTask(run, resumed);
      resumed = false;
      if (outcome == PollOutcome::kStillOpen || outcome == PollOutcome::kGaveUp) {
        release();
        co_return;
      }
      if (outcome == PollOutcome::kTaskFailed) {
        const proto::ItemSnapshot* failed = Snapshot(run);
        if (failed->failed_tasks() - run.failed_tasks_base >= config_.retry.max_task_attempts) {
          RecordGaveUp(run, failed->last_error_code(),
                       failed->last_error_message() + " (after " +
                           std::to_string(failed->failed_tasks() - run.failed_tasks_base) +
                           " failed tasks)");
          co_await Commit();
          release();
          co_return;
        }
        if (resubmit()) continue;
        release();  // stays queued for the next run
        co_return;
      }
      release();  // the task is finished: its slot can go to a new submission
      continue;
    }
    if (phase == proto::ItemSnapshot::COMPLETED) {
      release();
      co_await DownloadAll(run);
      co_return;
    }
    release();
    co_return;  // DONE, GAVE_UP, QUEUED or an intent still open: nothing more this run
  }
}

// ---------------------------------------------------------------------------------------------
// Submit: credits are reserved; the intent is recorded, durably, right before the POST.

net::awaitable<SubmitOutcome> Engine::SendSubmit(const ItemRun& run) {
  bool intent_open = false;  // recorded and not yet resolved
  // Each intent has its own callback token (with callbacks on), so that a callback names the
  // submission that created its task; the body carries the token's URL.
  std::string token;
  std::string body = api::EncodeSubmit(run.item, config_.api.model);
  auto close_intent = [&]() {
    intent_open = false;
    if (!token.empty()) watcher_.Forget(token);
    token.clear();
  };
  // Leaves the item queued: drops the reservation, or records that the open intent was not sent.
  auto give_back = [&](const std::string& code, const std::string& message) {
    if (intent_open) {
      RecordNotSent(run, code, message);
      close_intent();
    } else {
      Unreserve(run);
    }
  };
  // The one window the API leaves open (no idempotency key): the POST may have created, and
  // charged, a task whose id we cannot know (no answer, or an answer without a usable id). The
  // intent is abandoned: its credits stay counted as spent and a resubmission is a possible
  // duplicate. Returns whether to submit again (credits reserved anew within the budget).
  unsigned failures = 0;
  std::optional<std::string> revealed;  // the task id a callback told, for a lost answer
  auto outcome_unknown = [&](const std::string& why) -> net::awaitable<bool> {
    ++failures;
    if (!token.empty() && !halted_) {
      // With callbacks, the task (if the POST created one) names itself when it finishes: wait
      // for that rather than pay again.
      LogWarning("item " + run.item.id + ": submit outcome unknown (" + why +
                 "); waiting up to callbacks.reveal_wait_s for its callback");
      revealed = co_await watcher_.AwaitReveal(
          token, ToDuration(Seconds(config_.callbacks.reveal_wait_s)));
      if (revealed) co_return false;
    }
    proto::Record record;
    record.mutable_intent_abandoned()->set_item_id(run.item.id);
    record.mutable_intent_abandoned()->set_reason(why);
    Append(std::move(record));
    close_intent();
    LogWarning("item " + run.item.id + ": submit outcome unknown (" + why +
               "); its credits stay counted and a resubmission counts as a possible duplicate");
    const bool exhausted = failures >= config_.retry.max_attempts;
    if (SubmitsCancelled() || exhausted || !Reserve(run)) {
      co_await Commit();
      if (exhausted) StopSubmitting(StopReason::kServerDown, why);
      co_return false;
    }
    if (!co_await Commit()) {
      Unreserve(run);
      co_return false;
    }
    co_return true;
  };
  // The task is known (from the answer, or revealed by its callback): recorded, durably.
  auto submitted = [&](const std::string& task_id, bool by_callback) -> net::awaitable<SubmitOutcome> {
    if (!token.empty()) watcher_.Bind(token, task_id);
    RecordSubmitted(run, task_id, by_callback);
    intent_open = false;
    if (by_callback) {
      LogInfo("item " + run.item.id + ": its callback named task " + task_id +
              "; not submitted again");
    }
    if (!co_await Commit()) co_return SubmitOutcome::kStopped;
    co_return SubmitOutcome::kSubmitted;
  };
  auto backoff = [&]() {
    return ToDuration(retry_budget_.TryWithdraw() ? backoff_.Delay(failures - 1)
                                                  : Seconds(config_.retry.max_delay_s));
  };
  while (true) {
    if (SubmitsCancelled()) {
      give_back("not_sent", "the run stopped submitting before this item was sent");
      co_await Commit();
      co_return SubmitOutcome::kStopped;
    }
    if (Clock::now() < spend_pause_until_) {
      co_await SubmitPauseSleep(spend_pause_until_ - Clock::now());
      continue;
    }
    // Right before the POST leaves (connection slot held): the rate token, then the intent,
    // durable. A POST is never sent unrecorded, and never after submitting stopped: every wait
    // on the way observes submit_signal_.
    auto gate = [&]() -> net::awaitable<bool> {
      if (!co_await limiter_.Acquire(&submit_signal_) || SubmitsCancelled()) co_return false;
      if (!intent_open) {
        if (!token.empty()) watcher_.Expect(token);
        AppendIntent(run, token);
        intent_open = true;
      }
      co_return co_await Commit() && !SubmitsCancelled();
    };
    if (!intent_open && token.empty() && callbacks()) {
      // A new intent, a new token: its URL goes in the body the gate's intent records.
      token = util::RandomToken();
      body = api::EncodeSubmit(run.item, config_.api.model, CallbackUrl(token));
    }
    retry_budget_.OnRequest();
    ++submissions_this_run_;
    auto result = co_await client_.Fetch(
        ApiRequest(http::Request::Method::kPost, "/v1/images/generations", body),
        ToDuration(config_.timeouts.request_s), kApiBodyLimit, gate, &submit_signal_);

    if (auto* network = std::get_if<http::NetworkError>(&result)) {
      if (network->permanent) {
        give_back("not_sent", network->what);
        co_await Commit();
        Halt(StopReason::kMisconfigured, network->what);
        co_return SubmitOutcome::kStopped;
      }
      // Not sent because the run is stopping (a stop signal, the journal failed): the loop's
      // top records that.
      if (!network->maybe_delivered && (SubmitsCancelled() || journal_.failed())) continue;
      if (network->maybe_delivered) {
        if (!co_await outcome_unknown("no response to the submit: " + network->what)) {
          co_return revealed ? co_await submitted(*revealed, true) : SubmitOutcome::kStopped;
        }
      } else if (++failures >= config_.retry.max_attempts) {
        give_back("network_error", network->what);
        co_await Commit();
        StopSubmitting(StopReason::kServerDown, network->what);
        co_return SubmitOutcome::kStopped;
      }
      co_await SubmitSleep(backoff());
      continue;
    }

    const http::Response& response = std::get<http::Response>(result);
    api::SubmitResult decoded =
        api::DecodeSubmitResponse(response.status, response.body, response.retry_after);
    if (auto* task_id = std::get_if<std::string>(&decoded)) {
      spend_limited_since_.reset();
      co_return co_await submitted(*task_id, false);
    }
    if (auto* charged = std::get_if<api::PossiblyCharged>(&decoded)) {
      if (!co_await outcome_unknown(charged->reason)) {
        co_return revealed ? co_await submitted(*revealed, true) : SubmitOutcome::kStopped;
      }
      co_await SubmitSleep(backoff());
      continue;
    }

    const api::ApiError& error = std::get<api::ApiError>(decoded);
    const std::string what = error.code + ": " + error.message;
    // The API answered with an error, so no task was created: the intent is resolved now (a
    // crash while waiting to retry must not count it as a possible duplicate). The credits stay
    // reserved in memory for the next attempt, or are given back below.
    RecordNotSent(run, error.code, error.message);
    close_intent();
    ledger_.HoldAgain(run.price);
    switch (api::ReactionTo(error)) {
      case api::Reaction::kSlowDown:
        limiter_.OnRateLimited(error.retry_after_s);
        continue;  // not the item's fault and not a failure: just wait for the limiter
      case api::Reaction::kRetry: {
        if (++failures >= config_.retry.max_attempts) {
          Unreserve(run);
          co_await Commit();
          StopSubmitting(StopReason::kServerDown, what);
          co_return SubmitOutcome::kStopped;
        }
        co_await SubmitSleep(backoff());
        continue;
      }
      case api::Reaction::kPauseSubmits: {
        const auto now = Clock::now();
        if (!spend_limited_since_) spend_limited_since_ = now;
        const double pause =
            std::max(error.retry_after_s.value_or(0), config_.retry.spend_limit_pause_s);
        // Stop now if the limit will not have lifted before the give-up time: waiting longer
        // than that would only delay the same outcome.
        if (now + ToDuration(pause) - *spend_limited_since_ >
            ToDuration(config_.retry.spend_limit_give_up_s)) {
          Unreserve(run);
          co_await Commit();
          StopSubmitting(StopReason::kSpendLimit, what);
          co_return SubmitOutcome::kStopped;
        }
        if (spend_pause_until_ < now + ToDuration(pause)) {
          spend_pause_until_ = now + ToDuration(pause);
          LogWarning("spend limit reached (" + what + "); pausing submissions for " +
                     std::to_string(static_cast<int>(pause)) + " s");
        }
        continue;
      }
      case api::Reaction::kStopSubmitting:
        Unreserve(run);
        co_await Commit();
        StopSubmitting(StopReason::kCredits, what);
        co_return SubmitOutcome::kStopped;
      case api::Reaction::kStopRun:
        Unreserve(run);
        co_await Commit();
        Halt(StopReason::kAuth, what);
        co_return SubmitOutcome::kStopped;
      case api::Reaction::kStopMisconfigured:
        Unreserve(run);
        co_await Commit();
        Halt(StopReason::kMisconfigured, MisconfiguredMessage(error, "the submit"));
        co_return SubmitOutcome::kStopped;
      case api::Reaction::kFailItem:
      case api::Reaction::kResubmit:
        Unreserve(run);
        RecordGaveUp(run, error.code, error.message);
        co_await Commit();
        co_return SubmitOutcome::kFailedItem;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Awaiting a task: the watcher settles it (poll or webhook); the verdict is recorded here.

net::awaitable<PollOutcome> Engine::AwaitTask(const ItemRun& run, bool resumed) {
  const proto::ItemSnapshot* snapshot = Snapshot(run);
  const std::string task_id = snapshot->task_id();
  const std::string token = snapshot->callback_token();
  if (callbacks() && !token.empty()) {
    // A task of an earlier run (or an earlier attempt) still answers to its token.
    watcher_.Expect(token);
    watcher_.Bind(token, task_id);
  }
  // A named argument: GCC 12 destroys a braced temporary passed to a coroutine twice.
  WatchedTask watched{.task_id = task_id, .resolution = run.item.resolution, .resumed = resumed};
  const TaskVerdict verdict = co_await watcher_.Await(std::move(watched));
  if (verdict.kind != TaskVerdict::Kind::kOpen && !token.empty()) watcher_.Forget(token);
  // `credits_unknown`: the task's charge is unknown (it vanished), so its credits stay spent.
  auto record_failed = [&](const std::string& code, const std::string& message,
                           bool credits_unknown) {
    proto::Record record;
    auto* failed = record.mutable_task_failed();
    failed->set_item_id(run.item.id);
    failed->set_task_id(task_id);
    failed->set_error_code(code);
    failed->set_message(message);
    failed->set_attempt(Snapshot(run)->attempt());
    failed->set_credits_spent_unknown(credits_unknown);
    Append(std::move(record));
  };
  switch (verdict.kind) {
    case TaskVerdict::Kind::kOpen:
      co_return PollOutcome::kStillOpen;
    case TaskVerdict::Kind::kCompleted: {
      const api::TaskStatus& task = verdict.status;
      proto::Record record;
      auto* completed = record.mutable_completed();
      completed->set_item_id(run.item.id);
      completed->set_task_id(task_id);
      for (const std::string& url : task.urls) completed->add_urls(url);
      Append(std::move(record));
      if (task.output_problem != api::TaskStatus::OutputProblem::kNone) {
        // Completed (and so charged), but with nothing usable: the item fails with its own
        // code rather than being paid for again.
        RecordGaveUp(run, std::string(api::OutputProblemCode(task.output_problem)),
                     "task " + task_id + ": " + api::DescribeOutputProblem(task));
        co_await Commit();
        co_return PollOutcome::kGaveUp;
      }
      if (!co_await Commit()) co_return PollOutcome::kStillOpen;
      co_return PollOutcome::kCompleted;
    }
    case TaskVerdict::Kind::kFailed: {
      // api.md: the credits of a failed task are refunded automatically.
      const api::TaskStatus& task = verdict.status;
      record_failed(task.error_code, task.error_message, false);
      LogWarning("item " + run.item.id + ": task " + task_id + " failed: " + task.error_code +
                 ": " + task.error_message);
      if (!co_await Commit()) co_return PollOutcome::kStillOpen;
      co_return PollOutcome::kTaskFailed;
    }
    case TaskVerdict::Kind::kNotFound:
      // The API says the task does not exist; whether it was charged is unknown.
      record_failed(verdict.error.code, verdict.error.message, true);
      if (!co_await Commit()) co_return PollOutcome::kStillOpen;
      co_return PollOutcome::kTaskFailed;
  }
  co_return PollOutcome::kStillOpen;
}

// An intent an earlier run left open (it stopped between recording the intent and its outcome):
// the POST may have created a task. With its callback token, the task names itself when it
// finishes; only when no callback comes in time is the intent abandoned (a possible duplicate)
// and the item submitted again.
net::awaitable<SubmitOutcome> Engine::Recover(const ItemRun& run) {
  const std::string token = Snapshot(run)->callback_token();
  watcher_.Expect(token);
  LogInfo("item " + run.item.id +
          ": its last submit's outcome was not recorded; waiting up to "
          "callbacks.reveal_wait_s for its callback");
  auto task_id = co_await watcher_.AwaitReveal(
      token, ToDuration(Seconds(config_.callbacks.reveal_wait_s)));
  if (task_id) {
    RecordSubmitted(run, *task_id, true);
    LogInfo("item " + run.item.id + ": its callback named task " + *task_id +
            "; not submitted again");
    co_return co_await Commit() ? SubmitOutcome::kSubmitted : SubmitOutcome::kStopped;
  }
  watcher_.Forget(token);
  if (halted_) co_return SubmitOutcome::kStopped;  // still open: the next run waits again
  proto::Record record;
  record.mutable_intent_abandoned()->set_item_id(run.item.id);
  record.mutable_intent_abandoned()->set_reason(
      "the previous run stopped before the submit's outcome was recorded, and no callback "
      "named its task within callbacks.reveal_wait_s");
  Append(std::move(record));
  co_await Commit();
  co_return SubmitOutcome::kFailedItem;  // queued again: the caller decides whether to submit
}

// ---------------------------------------------------------------------------------------------
// Downloads

net::awaitable<void> Engine::DownloadAll(const ItemRun& run) {
  const std::vector<std::string> urls(Snapshot(run)->urls().begin(), Snapshot(run)->urls().end());
  if (urls.empty()) {
    // A completed task recorded without URLs (an older journal, or a crash between the two
    // records of an output problem): it was charged; it is not paid for again.
    RecordGaveUp(run, "no_images", "the task completed with no image URL");
    co_await Commit();
    co_return;
  }
  for (int k = 0; k < static_cast<int>(urls.size()); ++k) {
    bool have = false;
    for (const auto& image : Snapshot(run)->images())
      have = have || image.index() == static_cast<unsigned>(k);
    if (have) continue;
    if (!co_await DownloadOne(run, k, urls[k])) co_return;
  }
  const proto::ItemSnapshot* done = Snapshot(run);
  if (done->phase() == proto::ItemSnapshot::DONE) {
    ++done_this_run_;
    for (const auto& image : done->images()) outputs_.AppendImage(*done, image);
    journal_.Finalize(run.item.id);  // finished: kept compact from now on
    co_await Commit();
  }
}

net::awaitable<bool> Engine::DownloadOne(const ItemRun& run, int index, const std::string& url) {
  std::string why;
  auto endpoint = http::ParseUrl(url, &why);
  const http::DownloadRefusal refusal =
      !endpoint ? http::DownloadRefusal::kNotHttps
                : http::CheckDownload(*endpoint, api_endpoint_, config_.download.allowed_hosts,
                                      &why);
  if (refusal != http::DownloadRefusal::kNone) {
    const std::string shown = util::ServerText(url, 200);
    if (refusal == http::DownloadRefusal::kHostNotAllowed) {
      // Allowing the host is the user's call: the item stays completed (paid), and the run that
      // follows the fix downloads it without paying again.
      ++policy_blocked_;
      LogError("item " + run.item.id + ": image " + shown + " not downloaded: " + why);
    } else {
      RecordGaveUp(run, "download_refused", "image URL " + shown + " refused: " + why);
      co_await Commit();
    }
    if (++consecutive_refusals_ >= kRefusalsBeforeStop) {
      StopSubmitting(StopReason::kDownloadPolicy,
                     std::to_string(consecutive_refusals_) + " items in a row: " + why);
    }
    co_return false;
  }
  if (halted_ || !co_await downloads_.Acquire(&halt_signal_)) co_return false;
  struct SlotRelease {
    util::AsyncSemaphore& slots;
    ~SlotRelease() { slots.Release(); }
  } slot{downloads_};

  const std::string base_name =
      index == 0 ? run.item.id : run.item.id + "-" + std::to_string(index);
  std::string image_problem;  // the last bad body, if the attempts end on one
  for (unsigned attempt = 0; attempt < config_.retry.max_attempts; ++attempt) {
    if (attempt > 0 && co_await HaltableSleep(ToDuration(backoff_.Delay(attempt - 1))))
      co_return false;
    download::ImageFile file(journal_.dir());
    if (!file.ok()) {
      Halt(StopReason::kDisk, file.error());
      co_return false;
    }
    auto result = co_await client_.Download(*endpoint, file, config_.download.max_bytes,
                                            ToDuration(config_.timeouts.download_s));
    if (auto* network = std::get_if<http::NetworkError>(&result)) {
      if (halted_) co_return false;
      if (network->permanent) {
        Halt(StopReason::kMisconfigured, network->what);
        co_return false;
      }
      if (!file.ok()) {
        Halt(StopReason::kDisk, file.error());
        co_return false;
      }
      LogWarning("item " + run.item.id + ": download failed (" + network->what + "), retrying");
      continue;
    }
    const auto& outcome = std::get<http::DownloadOutcome>(result);
    if (outcome.status != 200) {
      if (outcome.status >= 500 || outcome.status == 429) continue;
      RecordGaveUp(run, "download_failed",
                   "image URL answered HTTP " + std::to_string(outcome.status));
      co_await Commit();
      co_return false;
    }
    std::string file_name, error;
    switch (file.Commit(base_name, file_name, error)) {
      case download::ImageFile::Committed::kOk:
        break;
      case download::ImageFile::Committed::kNotAnImage:
      case download::ImageFile::Committed::kIncomplete:
        // Possibly a body cut short on the way: fetched again, and given up on only when the
        // server keeps sending it so.
        image_problem = error;
        LogWarning("item " + run.item.id + ": " + error + "; downloading again");
        continue;
      case download::ImageFile::Committed::kIo:
        Halt(StopReason::kDisk, error);
        co_return false;
    }
    consecutive_refusals_ = 0;
    proto::Record record;
    auto* downloaded = record.mutable_downloaded();
    downloaded->set_item_id(run.item.id);
    downloaded->set_index(static_cast<unsigned>(index));
    downloaded->set_file_name(file_name);
    downloaded->set_sha256(file.sha256());
    downloaded->set_bytes(file.bytes());
    Append(std::move(record));
    co_return co_await Commit();
  }
  if (!image_problem.empty()) {
    RecordGaveUp(run, "bad_image", image_problem + " (" +
                                      std::to_string(config_.retry.max_attempts) + " downloads)");
    co_await Commit();
    co_return false;
  }
  LogWarning("item " + run.item.id +
             ": download kept failing; it will be retried by the next run");
  co_return false;
}

// ---------------------------------------------------------------------------------------------
// Start, progress, end

net::awaitable<void> Engine::LogBalance() {
  auto result = co_await client_.Fetch(
      ApiRequest(http::Request::Method::kGet, "/v1/credits", ""),
      ToDuration(config_.timeouts.request_s), kApiBodyLimit,
      [this]() { return limiter_.Acquire(&halt_signal_); }, &halt_signal_);
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
// Webhooks

TaskWatcherOptions Engine::WatcherOptions(const config::Config& config) {
  TaskWatcherOptions options;
  options.first_poll = Seconds(config.polling.first_poll_s);
  options.max_interval = Seconds(config.polling.max_interval_s);
  options.task_deadline = Seconds(config.polling.task_deadline_s);
  options.request_timeout = Seconds(config.timeouts.request_s);
  options.retry_base = Seconds(config.retry.base_delay_s);
  options.retry_max = Seconds(config.retry.max_delay_s);
  options.max_failed_polls = config.retry.max_attempts;
  if (!config.callbacks.public_url.empty()) {
    options.callback_safety_poll = Seconds(config.callbacks.safety_poll_s);
  }
  return options;
}

std::string Engine::CallbackUrl(const std::string& token) const {
  std::string base = config_.callbacks.public_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/" + token;
}

// The receiver takes the token from the last segment of the path, whatever comes before it: a
// reverse proxy may keep or strip its own prefix.
http::Reply Engine::OnReceiverRequest(const http::IncomingRequest& request) {
  if (request.method != "POST") return {405, "POST only\n"};
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  const std::string_view token = path.substr(path.rfind('/') + 1);
  if (token.size() != 32 || token.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return {404, "unknown callback\n"};
  }
  const int status = watcher_.OnCallback(token, request.body);
  switch (status) {
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

std::string Engine::ProgressLine() const {
  // The journal counts the manifest's items it knows (departed items apart); the rest are
  // queued. Counters, not a walk over a million items, every second.
  const journal::Totals& totals = journal_.state().totals();
  const std::uint64_t done = totals.done, failed = totals.gave_up;
  const std::uint64_t in_flight = totals.intent + totals.submitted + totals.completed;
  const std::uint64_t known = done + failed + in_flight;
  const std::uint64_t queued = store_.size() > known ? store_.size() - known : 0;
  const double elapsed = std::chrono::duration<double>(Clock::now() - started_).count();
  const double rate = elapsed > 0 ? submissions_this_run_ / elapsed : 0;
  const double done_rate = elapsed > 0 ? done_this_run_ / elapsed : 0;
  std::ostringstream line;
  line.precision(2);
  line << std::fixed << "progress: " << done << " done, " << failed << " failed, " << in_flight
       << " in flight, " << queued << " queued; " << rate << " submits/s; credits "
       << totals.credits_spent << " spent + " << totals.credits_reserved + ledger_.held()
       << " reserved";
  if (config_.limits.budget_credits) line << " of " << *config_.limits.budget_credits;
  if (done_rate > 0 && queued + in_flight > 0) {
    line << "; ETA " << static_cast<long>((queued + in_flight) / done_rate) << " s";
  }
  return line.str();
}

net::awaitable<void> Engine::Progress() {
  const bool terminal = util::StderrIsTerminal();
  const auto period =
      terminal ? std::chrono::seconds(1) : ToDuration(config_.log.progress_interval_s);
  while (!co_await progress_stop_.WaitFor(period)) {
    util::NotifyService("STATUS=" + ProgressLine());
    // A long run's journal is compacted as it goes (Compact is synchronous: no record can slip
    // in between the snapshot and the switch to the new file).
    std::string error;
    if (!journal_.failed() && !journal_.MaybeCompact(error) && !error.empty()) {
      LogWarning("journal compaction failed: " + error);
    }
    if (terminal) {
      const std::string line = "\r\033[K" + ProgressLine();
      std::fwrite(line.data(), 1, line.size(), stderr);
      std::fflush(stderr);
      util::SetProgressLineActive(true);
    } else {
      LogInfo(ProgressLine());
    }
  }
  if (terminal) {
    std::fputs("\r\033[K", stderr);
    util::SetProgressLineActive(false);
  }
}

void Engine::WatchSignals(net::signal_set& signals) {
  signals.async_wait([this, &signals](boost::system::error_code error, int signal) {
    if (error) return;  // cancelled at the end of the run
    if (signal == SIGHUP) {
      LogInfo("SIGHUP received: ignored by run (it goes on; SIGTERM or SIGINT stop it)");
      WatchSignals(signals);
      return;
    }
    Halt(StopReason::kSignal, signal == SIGINT ? "SIGINT" : "SIGTERM");
  });
}

int Engine::ExitCode() const {
  if (stop_reason_ == StopReason::kAuth) return 4;
  const bool misconfigured = stop_reason_ == StopReason::kMisconfigured ||
                             stop_reason_ == StopReason::kDownloadPolicy || policy_blocked_ > 0;
  const journal::Totals& totals = journal_.state().totals();
  const std::uint64_t finished = totals.done + totals.gave_up;
  if (store_.size() > finished) return misconfigured ? 5 : 3;
  return totals.gave_up > 0 ? 1 : 0;
}

net::awaitable<int> Engine::Run() {
  std::string error;
  // What the plan implies, recorded before anything is sent.
  auto load_id = [&](std::uint32_t index) -> std::optional<std::string> {
    std::optional<manifest::Item> item = store_.Load(index, error);
    if (!item) LogError(error);
    return item ? std::optional<std::string>(item->id) : std::nullopt;
  };
  for (const std::string& id : plan_.returned) {
    proto::Record record;
    record.mutable_item_returned()->set_item_id(id);
    Append(std::move(record));
  }
  for (std::uint32_t index : plan_.abandon) {
    // Interrupted between recording the intent and recording its outcome: the POST may have
    // gone out. Counted as a possible duplicate; submitted again.
    auto id = load_id(index);
    if (!id) co_return 5;
    proto::Record record;
    record.mutable_intent_abandoned()->set_item_id(*id);
    record.mutable_intent_abandoned()->set_reason(
        "the previous run stopped before the submit's outcome was recorded");
    Append(std::move(record));
  }
  for (std::uint32_t index : plan_.refetch) {
    // Missing or changed on disk: downloaded again from its permanent URL, not paid again.
    auto id = load_id(index);
    if (!id) co_return 5;
    const proto::ItemSnapshot* snapshot = journal_.state().Find(*id);
    proto::Record record;
    auto* completed = record.mutable_completed();
    completed->set_item_id(*id);
    completed->set_task_id(snapshot->task_id());
    *completed->mutable_urls() = snapshot->urls();
    Append(std::move(record));
  }
  if (!plan_.refetch.empty()) {
    LogWarning(std::to_string(plan_.refetch.size()) +
               " finished images are missing or changed on disk; downloading them again");
  }
  // Items of earlier runs that left the manifest are left alone, and marked so that `status`
  // counts them apart.
  for (const std::string& id : plan_.departed) {
    proto::Record gone;
    gone.mutable_item_departed()->set_item_id(id);
    Append(std::move(gone));
  }
  if (!plan_.departed.empty()) {
    LogInfo(std::to_string(plan_.departed.size()) +
            " items of earlier runs are no longer in the manifest; they are left alone");
  }
  {
    proto::Record record;
    auto* started = record.mutable_run_started();
    started->set_manifest_path(config_.manifest);
    started->set_manifest_items(store_.size());
    started->set_has_budget(config_.limits.budget_credits.has_value());
    started->set_budget_credits(config_.limits.budget_credits.value_or(0));
    started->set_version(kVersion);
    started->set_retry_failed(flags_.retry_failed);
    Append(std::move(record));
  }
  if (!co_await Commit()) co_return 3;
  if (!outputs_.Rewrite(journal_.state(), error)) {
    LogError("cannot write the output files: " + error);
    co_return 3;
  }

  const journal::Totals& totals = journal_.state().totals();
  LogInfo("run: " + std::to_string(store_.size()) + " items; " +
          std::to_string(plan_.fresh.size()) + " to submit, " +
          std::to_string(plan_.resume.size() + plan_.recover.size()) + " to resume; " +
          std::to_string(totals.credits_spent) + " credits spent so far" +
          (config_.limits.budget_credits
               ? " of a budget of " + std::to_string(*config_.limits.budget_credits)
               : std::string()));

  if (callbacks()) {
    receiver_.emplace(executor_,
                      [this](const http::IncomingRequest& request) {
                        return OnReceiverRequest(request);
                      },
                      http::ServerOptions{});
    if (!receiver_->Listen(config_.callbacks.listen, error)) {
      LogError("webhook receiver: " + error + " (callbacks.listen, --callback-listen)");
      co_return 5;
    }
    LogInfo("webhook receiver listening on " + config_.callbacks.listen + "; callbacks go to " +
            config_.callbacks.public_url + "/<token>");
    background_.Spawn(receiver_->Run(receiver_stop_));
  }

  net::signal_set signals(executor_, SIGINT, SIGTERM, SIGHUP);
  WatchSignals(signals);

  co_await LogBalance();
  util::NotifyService("READY=1\nSTATUS=" + ProgressLine());
  background_.Spawn(Progress());
  if (!halted_) group_.Spawn(SubmitLoop());
  co_await group_.Join();
  progress_stop_.Notify();
  receiver_stop_.Trigger();
  co_await background_.Join();
  signals.cancel();
  grace_timer_.cancel();

  util::NotifyService("STOPPING=1");
  co_await Commit();
  if (!journal_.failed()) {
    if (!journal_.MaybeCompact(error)) {
      if (!error.empty()) LogWarning("journal compaction skipped: " + error);
    }
  }
  if (!outputs_.Rewrite(journal_.state(), error))
    LogError("cannot write the output files: " + error);

  const int exit_code = ExitCode();
  LogInfo(ProgressLine());
  LogInfo("run ended (exit " + std::to_string(exit_code) + ")" +
          (stop_reason_ != StopReason::kNone ? std::string(": ") + Describe(stop_reason_) : "") +
          "; possible duplicate submissions so far: " +
          std::to_string(journal_.state().totals().possible_duplicates));
  co_return exit_code;
}

}  // namespace

int RunEngine(const config::Config& config, const std::string& api_key,
              const manifest::ItemStore& store, JobPlan plan, journal::Journal& journal,
              EngineFlags flags) {
  net::io_context io(1);
  Engine engine(io, config, api_key, store, std::move(plan), journal, flags);
  int exit_code = 3;
  net::co_spawn(io, engine.Run(), [&](std::exception_ptr failure, int code) {
    if (failure) std::rethrow_exception(failure);  // a bug: main reports it (exit 70)
    exit_code = code;
  });
  io.run();
  return exit_code;
}

}  // namespace nanobatch::engine
