#pragma once
// Submitter: an item's submission, from held credits to a recorded task id, and nothing else.
// The intent is recorded (durably) right before the POST leaves, with its rate token and its
// connection slot already held, so a POST is never sent unrecorded and never after a stop. Every
// answer has its deliberate reaction (api::ReactionTo): retry with backoff, slow down, pause for
// the spend limit, stop submitting, halt, or fail the item. A POST whose answer is lost or
// unusable may have created a task: with webhooks its callback names it (no second payment);
// without, the intent is abandoned (its credits stay spent) and the item is submitted again.
//
// Example:
//   Submitter submitter(service, job_stop, recorder);
//   switch (co_await submitter.Submit(run)) { case SubmitOutcome::kSubmitted: ... }

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>

#include "runner/config/config.h"
#include "runner/engine/item_run.h"
#include "runner/engine/recorder.h"
#include "runner/engine/service.h"
#include "runner/engine/stop_reason.h"

namespace nanobatch::engine {

class Submitter {
 public:
  // `stop`: the job's (a cancelled job sends nothing more; a POST already sent gets its answer).
  Submitter(Service& service, JobStop& stop, Recorder& recorder);

  // Submits `run`, whose credits the caller holds in the ledger.
  boost::asio::awaitable<SubmitOutcome> Submit(const ItemRun& run);
  // An intent an earlier run left open (it stopped between recording the intent and its
  // outcome): its callback may still name the task. kSubmitted when it did; kFailedItem when it
  // was abandoned (a possible duplicate) and the item is queued again; kStopped when stopping.
  boost::asio::awaitable<SubmitOutcome> Recover(const ItemRun& run);

  // Holds the credits of `run` in the ledger (budget checked); Release gives them back.
  bool Hold(const ItemRun& run);
  void Release(const ItemRun& run);

  std::uint64_t sent() const { return sent_; }  // POSTs attempted this run

 private:
  // The API answered a submit (a task id or an API error): the gate opens to every submit.
  void AnswerCame();

  Service& service_;
  JobStop& stop_;
  Recorder& recorder_;
  const config::Config& config_;
  std::uint64_t sent_ = 0;
  // Submits that could not be sent (the API unreachable) are said at most every 10 s, with how
  // many there were: with 64 in flight, a line each would scroll 64 lines a retry round.
  std::chrono::steady_clock::time_point not_sent_said_{};
  std::uint64_t not_sent_unsaid_ = 0;
  // Items whose submits the API refused as invalid (400), in a row: a streak stops this job.
  RefusalStreak refused_requests_;
  // Submits answered 2xx without a usable task id and abandoned (no callback named the task), in
  // a row: each possibly charged, and a streak stops submitting. Longer than the refusals': an
  // API that garbles an answer now and then is survived by resubmitting.
  static constexpr int kUnreadableAnswersBeforeStop = 5;
  RefusalStreak unreadable_answers_{kUnreadableAnswersBeforeStop};
};

}  // namespace nanobatch::engine
