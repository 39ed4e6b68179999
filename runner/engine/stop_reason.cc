#include "runner/engine/stop_reason.h"

namespace nanobatch::engine {

const char* Describe(StopReason reason) {
  switch (reason) {
    case StopReason::kNone:
      return "none";
    case StopReason::kBudget:
      return "the credit budget is reached";
    case StopReason::kCredits:
      return "the account has insufficient credits (402)";
    case StopReason::kSpendLimit:
      return "the key's spend limit stayed reached (429 spend_limit_exceeded)";
    case StopReason::kServerDown:
      return "the API kept failing (5xx or network errors)";
    case StopReason::kMisconfigured:
      return "a configuration problem that no retry can cure; fix it and run the same command "
             "again";
    case StopReason::kDownloadPolicy:
      return "image downloads keep being refused, by the download policy or by the image host; "
             "the paid images stay recorded: the next run downloads those the policy held back "
             "once their host is allowed, and `run --retry-failed` (serve: POST "
             "/jobs?name=NAME&retry_failed=1) downloads again those in failed.jsonl, without "
             "paying again";
    case StopReason::kRequestRefused:
      return "the API refuses the submits as invalid (400 invalid_request), item after item: "
             "the request that the config (api.model, defaults) and the manifest make is not one "
             "it accepts. Nothing was charged for them; fix the request, then `run "
             "--retry-failed` (serve: POST /jobs?name=NAME&retry_failed=1) submits the items "
             "refused so far again";
    case StopReason::kTasksLost:
      return "the API says that tasks it accepted do not exist (404 task_not_found), task after "
             "task: each would be paid for again and perhaps lost again. The items stay queued; "
             "run the same command again once the API keeps its tasks (their credits stay "
             "counted as spent: whether it charged them is unknown)";
    case StopReason::kTasksFailing:
      return "the API's tasks keep failing, task after task, none completing: the model behind it "
             "looks down. Failed tasks are refunded; the items stay queued: run the same command "
             "again later";
    case StopReason::kTasksStuck:
      return "the API's tasks do not finish, task after task past polling.task_deadline_s, none "
             "completing: the model behind it looks stuck. Those tasks stay submitted (the next "
             "run polls them, never pays for them again); the other items stay queued: run the "
             "same command again later";
    case StopReason::kUnusableOutput:
      return "tasks complete, and are charged, without an image URL nanobatch can use (none in "
             "output.urls, too many, or malformed), task after task: every further submission "
             "would pay for the same. The API's answers may have changed shape; the items so far "
             "are in failed.jsonl";
    case StopReason::kImagesUndelivered:
      return "the image host kept failing (5xx or network errors), no image coming through: the "
             "tasks paid for stay recorded, and the next run downloads their images without "
             "paying again";
    case StopReason::kSignal:
      return "a signal asked to stop";
    case StopReason::kAuth:
      return "the API refused the credentials or the caller (401/403)";
    case StopReason::kDisk:
      return "the output directory cannot be written (free disk space or fix its permissions, "
             "then run the same command again)";
  }
  return "unknown";
}

std::string MisconfiguredMessage(const api::ApiError& error, std::string_view request) {
  const std::string what = error.code + ": " + error.message;
  if (error.kind == api::ErrorKind::kModelNotFound) {
    return what + "; every item would fail alike: check api.model";
  }
  return std::string(request) + " was answered HTTP " + std::to_string(error.http_status) +
         " with no API error in the body; is --base-url (api.base_url) the API? (" + what + ")";
}

}  // namespace nanobatch::engine
