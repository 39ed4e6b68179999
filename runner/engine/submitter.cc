#include "runner/engine/submitter.h"

#include <algorithm>
#include <boost/asio/use_awaitable.hpp>
#include <string>

#include "runner/api/codec.h"
#include "runner/util/log.h"
#include "runner/util/random_token.h"

namespace nanobatch::engine {

namespace net = boost::asio;

using util::LogInfo;
using util::LogWarning;

Submitter::Submitter(Service& service, JobStop& stop, Recorder& recorder)
    : service_(service), stop_(stop), recorder_(recorder), config_(service.config()) {}

bool Submitter::Hold(const ItemRun& run) {
  return service_.ledger().TryHold(run.price, service_.DurableCredits()) == Ledger::Hold::kHeld;
}

void Submitter::Release(const ItemRun& run) {
  service_.ledger().Release(run.price);
  service_.NotifyBudgetChanged();
}

net::awaitable<SubmitOutcome> Submitter::Submit(const ItemRun& run) {
  bool intent_open = false;  // recorded and not yet resolved
  // Each intent has its own callback token (with callbacks on), so that a callback names the
  // submission that created its task; the body carries the token's URL.
  std::string token;
  std::string body = api::EncodeSubmit(SubmitFields(run), config_.api.model);
  auto close_intent = [&]() {
    intent_open = false;
    if (!token.empty()) service_.watcher().Forget(token);
    token.clear();
  };
  // Leaves the item queued: drops the reservation, or records that the open intent was not sent.
  auto give_back = [&](const std::string& code, const std::string& message) {
    if (intent_open) {
      recorder_.RecordNotSent(run, code, message);
      close_intent();
    } else {
      Release(run);
    }
  };
  // The one window the API leaves open (no idempotency key): the POST may have created, and
  // charged, a task whose id we cannot know (no answer, or an answer without a usable id). The
  // intent is abandoned: its credits stay counted as spent and a resubmission is a possible
  // duplicate. Returns whether to submit again (credits reserved anew within the budget).
  unsigned failures = 0;
  unsigned refusals = 0;  // of those, the API's own retryable refusals (500, 503)
  std::uint64_t accepted_before_refusals = 0;  // the service's accepted submits at the first
  std::optional<std::string> revealed;         // the task id a callback told, for a lost answer
  SubmitGate& gate = service_.submit_gate();
  SubmitGate::Pass pass(gate);  // this attempt's way through the gate: held until the next
  // `http_status`: the answer's (0: none came).
  auto outcome_unknown = [&](const std::string& why, int http_status) -> net::awaitable<bool> {
    ++failures;
    if (!token.empty() && !service_.halted()) {
      // With callbacks, the task (if the POST created one) names itself when it finishes: wait
      // for that rather than pay again.
      LogWarning(ItemLabel(recorder_.log_prefix(), run) + ": submit outcome unknown (" + why +
                 "); waiting up to callbacks.reveal_wait_s for its callback");
      revealed = co_await service_.watcher().AwaitReveal(
          token, ToDuration(Seconds(config_.callbacks.reveal_wait_s)));
      if (revealed) co_return false;
    }
    recorder_.RecordAbandoned(run.id, why);
    close_intent();
    LogWarning(ItemLabel(recorder_.log_prefix(), run) + ": submit outcome unknown (" + why +
               "); its credits stay counted and a resubmission counts as a possible duplicate");
    // Every submit out now may meet the same: the others wait while this one's item, or the
    // next, tries alone. Probes lost retry.max_attempts times in a row: the API is not answering.
    const bool was_losing = gate.losing();
    const int probes_lost = gate.Lost(pass);
    if (!was_losing) {
      LogWarning("submit answers are being lost (" + why +
                 "): one submit at a time until one is answered, since each may be charged");
    }
    if (probes_lost >= static_cast<int>(config_.retry.max_attempts)) {
      service_.StopSubmitting(
          StopReason::kServerDown,
          std::to_string(probes_lost) +
              " submits in a row, sent one at a time, got no usable answer: " + why);
    }
    // A 2xx that names no task, for several submits in a row, is no lost answer but an API (or
    // something posing as one) whose answers nanobatch cannot read, each perhaps charged:
    // submitting stops before this one is paid for again. (A lost answer, by contrast, is a
    // network's blip: retried within retry.max_attempts.)
    if (http_status >= 200 && http_status < 300 && unreadable_answers_.Refused()) {
      service_.StopSubmitting(
          StopReason::kMisconfigured,
          std::to_string(unreadable_answers_.length()) + " submits in a row answered HTTP " +
              std::to_string(http_status) + " without a task id (" + why +
              "): is --base-url (api.base_url) the API? Each may have been charged: their "
              "credits stay counted, and are reported as possible duplicates");
    }
    const bool exhausted = failures >= config_.retry.max_attempts;
    if (stop_.SubmitsCancelled() || exhausted || !Hold(run)) {
      co_await recorder_.Commit();
      if (exhausted) service_.StopSubmitting(StopReason::kServerDown, why);
      co_return false;
    }
    if (!co_await recorder_.Commit()) {
      Release(run);
      co_return false;
    }
    co_return true;
  };
  // The task is known (from the answer, or revealed by its callback): recorded, durably.
  auto submitted = [&](const std::string& task_id,
                       bool by_callback) -> net::awaitable<SubmitOutcome> {
    if (!token.empty()) service_.watcher().Bind(token, task_id);
    AnswerCame();  // a callback that names the task answers for the lost answer
    service_.SubmitAccepted();
    refused_requests_.Accepted();
    unreadable_answers_.Accepted();
    recorder_.RecordSubmitted(run, task_id, by_callback);
    intent_open = false;
    if (by_callback) {
      LogInfo(ItemLabel(recorder_.log_prefix(), run) + ": its callback named task " + task_id +
              "; not submitted again");
    }
    if (!co_await recorder_.Commit()) co_return SubmitOutcome::kStopped;
    co_return SubmitOutcome::kSubmitted;
  };
  // A probe (see SubmitGate) waits as one item would after as many failures as the probes
  // before it had: the gate's probes retry on one schedule, whichever items they carry.
  auto backoff = [&]() {
    const unsigned after =
        std::max(failures, pass.probe() ? static_cast<unsigned>(gate.probes_failed()) : 0U);
    return ToDuration(service_.retry_budget().TryWithdraw() ? service_.backoff().Delay(after - 1)
                                                            : Seconds(config_.retry.max_delay_s));
  };
  while (true) {
    if (stop_.SubmitsCancelled()) {
      give_back("not_sent", "the run stopped submitting before this item was sent");
      co_await recorder_.Commit();
      co_return SubmitOutcome::kStopped;
    }
    if (Clock::now() < service_.spend_pause_until()) {
      // Waits out the pause unless submits are cancelled (a budget stop lets this one go).
      co_await stop_.SubmitSleep(service_.spend_pause_until() - Clock::now());
      continue;
    }
    if (!intent_open && token.empty() && service_.callbacks()) {
      // A new intent, a new token: its URL goes in the body the intent records.
      token = util::RandomToken();
      body = api::EncodeSubmit(SubmitFields(run), config_.api.model, service_.CallbackUrl(token));
    }
    // Lease a connection, take a rate token, record the intent (durably), send. A POST is never
    // sent unrecorded, and never after submitting stopped: every wait on the way observes the
    // submit signal (the job's, which a cancel of the job triggers too), opening the connection
    // inside Send included (the service's there: a cancelled job's POST, recorded and on its way,
    // gets its answer rather than becoming a possible duplicate). Holding the connection first
    // means POSTs leave at the token rate even when they queued for a connection, and an intent is
    // open only while its POST is about to leave. Prompts are the user's data: logged at debug
    // level only, and capped.
    const std::string& prompt = SubmitFields(run).prompt;
    util::LogDebug(ItemLabel(recorder_.log_prefix(), run) + ": submitting (" + run.resolution +
                   "): " + prompt.substr(0, 200) + (prompt.size() > 200 ? "..." : ""));
    // While submit answers are being lost, one submit at a time (SubmitGate); it waits here,
    // holding nothing else.
    if (!co_await gate.Enter(pass, &stop_.submit_signal())) continue;
    http::Request request =
        service_.ApiRequest(http::Request::Method::kPost, "/v1/images/generations", body);
    http::Client::Slot connection =
        co_await service_.client().AcquireSlot(request.endpoint, &stop_.submit_signal());
    if (!connection ||
        !co_await service_.limiter().Acquire(&stop_.submit_signal(), /*pace_now=*/false) ||
        stop_.SubmitsCancelled()) {
      continue;  // stopping: the loop's top gives the credits back or records "not sent"
    }
    if (!intent_open) {
      if (!token.empty()) service_.watcher().Expect(token);
      recorder_.AppendIntent(run, token);
      intent_open = true;
    }
    if (!co_await recorder_.Commit() || stop_.SubmitsCancelled()) continue;
    // Intents of one commit group leave together: spaced out again if they would exceed the
    // rate in some second.
    if (!co_await service_.limiter().Pace(&stop_.submit_signal())) continue;
    service_.retry_budget().OnRequest();
    ++sent_;
    auto result = co_await service_.client().Send(connection, std::move(request),
                                                  ToDuration(config_.timeouts.request_s),
                                                  api::kApiBodyLimit, &service_.submit_signal());

    if (auto* network = std::get_if<http::NetworkError>(&result)) {
      if (network->permanent) {
        give_back("not_sent", network->what);
        co_await recorder_.Commit();
        service_.Halt(StopReason::kMisconfigured, network->what);
        co_return SubmitOutcome::kStopped;
      }
      // Not sent because the run is stopping (a stop signal, the journal failed): the loop's
      // top records that.
      if (!network->maybe_delivered && (stop_.SubmitsCancelled() || recorder_.journal().failed()))
        continue;
      if (network->maybe_delivered) {
        if (!co_await outcome_unknown("no response to the submit: " + network->what, 0)) {
          // An if, not ?: (tools/coroutine_lint.py: GCC 12 ran the await of both branches).
          if (revealed) co_return co_await submitted(*revealed, true);
          co_return SubmitOutcome::kStopped;
        }
      } else {
        // Not sent (the API unreachable: refused, unresolved, a failed handshake). Counted by the
        // gate's probes, not by the item: a connection that fails is never the item's doing, and
        // while other submits get through this one was merely unlucky.
        ++failures;
        if (const int probes_failed = gate.NotSent(pass);
            probes_failed >= static_cast<int>(config_.retry.max_attempts)) {
          give_back("network_error", network->what);
          co_await recorder_.Commit();
          service_.StopSubmitting(
              StopReason::kServerDown,
              std::to_string(probes_failed) +
                  " submits in a row, tried one at a time, could not be sent: " + network->what);
          co_return SubmitOutcome::kStopped;
        }
        // Said, so that a run whose submits never leave does not look merely slow until it stops.
        ++not_sent_unsaid_;
        const auto now = std::chrono::steady_clock::now();
        if (now - not_sent_said_ >= std::chrono::seconds(10)) {
          util::LogWarning("submit not sent (" + network->what + ")" +
                           (not_sent_unsaid_ > 1 ? "; " + std::to_string(not_sent_unsaid_) +
                                                       " such since the last line that said so"
                                                 : std::string()) +
                           "; tried again one at a time, up to retry.max_attempts (" +
                           std::to_string(config_.retry.max_attempts) + ") in a row");
          not_sent_said_ = now;
          not_sent_unsaid_ = 0;
        }
      }
      co_await stop_.SubmitSleep(backoff());
      continue;
    }

    const http::Response& response = std::get<http::Response>(result);
    api::SubmitResult decoded =
        api::DecodeSubmitResponse(response.status, response.body, response.retry_after);
    if (auto* task_id = std::get_if<std::string>(&decoded)) {
      service_.SpendLimitLifted();
      co_return co_await submitted(*task_id, false);
    }
    if (auto* charged = std::get_if<api::PossiblyCharged>(&decoded)) {
      if (!co_await outcome_unknown(charged->reason, charged->http_status)) {
        if (revealed) co_return co_await submitted(*revealed, true);
        co_return SubmitOutcome::kStopped;
      }
      co_await stop_.SubmitSleep(backoff());
      continue;
    }

    const api::ApiError& error = std::get<api::ApiError>(decoded);
    const std::string what = error.code + ": " + error.message;
    AnswerCame();  // an error, but the API's own: it answers
    // The API answered with an error, so no task was created: the intent is resolved now (a
    // crash while waiting to retry must not count it as a possible duplicate). The credits stay
    // reserved in memory for the next attempt, or are given back below.
    recorder_.RecordNotSent(run, error.code, error.message);
    close_intent();
    service_.ledger().HoldAgain(run.price);
    switch (api::ReactionTo(error)) {
      case api::Reaction::kSlowDown:
        service_.limiter().OnRateLimited(error.retry_after_s);
        continue;  // not the item's fault and not a failure: just wait for the limiter
      case api::Reaction::kRetry: {
        if (refusals++ == 0) accepted_before_refusals = service_.submits_accepted();
        if (++failures >= config_.retry.max_attempts) {
          Release(run);
          co_await recorder_.Commit();
          // Refused retry.max_attempts times: an outage when no other submit got through since
          // this item's first refusal (stop them all); this item's own refusal when others did
          // (503 upstream_error is also "sensitive content" or "unsupported parameters"): it
          // alone is left queued for the next run, and the rest of the run goes on.
          if (service_.submits_accepted() == accepted_before_refusals) {
            service_.StopSubmitting(StopReason::kServerDown, what);
          } else {
            LogWarning(ItemLabel(recorder_.log_prefix(), run) + ": the API refused it " +
                       std::to_string(refusals) + " times (" + what +
                       ") while accepting other submits: left queued for the next run (its "
                       "prompt or parameters may be what the API refuses; nothing was charged)");
          }
          co_return SubmitOutcome::kStopped;
        }
        co_await stop_.SubmitSleep(backoff());
        continue;
      }
      case api::Reaction::kPauseSubmits:
        if (std::string why; !service_.PauseForSpendLimit(error, why)) {
          Release(run);
          co_await recorder_.Commit();
          service_.StopSubmitting(StopReason::kSpendLimit, what + "; " + why);
          co_return SubmitOutcome::kStopped;
        }
        continue;  // the loop's top sleeps through the pause
      case api::Reaction::kStopSubmitting:
        Release(run);
        co_await recorder_.Commit();
        service_.StopSubmitting(StopReason::kCredits, what);
        co_return SubmitOutcome::kStopped;
      case api::Reaction::kStopRun:
        Release(run);
        co_await recorder_.Commit();
        service_.Halt(StopReason::kAuth, what);
        co_return SubmitOutcome::kStopped;
      case api::Reaction::kStopMisconfigured:
        Release(run);
        co_await recorder_.Commit();
        service_.Halt(StopReason::kMisconfigured, MisconfiguredMessage(error, "the submit"));
        co_return SubmitOutcome::kStopped;
      case api::Reaction::kFailItem:
      case api::Reaction::kResubmit:
        Release(run);
        recorder_.RecordGaveUp(run, error.code, error.message);
        // One item refused is the item's; several in a row are the request every item makes
        // (its model, its defaults, the manifest's fields): the rest would be refused too.
        if (error.kind == api::ErrorKind::kInvalidRequest && refused_requests_.Refused()) {
          stop_.Stop(StopReason::kRequestRefused,
                     std::to_string(refused_requests_.length()) + " items in a row: " + what);
        }
        co_await recorder_.Commit();
        co_return SubmitOutcome::kFailedItem;
    }
  }
}

void Submitter::AnswerCame() {
  if (service_.submit_gate().losing()) {
    LogInfo("submits are answered again: no longer one at a time");
  }
  service_.submit_gate().Answered();
}

// An intent an earlier run left open (it stopped between recording the intent and its outcome):
// the POST may have created a task. With its callback token, the task names itself when it
// finishes; only when no callback comes in time is the intent abandoned (a possible duplicate)
// and the item submitted again.
net::awaitable<SubmitOutcome> Submitter::Recover(const ItemRun& run) {
  const std::string token = recorder_.Snapshot(run)->callback_token();
  service_.watcher().Expect(token);
  LogInfo(ItemLabel(recorder_.log_prefix(), run) +
          ": its last submit's outcome was not recorded; waiting up to "
          "callbacks.reveal_wait_s for its callback");
  auto task_id = co_await service_.watcher().AwaitReveal(
      token, ToDuration(Seconds(config_.callbacks.reveal_wait_s)));
  if (task_id) {
    recorder_.RecordSubmitted(run, *task_id, true);
    LogInfo(ItemLabel(recorder_.log_prefix(), run) + ": its callback named task " + *task_id +
            "; not submitted again");
    co_return co_await recorder_.Commit() ? SubmitOutcome::kSubmitted : SubmitOutcome::kStopped;
  }
  service_.watcher().Forget(token);
  if (service_.halted()) co_return SubmitOutcome::kStopped;  // still open: the next run waits again
  recorder_.RecordAbandoned(
      run.id,
      "the previous run stopped before the submit's outcome was recorded, and no callback "
      "named its task within callbacks.reveal_wait_s");
  co_await recorder_.Commit();
  co_return SubmitOutcome::kFailedItem;  // queued again: the caller decides whether to submit
}

}  // namespace nanobatch::engine
