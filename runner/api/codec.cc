#include "runner/api/codec.h"

#include <array>
#include <boost/json.hpp>
#include <boost/url/url.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

#include "runner/util/json_arena.h"
#include "runner/util/json_writer.h"
#include "runner/util/server_text.h"

namespace nanobatch::api {
namespace json = boost::json;
namespace {

// An answer's body parsed into a stack arena (util::JsonArena): what a decoder reads from it is
// copied out before it goes out of scope.
class ParsedObject {
 public:
  // Constructed, not assigned: assigning a value to one of another storage copies it there.
  explicit ParsedObject(std::string_view body) : value_(Parse(body, arena_)) {}
  // The body's object, or null if it is not a JSON object.
  const json::object* get() const { return value_.if_object(); }

 private:
  static json::value Parse(std::string_view body, util::JsonArena<>& arena) {
    json::error_code error;
    json::value value = json::parse(body, error, arena.storage());
    if (error) return json::value(arena.storage());
    return value;
  }

  util::JsonArena<> arena_;  // first: value_ lives in it
  json::value value_;
};

// A string the server sent, scrubbed (util::ServerText) and capped at `max_bytes`.
std::string ServerStringOr(const json::object& object, std::string_view key, std::string fallback,
                           std::size_t max_bytes = util::kServerTextMaxBytes) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr || !value->is_string()) return fallback;
  return util::ServerText(value->as_string(), max_bytes);
}

constexpr std::size_t kMaxCodeBytes = 64;

ErrorKind KindFor(int status, std::string_view code) {
  if (code == "invalid_request") return ErrorKind::kInvalidRequest;
  if (code == "invalid_api_key") return ErrorKind::kInvalidApiKey;
  if (code == "ip_not_allowed") return ErrorKind::kIpNotAllowed;
  if (code == "insufficient_credits") return ErrorKind::kInsufficientCredits;
  if (code == "model_not_found") return ErrorKind::kModelNotFound;
  if (code == "task_not_found") return ErrorKind::kTaskNotFound;
  if (code == "rate_limit_exceeded") return ErrorKind::kRateLimited;
  if (code == "spend_limit_exceeded") return ErrorKind::kSpendLimited;
  if (code == "internal_error") return ErrorKind::kInternal;
  if (code == "upstream_error") return ErrorKind::kUpstream;
  // An undocumented code: fall back on the HTTP status where it alone says what happened,
  // whoever sent it. A 400 or 404 without a documented code says nothing about the item (it is
  // what a wrong base URL or a proxy answers): kUnexpected.
  switch (status) {
    case 401:
      return ErrorKind::kInvalidApiKey;
    case 402:
      return ErrorKind::kInsufficientCredits;
    case 403:
      return ErrorKind::kIpNotAllowed;
    case 429:
      return ErrorKind::kRateLimited;
    case 500:
      return ErrorKind::kInternal;
    case 503:
      return ErrorKind::kUpstream;
    default:
      return ErrorKind::kUnexpected;
  }
}

ApiError DecodeError(int status, std::string_view body, std::string_view retry_after) {
  ApiError error;
  error.http_status = status;
  error.retry_after_s = ParseRetryAfter(retry_after);
  const ParsedObject parsed(body);
  if (const json::object* object = parsed.get()) {
    if (const json::value* inner = object->if_contains("error"); inner && inner->is_object()) {
      error.code = ServerStringOr(inner->as_object(), "code", "", kMaxCodeBytes);
      error.message = ServerStringOr(inner->as_object(), "message", "");
    }
  }
  error.kind = KindFor(status, error.code);
  if (error.code.empty()) error.code = "http_" + std::to_string(status);
  if (error.message.empty()) error.message = "HTTP " + std::to_string(status);
  return error;
}

ApiError Undecodable(int status, std::string what) {
  ApiError error;
  error.kind = ErrorKind::kUnexpected;
  error.http_status = status;
  error.code = "bad_response";
  error.message = std::move(what);
  return error;
}

// An integral Unix time in seconds, between 2001 and 2286 (10 digits); anything else is absent.
std::optional<std::int64_t> UnixSeconds(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return std::nullopt;
  std::int64_t seconds = 0;
  if (value->is_int64()) {
    seconds = value->as_int64();
  } else if (value->is_uint64() && value->as_uint64() < 10'000'000'000ull) {
    seconds = static_cast<std::int64_t>(value->as_uint64());
  } else {
    return std::nullopt;
  }
  if (seconds < 1'000'000'000 || seconds >= 10'000'000'000) return std::nullopt;
  return seconds;
}

// A 5xx that the API does not document (500 internal_error and 503 upstream_error are its own)
// comes from something in front of it. 502 and 504 (nginx, load balancers) and Cloudflare's 520
// and 524 are sent after the request was passed on; of the others, some are sent before (521-523,
// 525, 526, 530) but a client cannot tell them apart reliably, so every such status is taken to
// mean a task may exist: counting credits that were never spent costs budget, paying twice
// costs money. 500 and 503 without the API's body are what a proxy answers when it cannot reach
// the API at all, and the API's own answers with those statuses say the task failed.
bool MayHaveBeenPassedOn(int status) { return status >= 500 && status != 500 && status != 503; }

// 1xx statuses the HTTP client returns as final (it reads past the others): 101.
bool IsFinalInformational(int status) { return status >= 100 && status < 200; }

}  // namespace

Reaction ReactionTo(const ApiError& error) {
  switch (error.kind) {
    case ErrorKind::kInvalidRequest:
      return Reaction::kFailItem;
    case ErrorKind::kModelNotFound:
      return Reaction::kStopMisconfigured;
    case ErrorKind::kInvalidApiKey:
    case ErrorKind::kIpNotAllowed:
      return Reaction::kStopRun;
    case ErrorKind::kInsufficientCredits:
      return Reaction::kStopSubmitting;
    case ErrorKind::kTaskNotFound:
      return Reaction::kResubmit;
    case ErrorKind::kRateLimited:
      return Reaction::kSlowDown;
    case ErrorKind::kSpendLimited:
      return Reaction::kPauseSubmits;
    case ErrorKind::kInternal:
    case ErrorKind::kUpstream:
      return Reaction::kRetry;
    case ErrorKind::kUnexpected:
      // 5xx from a proxy, timeouts, undecodable 2xx polls and a 1xx in place of an answer (a
      // 101 nobody asked for) are transient. Any other answer that is no API error (an HTML 404
      // from a wrong base URL, a 3xx that is never followed) is the configuration's fault, not
      // the item's.
      return error.http_status >= 500 || error.http_status == 408 ||
                     (error.http_status >= 100 && error.http_status < 300)
                 ? Reaction::kRetry
                 : Reaction::kStopMisconfigured;
  }
  return Reaction::kFailItem;
}

std::string_view KindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidRequest:
      return "invalid_request";
    case ErrorKind::kInvalidApiKey:
      return "invalid_api_key";
    case ErrorKind::kIpNotAllowed:
      return "ip_not_allowed";
    case ErrorKind::kInsufficientCredits:
      return "insufficient_credits";
    case ErrorKind::kModelNotFound:
      return "model_not_found";
    case ErrorKind::kTaskNotFound:
      return "task_not_found";
    case ErrorKind::kRateLimited:
      return "rate_limit_exceeded";
    case ErrorKind::kSpendLimited:
      return "spend_limit_exceeded";
    case ErrorKind::kInternal:
      return "internal_error";
    case ErrorKind::kUpstream:
      return "upstream_error";
    case ErrorKind::kUnexpected:
      return "unexpected_response";
  }
  return "unknown";
}

std::optional<double> ParseRetryAfter(std::string_view header) {
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  if (header.empty()) return std::nullopt;
  // Digits and a decimal point only: from_chars also reads "nan", "inf" and exponents, and a
  // NaN passes every range check below (it compares false) and became a wait of any length.
  for (const char c : header) {
    if ((c < '0' || c > '9') && c != '.') return std::nullopt;
  }
  double seconds = 0;
  auto [end, error] = std::from_chars(header.data(), header.data() + header.size(), seconds);
  if (error != std::errc() || end != header.data() + header.size() || seconds < 0 ||
      seconds > 86400) {
    return std::nullopt;
  }
  return seconds;
}

bool IsValidTaskId(std::string_view task_id) {
  // A table: checked for every id each answer carries, and the chain of comparisons per
  // character was the codec's largest cost after parsing.
  static constexpr std::array<bool, 256> kAllowed = [] {
    std::array<bool, 256> allowed{};
    for (int c = 0; c < 256; ++c) {
      allowed[static_cast<std::size_t>(c)] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                             (c >= '0' && c <= '9') || c == '-' || c == '_';
    }
    return allowed;
  }();
  if (task_id.empty() || task_id.size() > kMaxTaskIdBytes) return false;
  for (const char c : task_id) {
    if (!kAllowed[static_cast<unsigned char>(c)]) return false;
  }
  // An id that echoes the key would put it in the journal, the logs' ids and metadata.jsonl.
  return !util::HoldsSecret(task_id);
}

std::string TaskTarget(std::string_view task_id) {
  // A task id as the decoders accept it has nothing to encode: the target is plain text (one
  // per poll, and boost::urls cost more than the rest of building the request).
  if (IsValidTaskId(task_id)) return std::string("/v1/tasks/").append(task_id);
  boost::urls::url target;
  target.set_path("/v1/tasks");
  target.segments().push_back(task_id);  // percent-encodes anything outside pchar
  return std::string(target.buffer());
}

std::string_view OutputProblemCode(TaskStatus::OutputProblem problem) {
  switch (problem) {
    case TaskStatus::OutputProblem::kNone:
      return "";
    case TaskStatus::OutputProblem::kNoImages:
      return "no_images";
    case TaskStatus::OutputProblem::kTooManyImages:
      return "too_many_images";
    case TaskStatus::OutputProblem::kMalformed:
      return "bad_output";
  }
  return "bad_output";
}

std::string DescribeOutputProblem(const TaskStatus& task) {
  switch (task.output_problem) {
    case TaskStatus::OutputProblem::kNone:
      return "";
    case TaskStatus::OutputProblem::kNoImages:
      return "the task completed with no image URL in output.urls";
    case TaskStatus::OutputProblem::kTooManyImages:
      return "the task completed with " + std::to_string(task.url_count) + " image URLs; at most " +
             std::to_string(kMaxUrlsPerTask) + " are accepted";
    case TaskStatus::OutputProblem::kMalformed:
      return "the task completed with an output.urls entry that is not a string of at most " +
             std::to_string(kMaxUrlBytes) + " bytes, or that holds the API key";
  }
  return "";
}

std::string EncodeSubmit(const manifest::Item& item, std::string_view model,
                         std::string_view callback_url) {
  std::string body;
  body.reserve(256 + item.prompt.size() + callback_url.size());  // one allocation, not several
  util::JsonObjectWriter request(body);
  request.String("model", model);
  if (!callback_url.empty()) request.String("callback_url", callback_url);
  request.Key("input");
  util::JsonObjectWriter input(body);
  input.String("prompt", item.prompt);
  input.String("resolution", item.resolution);
  input.String("aspect_ratio", item.aspect_ratio);
  input.String("output_format", item.output_format);
  if (!item.image_urls.empty()) input.StringArray("image_urls", item.image_urls);
  input.Close();
  request.Close();
  return body;
}

SubmitResult DecodeSubmitResponse(int http_status, std::string_view body,
                                  std::string_view retry_after) {
  const bool accepted = http_status >= 200 && http_status < 300;
  if (!accepted) {
    ApiError error = DecodeError(http_status, body, retry_after);
    // A gateway's own 502/504 (or 520, 524, ...) may come after it passed the POST on: a task
    // may exist.
    if (MayHaveBeenPassedOn(http_status) && error.kind == ErrorKind::kUnexpected) {
      return PossiblyCharged{http_status, "the gateway answered HTTP " +
                                              std::to_string(http_status) +
                                              " (the request may have reached the API)"};
    }
    // A 1xx that ends the exchange (101 Switching Protocols, never asked for: the client reads
    // past every other 1xx) is no answer to the request at all, which may have reached the API.
    if (IsFinalInformational(http_status)) {
      return PossiblyCharged{http_status, "the submit was answered HTTP " +
                                              std::to_string(http_status) +
                                              ", not an answer to it (the request may have "
                                              "reached the API)"};
    }
    return error;
  }
  // A 2xx means a task may exist and was charged: whatever is wrong with the body, the outcome
  // is "possibly charged, id unknown", never "nothing happened".
  auto unusable = [&](const std::string& why) {
    return PossiblyCharged{
        http_status, "the submit was answered HTTP " + std::to_string(http_status) + " but " + why};
  };
  const ParsedObject parsed(body);
  const json::object* object = parsed.get();
  if (!object) return unusable("the body is not a JSON object");
  const json::value* data = object->if_contains("data");
  if (data == nullptr || !data->is_object()) return unusable("the body has no data object");
  const json::value* id = data->as_object().if_contains("taskId");
  if (id == nullptr || !id->is_string()) return unusable("the body has no data.taskId string");
  const std::string_view task_id = id->as_string();
  if (!IsValidTaskId(task_id)) {
    return unusable("data.taskId is not a valid task id (" + util::ServerText(task_id, 40) + ", " +
                    std::to_string(task_id.size()) + " bytes)");
  }
  return std::string(task_id);
}

TaskResult DecodeTaskResponse(int http_status, std::string_view body,
                              std::string_view retry_after) {
  if (http_status != 200) return DecodeError(http_status, body, retry_after);
  const ParsedObject parsed(body);
  const json::object* object = parsed.get();
  if (!object) return Undecodable(http_status, "task response is not a JSON object");
  const std::string status = ServerStringOr(*object, "status", "", 40);
  TaskStatus task;
  if (const json::value* id = object->if_contains("id");
      id && id->is_string() && IsValidTaskId(id->as_string())) {
    task.id = std::string(id->as_string());
  }
  task.created_at = UnixSeconds(*object, "created_at");
  task.completed_at = UnixSeconds(*object, "completed_at");
  if (status == "pending") {
    task.state = TaskStatus::State::kPending;
  } else if (status == "processing") {
    task.state = TaskStatus::State::kProcessing;
  } else if (status == "failed") {
    task.state = TaskStatus::State::kFailed;
    if (const json::value* error = object->if_contains("error"); error && error->is_object()) {
      task.error_code = ServerStringOr(error->as_object(), "code", "", kMaxCodeBytes);
      task.error_message = ServerStringOr(error->as_object(), "message", "");
    }
    if (task.error_code.empty()) task.error_code = "task_failed";
  } else if (status == "completed") {
    task.state = TaskStatus::State::kCompleted;
    const json::value* output = object->if_contains("output");
    const json::value* urls =
        output && output->is_object() ? output->as_object().if_contains("urls") : nullptr;
    if (urls == nullptr || !urls->is_array() || urls->as_array().empty()) {
      task.output_problem = TaskStatus::OutputProblem::kNoImages;
      return task;
    }
    task.url_count = urls->as_array().size();
    if (task.url_count > kMaxUrlsPerTask) {
      task.output_problem = TaskStatus::OutputProblem::kTooManyImages;
      return task;
    }
    for (const json::value& url : urls->as_array()) {
      // A URL holding the key would be written to the journal and sent to an image host.
      if (!url.is_string() || url.as_string().size() > kMaxUrlBytes ||
          util::HoldsSecret(url.as_string())) {
        task.output_problem = TaskStatus::OutputProblem::kMalformed;
        task.urls.clear();
        return task;
      }
      task.urls.emplace_back(url.as_string());
    }
  } else {
    return Undecodable(http_status, "task status \"" + status + "\" is unknown");
  }
  return task;
}

std::optional<std::int64_t> ReportedDurationSeconds(const TaskStatus& task) {
  if (!task.created_at || !task.completed_at) return std::nullopt;
  const std::int64_t took = *task.completed_at - *task.created_at;
  if (took < 0 || took > 86'400) return std::nullopt;
  return took;
}

std::optional<std::int64_t> DecodeCredits(std::string_view body) {
  const ParsedObject parsed(body);
  const json::object* object = parsed.get();
  if (!object) return std::nullopt;
  auto find_in = [](const json::object& where) -> std::optional<std::int64_t> {
    for (std::string_view key : {"credits", "balance", "remaining", "credit"}) {
      const json::value* value = where.if_contains(key);
      if (value == nullptr) continue;
      // A number that does not fit a 64-bit count is no balance (converting it would be
      // undefined behaviour, or a wrapped negative; found by fuzzing).
      if (value->is_int64()) return value->as_int64();
      if (value->is_uint64()) {
        const std::uint64_t count = value->as_uint64();
        if (count > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          return std::nullopt;
        }
        return static_cast<std::int64_t>(count);
      }
      if (value->is_double()) {
        const double count = value->as_double();
        if (!std::isfinite(count) || count <= -9.0e18 || count >= 9.0e18) return std::nullopt;
        return static_cast<std::int64_t>(count);
      }
    }
    return std::nullopt;
  };
  if (const json::value* data = object->if_contains("data"); data && data->is_object()) {
    if (auto found = find_in(data->as_object())) return found;
  }
  return find_in(*object);
}

}  // namespace nanobatch::api
