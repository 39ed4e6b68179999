#pragma once
// The API's wire format (api.md), without I/O: request bodies out, responses in, and the
// classification of every documented error into the reaction the engine must have.
//
// Responses are decoded defensively: any body (HTML from a proxy, truncated JSON, wrong types)
// becomes an ApiError, never an exception or a crash.
//
// Example:
//   std::string body = EncodeSubmit(item, "nano-banana-2");
//   SubmitResult r = DecodeSubmitResponse(status, response_body, retry_after_header);
//   if (auto* error = std::get_if<ApiError>(&r)) { switch (ReactionTo(*error)) ... }

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
  kUnexpected,           // another status, or a body that does not decode
};

// What the engine does about an error (issue 3's table; api.md's error section).
enum class Reaction {
  kRetry,           // 500/503/unexpected 5xx: back off with jitter and try again (bounded)
  kSlowDown,        // 429 rate_limit_exceeded: halve the rate, honour Retry-After, try again
  kPauseSubmits,    // 429 spend_limit_exceeded: pause submitting; stop if it lasts
  kStopSubmitting,  // 402: no more submissions this run; finish what is in flight; exit 3
  kFailItem,        // 400, 404 model_not_found, other 4xx: this item fails for good
  kStopRun,         // 401/403: stop everything at once; exit 4
  kResubmit,        // 404 task_not_found on a poll: the task is gone; submit the item again
};

struct ApiError {
  ErrorKind kind = ErrorKind::kUnexpected;
  int http_status = 0;
  std::string code;     // the API's error.code, or a description when there was none
  std::string message;  // the API's error.message (never contains the key: the API echoes none)
  std::optional<double> retry_after_s;
};

Reaction ReactionTo(const ApiError& error);
std::string_view KindName(ErrorKind kind);

// "Retry-After: 3" -> 3 seconds. HTTP-date forms and garbage give nullopt (treated as absent).
std::optional<double> ParseRetryAfter(std::string_view header);

// POST /v1/images/generations body for `item`.
std::string EncodeSubmit(const manifest::Item& item, std::string_view model);

using SubmitResult = std::variant<std::string /*task id*/, ApiError>;
SubmitResult DecodeSubmitResponse(int http_status, std::string_view body,
                                  std::string_view retry_after);

struct TaskStatus {
  enum class State { kPending, kProcessing, kCompleted, kFailed };
  State state = State::kPending;
  std::vector<std::string> urls;  // when completed
  std::string error_code;         // when failed
  std::string error_message;
};

using TaskResult = std::variant<TaskStatus, ApiError>;
TaskResult DecodeTaskResponse(int http_status, std::string_view body, std::string_view retry_after);

// GET /v1/credits: the shape is undocumented (api.md), so any integer found under a plausible
// name ("credits", "balance", "remaining"), at the top or under "data", is taken; else nullopt.
std::optional<std::int64_t> DecodeCredits(std::string_view body);

}  // namespace nanobatch::api
