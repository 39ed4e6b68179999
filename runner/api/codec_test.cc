#include "runner/api/codec.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>

namespace nanobatch::api {
namespace {

std::string ErrorBody(std::string_view code) {
  return std::string(R"({"error":{"code":")") + std::string(code) +
         R"(","message":"m","type":"t"}})";
}

ApiError SubmitError(int status, std::string_view body, std::string_view retry_after = "") {
  SubmitResult result = DecodeSubmitResponse(status, body, retry_after);
  REQUIRE(std::holds_alternative<ApiError>(result));
  return std::get<ApiError>(result);
}

TEST_CASE("codec: the submit body has the model and every item field") {
  manifest::Item item;
  item.prompt = "a \"quoted\" cat 猫";
  item.resolution = "2K";
  item.aspect_ratio = "16:9";
  item.output_format = "png";
  item.image_urls = {"https://example.com/a.png"};
  boost::json::value body = boost::json::parse(EncodeSubmit(item, "nano-banana-2"));
  CHECK(body.at("model") == "nano-banana-2");
  CHECK(body.at("input").at("prompt") == "a \"quoted\" cat 猫");
  CHECK(body.at("input").at("resolution") == "2K");
  CHECK(body.at("input").at("aspect_ratio") == "16:9");
  CHECK(body.at("input").at("output_format") == "png");
  CHECK(body.at("input").at("image_urls").at(0) == "https://example.com/a.png");
  CHECK_FALSE(body.as_object().contains("callback_url"));
}

TEST_CASE("codec: a successful submit yields the task id") {
  SubmitResult ok = DecodeSubmitResponse(
      200, R"({"code": 200, "msg": "success", "data": {"taskId": "397ce9f2-1"}})", "");
  REQUIRE(std::holds_alternative<std::string>(ok));
  CHECK(std::get<std::string>(ok) == "397ce9f2-1");
}

TEST_CASE("codec: every documented error code has its kind and reaction") {
  struct Case {
    int status;
    const char* code;
    ErrorKind kind;
    Reaction reaction;
  };
  const Case cases[] = {
      {400, "invalid_request", ErrorKind::kInvalidRequest, Reaction::kFailItem},
      {401, "invalid_api_key", ErrorKind::kInvalidApiKey, Reaction::kStopRun},
      {402, "insufficient_credits", ErrorKind::kInsufficientCredits, Reaction::kStopSubmitting},
      {403, "ip_not_allowed", ErrorKind::kIpNotAllowed, Reaction::kStopRun},
      {404, "model_not_found", ErrorKind::kModelNotFound, Reaction::kFailItem},
      {404, "task_not_found", ErrorKind::kTaskNotFound, Reaction::kResubmit},
      {429, "rate_limit_exceeded", ErrorKind::kRateLimited, Reaction::kSlowDown},
      {429, "spend_limit_exceeded", ErrorKind::kSpendLimited, Reaction::kPauseSubmits},
      {500, "internal_error", ErrorKind::kInternal, Reaction::kRetry},
      {503, "upstream_error", ErrorKind::kUpstream, Reaction::kRetry},
  };
  for (const Case& c : cases) {
    ApiError error = SubmitError(c.status, ErrorBody(c.code));
    CHECK_MESSAGE(error.kind == c.kind, c.code);
    CHECK_MESSAGE(ReactionTo(error) == c.reaction, c.code);
    CHECK(error.code == c.code);
    CHECK(error.http_status == c.status);
    CHECK(KindName(error.kind) == c.code);
  }
}

TEST_CASE("codec: bodies that are not the API's still classify by status") {
  CHECK(ReactionTo(SubmitError(502, "<html>Bad Gateway</html>")) == Reaction::kRetry);
  CHECK(ReactionTo(SubmitError(429, "")) == Reaction::kSlowDown);
  CHECK(ReactionTo(SubmitError(401, "nope")) == Reaction::kStopRun);
  CHECK(ReactionTo(SubmitError(418, "{}")) == Reaction::kFailItem);
  CHECK(SubmitError(502, "x").code == "http_502");
  // A 200 that is not the documented shape is retried, not trusted.
  CHECK(ReactionTo(SubmitError(200, "{\"data\":{}}")) == Reaction::kRetry);
  CHECK(ReactionTo(SubmitError(200, "[1,2")) == Reaction::kRetry);
  CHECK(ReactionTo(SubmitError(200, ErrorBody("insufficient_credits"))) ==
        Reaction::kStopSubmitting);
}

TEST_CASE("codec: Retry-After in seconds is honoured, other forms ignored") {
  CHECK(SubmitError(429, ErrorBody("rate_limit_exceeded"), "3").retry_after_s == 3.0);
  CHECK(ParseRetryAfter(" 7 ") == 7.0);
  CHECK_FALSE(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT").has_value());
  CHECK_FALSE(ParseRetryAfter("-1").has_value());
  CHECK_FALSE(ParseRetryAfter("").has_value());
}

TEST_CASE("codec: task states, urls and failures decode") {
  auto decode = [](std::string_view body) {
    TaskResult result = DecodeTaskResponse(200, body, "");
    REQUIRE(std::holds_alternative<TaskStatus>(result));
    return std::get<TaskStatus>(result);
  };
  CHECK(decode(R"({"id":"t","status":"pending"})").state == TaskStatus::State::kPending);
  CHECK(decode(R"({"id":"t","status":"processing"})").state == TaskStatus::State::kProcessing);
  TaskStatus done = decode(
      R"({"id":"t","status":"completed","output":{"urls":["https://f/a.png","https://f/b.png"],"metadata":{"costTime":70}}})");
  CHECK(done.state == TaskStatus::State::kCompleted);
  REQUIRE(done.urls.size() == 2);
  CHECK(done.urls[1] == "https://f/b.png");
  TaskStatus failed = decode(
      R"({"id":"t","status":"failed","error":{"code":"upstream_error","message":"Image generation failed"}})");
  CHECK(failed.state == TaskStatus::State::kFailed);
  CHECK(failed.error_code == "upstream_error");
  CHECK(failed.error_message == "Image generation failed");
}

TEST_CASE("codec: malformed task responses are errors, never crashes") {
  for (std::string_view body :
       {"", "null", "[]", R"({"status":"completed"})",
        R"({"status":"completed","output":{"urls":[]}})",
        R"({"status":"completed","output":{"urls":[1]}})", R"({"status":"exploded"})",
        R"({"status":7})", "{\"status\":\"completed\",\"output\":{\"urls\":[\"a\""}) {
    TaskResult result = DecodeTaskResponse(200, body, "");
    CHECK_MESSAGE(std::holds_alternative<ApiError>(result), body);
  }
  TaskResult missing = DecodeTaskResponse(404, ErrorBody("task_not_found"), "");
  REQUIRE(std::holds_alternative<ApiError>(missing));
  CHECK(ReactionTo(std::get<ApiError>(missing)) == Reaction::kResubmit);
}

TEST_CASE("codec: the credits balance is read leniently") {
  CHECK(DecodeCredits(R"({"code":200,"data":{"credits":1234}})") == 1234);
  CHECK(DecodeCredits(R"({"balance":99})") == 99);
  CHECK(DecodeCredits(R"({"data":{"remaining":5.0}})") == 5);
  CHECK_FALSE(DecodeCredits(R"({"data":{"money":"lots"}})").has_value());
  CHECK_FALSE(DecodeCredits("garbage").has_value());
}

}  // namespace
}  // namespace nanobatch::api
