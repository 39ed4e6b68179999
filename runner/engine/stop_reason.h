#pragma once
// Why a run (or a job) stops early, and the sentence that tells the user what to change. One
// enum for every part of the engine that can decide to stop (the submitter, the task watcher,
// downloads, signals), so the exit status follows from it alone.
//
// Example:
//   halt(StopReason::kServerDown, "polling task t1 failed 5 times in a row");
//   LogWarning(std::string("stopping: ") + Describe(reason));

#include <string>
#include <string_view>

#include "runner/api/codec.h"

namespace nanobatch::engine {

enum class StopReason {
  kNone,
  kBudget,
  kCredits,
  kSpendLimit,
  kServerDown,
  kMisconfigured,   // exit 5: TLS verification, a base URL that is not the API, model_not_found
  kDownloadPolicy,  // exit 5: image downloads refused (policy, host), item after item
  kRequestRefused,  // exit 5: submits refused as invalid (400 invalid_request), item after item
  kTasksLost,       // exit 3: the API says tasks it accepted do not exist, task after task
  kTasksFailing,    // exit 3: tasks fail (refunded), task after task, none completing
  kTasksStuck,      // exit 3: tasks pass polling.task_deadline_s, task after task, none completing
  kUnusableOutput,  // exit 5: tasks complete (charged) without a usable image URL, task after task
  kImagesUndelivered,  // exit 3: image downloads fail (5xx, network), none succeeding
  kSignal,
  kAuth,
  kDisk
};

const char* Describe(StopReason reason);

// Refusals of one kind, item after item: one refused item is the item's; the same refusal for
// several items in a row (kItemsBeforeStop by default) is the configuration's (or the host's),
// and every further item would meet it too. An item that gets through ends the streak.
//
// Example:
//   if (streak.Refused()) StopSubmitting(...);   // the third in a row
//   streak.Accepted();                           // an image written, a task id known
class RefusalStreak {
 public:
  static constexpr int kItemsBeforeStop = 3;

  explicit RefusalStreak(int items_before_stop = kItemsBeforeStop)
      : items_before_stop_(items_before_stop) {}
  // One more item refused; true once the streak is long enough to stop for.
  bool Refused() { return ++length_ >= items_before_stop_; }
  void Accepted() { length_ = 0; }
  int length() const { return length_; }

 private:
  int items_before_stop_;
  int length_ = 0;
};

// The stop message for an answer that is no API error (api::Reaction::kStopMisconfigured);
// `request` names what was answered ("the submit", "polling").
std::string MisconfiguredMessage(const api::ApiError& error, std::string_view request);

}  // namespace nanobatch::engine
