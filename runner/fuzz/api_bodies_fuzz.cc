// Every API body the client decodes: submit answers, task (poll) answers, error bodies, the
// credits answer and Retry-After headers. The first byte picks the decoder, the next two the
// HTTP status, then a Retry-After value up to the first newline, then the body. Whatever the
// server sends: task ids that come out are valid opaque tokens, URL lists are bounded, and all
// text is printable, scrubbed and short.

#include <cmath>
#include <cstdint>
#include <string_view>

#include "runner/api/codec.h"
#include "runner/fuzz/fuzz_check.h"
#include "runner/fuzz/printable.h"

namespace nanobatch::fuzz {
namespace {

constexpr std::size_t kShort = 2048;  // scrubbed server text is at most 300 bytes, plus ours

void CheckError(const api::ApiError& error) {
  FUZZ_CHECK(IsPrintable(error.code, kShort));
  FUZZ_CHECK(IsPrintable(error.message, kShort));
  if (error.retry_after_s)
    FUZZ_CHECK(std::isfinite(*error.retry_after_s) && *error.retry_after_s >= 0);
}

void CheckTask(const api::TaskStatus& task) {
  FUZZ_CHECK(task.id.empty() || api::IsValidTaskId(task.id));
  FUZZ_CHECK(task.urls.size() <= api::kMaxUrlsPerTask);
  for (const std::string& url : task.urls) FUZZ_CHECK(url.size() <= api::kMaxUrlBytes);
  if (task.state == api::TaskStatus::State::kCompleted &&
      task.output_problem == api::TaskStatus::OutputProblem::kNone) {
    FUZZ_CHECK(!task.urls.empty());
  }
  FUZZ_CHECK(IsPrintable(task.error_code, kShort));
  FUZZ_CHECK(IsPrintable(task.error_message, kShort));
  FUZZ_CHECK(IsPrintable(api::DescribeOutputProblem(task), 4 * kShort));
  if (auto seconds = api::ReportedDurationSeconds(task)) {
    FUZZ_CHECK(*seconds >= 0 && *seconds <= 86400);
  }
}

}  // namespace
}  // namespace nanobatch::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nanobatch;
  if (size < 3) return 0;
  const int which = data[0] % 5;
  const int status = 100 + (data[1] << 8 | data[2]) % 500;
  std::string_view rest(reinterpret_cast<const char*>(data + 3), size - 3);
  const auto newline = rest.find('\n');
  const std::string_view retry_after =
      newline == std::string_view::npos ? "" : rest.substr(0, newline);
  const std::string_view body = newline == std::string_view::npos ? rest : rest.substr(newline + 1);
  switch (which) {
    case 0: {
      api::SubmitResult result = api::DecodeSubmitResponse(status, body, retry_after);
      if (auto* id = std::get_if<std::string>(&result)) {
        FUZZ_CHECK(status >= 200 && status < 300);
        FUZZ_CHECK(api::IsValidTaskId(*id));
        FUZZ_CHECK(api::TaskTarget(*id) == "/v1/tasks/" + *id);
      } else if (auto* error = std::get_if<api::ApiError>(&result)) {
        fuzz::CheckError(*error);
      } else {
        FUZZ_CHECK(fuzz::IsPrintable(std::get<api::PossiblyCharged>(result).reason, fuzz::kShort));
      }
      break;
    }
    case 1:
    case 2: {
      api::TaskResult result =
          api::DecodeTaskResponse(which == 1 ? 200 : status, body, retry_after);
      if (auto* task = std::get_if<api::TaskStatus>(&result)) {
        fuzz::CheckTask(*task);
      } else {
        fuzz::CheckError(std::get<api::ApiError>(result));
      }
      break;
    }
    case 3:
      api::DecodeCredits(body);
      break;
    default:
      if (auto seconds = api::ParseRetryAfter(body)) {
        FUZZ_CHECK(std::isfinite(*seconds) && *seconds >= 0);
      }
      break;
  }
  return 0;
}
