#pragma once
// The API's wire format (api.md), without I/O: request bodies out, responses in, and the
// classification of every documented error into the reaction the engine must have.
//
// Responses are decoded defensively: any body (HTML from a proxy, truncated JSON, wrong types)
// becomes an ApiError, never an exception or a crash. Everything a server says is hostile until
// checked: every piece of its text passes util::ServerText (key scrubbed, printable, capped), a
// task id is an opaque token of a conservative charset (IsValidTaskId) before it is used, and a
// task's URLs are capped in number and length.
//
// Example:
//   std::string body = EncodeSubmit(item, "nano-banana-2");
//   SubmitResult r = DecodeSubmitResponse(status, response_body, retry_after_header);
//   if (auto* error = std::get_if<ApiError>(&r)) { switch (ReactionTo(*error)) ... }

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "runner/manifest/item.h"

namespace nanobatch::api {

enum class ErrorKind {
  kInvalidRequest,       // 400 invalid_request
  kInvalidApiKey,        // 401 invalid_api_key
  kIpNotAllowed,         // 403 ip_not_allowed
  kInsufficientCredits,  // 402 insufficient_credits
  kModelNotFound,        // 404 model_not_found
  kTaskNotFound,         // 404 task_not_found
  kRateLimited,          // 429 rate_limit_exceeded
  kSpendLimited,         // 429 spend_limit_exceeded
  kInternal,             // 500 internal_error
  kUpstream,             // 503 upstream_error
  kUnexpected,           // another status, or a body that is no documented API error
};

// What the engine does about an error (issue 3's table; api.md's error section).
enum class Reaction {
  kRetry,           // 500/503/unexpected 5xx: back off with jitter and try again (bounded)
  kSlowDown,        // 429 rate_limit_exceeded: halve the rate, honour Retry-After, try again
  kPauseSubmits,    // 429 spend_limit_exceeded: pause submitting; stop if it lasts
  kStopSubmitting,  // 402: no more submissions this run; finish what is in flight; exit 3
  kFailItem,        // 400 invalid_request: this item fails for good
  kStopRun,         // 401/403: stop everything at once; exit 4
  kResubmit,        // 404 task_not_found on a poll: the task is gone; submit the item again
  // 404 model_not_found, or a 4xx that is no documented API error (a wrong base URL, a proxy's
  // page): the configuration is wrong and every item would fail alike; stop at once, exit 5.
  kStopMisconfigured,
};

struct ApiError {
  ErrorKind kind = ErrorKind::kUnexpected;
  int http_status = 0;
  std::string code;     // the API's error.code (scrubbed, capped), or http_<status> when none
  std::string message;  // the API's error.message, through util::ServerText
  std::optional<double> retry_after_s;
};

Reaction ReactionTo(const ApiError& error);
std::string_view KindName(ErrorKind kind);

// "Retry-After: 3" -> 3 seconds (a fraction is accepted, at most a day). HTTP-date forms and
// anything else ("nan", "inf", "1e3", "-1") give nullopt (treated as absent).
std::optional<double> ParseRetryAfter(std::string_view header);

// API responses are small JSON: a body above this is no answer (the client stops reading).
inline constexpr std::size_t kApiBodyLimit = 1 << 20;

// A task's output holds at most this many image URLs, each at most kMaxUrlBytes long (api.md:
// "usually one image"). A task beyond either fails clearly rather than making every later
// resume and `status` pay for thousands of URLs.
inline constexpr std::size_t kMaxUrlsPerTask = 16;
inline constexpr std::size_t kMaxUrlBytes = 4096;
inline constexpr std::size_t kMaxTaskIdBytes = 128;

// A task id is an opaque token: 1 to 128 of [A-Za-z0-9_-] (the API's are UUIDs). Anything else
// (CR/LF, NUL, '/', "..", 10 KB) is a bad response, never put in a request line or a path.
bool IsValidTaskId(std::string_view task_id);

// "/v1/tasks/<id>", the id percent-encoded by Boost.URL (defence in depth: ids are validated).
std::string TaskTarget(std::string_view task_id);

// POST /v1/images/generations body for `item`; `callback_url` only when not empty.
std::string EncodeSubmit(const manifest::Item& item, std::string_view model,
                         std::string_view callback_url = {});

// A submit answer that may have created, and charged, a task whose id cannot be known: a 2xx
// without a usable data.taskId (HTML, invalid JSON, no id, an invalid id), or a gateway's 5xx
// that is no API error (502, 504, Cloudflare's 524, any status but 500 and 503, which the API
// documents: the gateway may have passed the POST on). Its credits stay counted as
// spent and a resubmission is a possible duplicate.
struct PossiblyCharged {
  int http_status = 0;
  std::string reason;  // for the log and the journal, scrubbed
};

using SubmitResult = std::variant<std::string /*task id*/, ApiError, PossiblyCharged>;
SubmitResult DecodeSubmitResponse(int http_status, std::string_view body,
                                  std::string_view retry_after);

struct TaskStatus {
  enum class State { kPending, kProcessing, kCompleted, kFailed };
  // What is wrong with a completed task's output; such a task was charged and said "completed",
  // so it is not paid for again: the item fails with the problem's code.
  enum class OutputProblem {
    kNone,
    kNoImages,       // output.urls is empty or missing: error code "no_images"
    kTooManyImages,  // more than kMaxUrlsPerTask: "too_many_images"
    kMalformed,      // a URL that is not a string, longer than kMaxUrlBytes or holding the key:
                     // "bad_output"
  };
  State state = State::kPending;
  std::vector<std::string> urls;  // when completed without a problem
  OutputProblem output_problem = OutputProblem::kNone;
  std::size_t url_count = 0;  // as the server sent them (for the message)
  std::string error_code;     // when failed (scrubbed)
  std::string error_message;  // (scrubbed)
  // The task's own id as the body states it, when it is a valid task id (else empty): a callback
  // must name the task it is about, and a poll answer naming another task is no answer.
  std::string id;
  // The API's timestamps (whole Unix seconds), when present, integral and plausible.
  std::optional<std::int64_t> created_at;
  std::optional<std::int64_t> completed_at;
};

// How long the API says a completed task took: completed_at - created_at, in whole seconds (an
// unbiased estimate of the true duration when the submit's fraction of a second is random), or
// nullopt when either is missing or the difference is negative or over a day. Never from
// output.metadata.costTime, whose unit is undocumented (api.md's example: 70 for 2 s).
std::optional<std::int64_t> ReportedDurationSeconds(const TaskStatus& task);

// The failure code recorded for an output problem ("no_images", ...), and a sentence for humans.
std::string_view OutputProblemCode(TaskStatus::OutputProblem problem);
std::string DescribeOutputProblem(const TaskStatus& task);

using TaskResult = std::variant<TaskStatus, ApiError>;
TaskResult DecodeTaskResponse(int http_status, std::string_view body, std::string_view retry_after);

// GET /v1/credits: the shape is undocumented (api.md), so any integer found under a plausible
// name ("credits", "balance", "remaining"), at the top or under "data", is taken; else nullopt.
std::optional<std::int64_t> DecodeCredits(std::string_view body);

}  // namespace nanobatch::api
