#include "runner/api/codec.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <cmath>

#include "runner/util/server_text.h"

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
  // The members in the order the API's examples give them.
  CHECK(EncodeSubmit(item, "nano-banana-2", "https://hooks.example/cb") ==
        R"({"model":"nano-banana-2","callback_url":"https://hooks.example/cb","input":{)"
        R"("prompt":"a \"quoted\" cat 猫","resolution":"2K","aspect_ratio":"16:9",)"
        R"("output_format":"png","image_urls":["https://example.com/a.png"]}})");
}

TEST_CASE("codec: a callback URL goes into the submit only when given") {
  manifest::Item item;
  item.id = "a";
  item.prompt = "p";
  item.resolution = "1K";
  item.aspect_ratio = "auto";
  item.output_format = "png";
  CHECK(EncodeSubmit(item, "nano-banana-2").find("callback_url") == std::string::npos);
  const std::string body = EncodeSubmit(item, "nano-banana-2", "https://hooks.example/cb/0123");
  CHECK(body.find(R"("callback_url":"https://hooks.example/cb/0123")") != std::string::npos);
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
      {404, "model_not_found", ErrorKind::kModelNotFound, Reaction::kStopMisconfigured},
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

PossiblyCharged Charged(int status, std::string_view body) {
  SubmitResult result = DecodeSubmitResponse(status, body, "");
  REQUIRE(std::holds_alternative<PossiblyCharged>(result));
  return std::get<PossiblyCharged>(result);
}

TEST_CASE("codec: bodies that are not the API's classify by status where it alone is clear") {
  CHECK(ReactionTo(SubmitError(500, "<html>oops</html>")) == Reaction::kRetry);
  CHECK(ReactionTo(SubmitError(503, "<html>busy</html>")) == Reaction::kRetry);
  CHECK(ReactionTo(SubmitError(429, "")) == Reaction::kSlowDown);
  CHECK(ReactionTo(SubmitError(401, "nope")) == Reaction::kStopRun);
  CHECK(SubmitError(500, "x").code == "http_500");
  // A wrong base URL answers 404 or 405 pages: every item would fail alike, so the run stops
  // with a configuration error instead of failing items one by one; a redirect is not followed.
  CHECK(ReactionTo(SubmitError(404, "<html>Not Found</html>")) == Reaction::kStopMisconfigured);
  CHECK(ReactionTo(SubmitError(405, "")) == Reaction::kStopMisconfigured);
  CHECK(ReactionTo(SubmitError(400, "<html>Bad Request</html>")) == Reaction::kStopMisconfigured);
  CHECK(ReactionTo(SubmitError(301, "")) == Reaction::kStopMisconfigured);
  CHECK(ReactionTo(SubmitError(418, "{}")) == Reaction::kStopMisconfigured);
  // A 101 in place of a poll's answer is transient, not the configuration's fault.
  TaskResult switched = DecodeTaskResponse(101, "", "");
  REQUIRE(std::holds_alternative<ApiError>(switched));
  CHECK(ReactionTo(std::get<ApiError>(switched)) == Reaction::kRetry);
  // A poll's 404 page is never mistaken for task_not_found (which would pay again).
  TaskResult page = DecodeTaskResponse(404, "<html>Not Found</html>", "");
  REQUIRE(std::holds_alternative<ApiError>(page));
  CHECK(ReactionTo(std::get<ApiError>(page)) == Reaction::kStopMisconfigured);
}

TEST_CASE("codec: a 2xx submit answer without a usable task id is 'possibly charged'") {
  for (std::string_view body :
       {"<html>ok</html>", "{\"data\":{}}", "[1,2", "{\"data\":{\"taskId\":7}}",
        "{\"data\":{\"taskId\":\"\"}}", "{\"data\":{\"taskId\":\"a/../b\"}}",
        "{\"data\":{\"taskId\":\"a\\r\\nGET / HTTP/1.1\"}}",
        "{\"data\":{\"taskId\":\"a\\u0000b\"}}"}) {
    INFO(body);
    CHECK(Charged(200, body).http_status == 200);
  }
  CHECK(Charged(200, "{\"data\":{\"taskId\":\"" + std::string(10000, 'a') + "\"}}")
            .reason.find("10000 bytes") != std::string::npos);
  // Invalid UTF-8, and JSON nested beyond any sane depth.
  CHECK(Charged(200, "{\"data\":{\"taskId\":\"\xff\xfe\"}}").http_status == 200);
  CHECK(Charged(201, std::string(100000, '[') + std::string(100000, ']')).http_status == 201);
  // An error body inside a 2xx does not make it "not charged".
  Charged(200, ErrorBody("insufficient_credits"));
  // A gateway's own 502/504 may have passed the POST on; an API error with those codes is the
  // API's word and is taken as such.
  CHECK(Charged(502, "<html>Bad Gateway</html>").http_status == 502);
  CHECK(Charged(504, "").http_status == 504);
  // So may any other 5xx the API does not document: Cloudflare's 520 and 524 come after the
  // origin had the request; a status nobody documents is taken the same way.
  for (const int status : {501, 520, 521, 524, 530, 599, 999}) {
    INFO(status);
    CHECK(Charged(status, "<html>A timeout occurred</html>").http_status == status);
  }
  // 500 and 503 are the API's own statuses (and what a proxy sends when it cannot reach it):
  // without its body they are still "not charged, try again".
  CHECK(SubmitError(500, "<html>Internal Server Error</html>").kind == ErrorKind::kInternal);
  CHECK(SubmitError(503, "<html>no healthy upstream</html>").kind == ErrorKind::kUpstream);
  // A 101 (Switching Protocols, never asked for) is no answer to the submit, which may have
  // reached the API.
  CHECK(Charged(101, "").http_status == 101);
  CHECK(SubmitError(502, ErrorBody("upstream_error")).kind == ErrorKind::kUpstream);
}

TEST_CASE("codec: task ids are opaque tokens, percent-encoded into the request target") {
  CHECK(IsValidTaskId("397ce9f2-aaaa-bbbb_CC"));
  CHECK_FALSE(IsValidTaskId(""));
  CHECK_FALSE(IsValidTaskId(".."));
  CHECK_FALSE(IsValidTaskId("a/b"));
  CHECK_FALSE(IsValidTaskId("a\r\nHost: x"));
  CHECK_FALSE(IsValidTaskId(std::string("a\0b", 3)));
  CHECK_FALSE(IsValidTaskId(std::string(129, 'a')));
  CHECK(IsValidTaskId(std::string(128, 'a')));
  // Every byte value on its own: exactly the letters, digits, '-' and '_' of ASCII pass.
  const std::string_view allowed =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  int passed = 0;
  for (int c = 0; c < 256; ++c) {
    const std::string id(1, static_cast<char>(c));
    const bool expected = allowed.find(static_cast<char>(c)) != std::string_view::npos;
    if (IsValidTaskId(id) == expected) ++passed;
  }
  CHECK(passed == 256);
  CHECK(TaskTarget("397ce9f2-1") == "/v1/tasks/397ce9f2-1");
  CHECK(TaskTarget("a/b\r\n") == "/v1/tasks/a%2Fb%0D%0A");
}

TEST_CASE("codec: a task id or image URL that echoes the key is refused, never kept") {
  util::RegisterSecret("sk-codec-test-key-456");
  CHECK_FALSE(IsValidTaskId("sk-codec-test-key-456"));
  CHECK_FALSE(IsValidTaskId("task-sk-codec-test-key-456-x"));
  // A submit answered with it: possibly charged (its id can never be known), the key not quoted.
  const PossiblyCharged charged = Charged(200, R"({"data":{"taskId":"sk-codec-test-key-456"}})");
  CHECK(charged.reason.find("codec-test-key") == std::string::npos);
  // An image URL holding it: the output is refused (bad_output), and no URL is kept.
  TaskResult result = DecodeTaskResponse(
      200,
      R"({"id":"t1","status":"completed","output":{"urls":["https://f.example/a.png?k=sk-codec-test-key-456"]}})",
      "");
  REQUIRE(std::holds_alternative<TaskStatus>(result));
  const TaskStatus& task = std::get<TaskStatus>(result);
  CHECK(task.output_problem == TaskStatus::OutputProblem::kMalformed);
  CHECK(task.urls.empty());
  CHECK(DescribeOutputProblem(task).find("holds the API key") != std::string::npos);
}

TEST_CASE("codec: the server's text is scrubbed of the key and capped before anyone sees it") {
  util::RegisterSecret("sk-codec-test-key-123");
  ApiError error = SubmitError(
      400,
      R"({"error":{"code":"invalid_request","message":"bad header Authorization: Bearer sk-codec-test-key-123 )" +
          std::string(5000, 'x') + R"("}})");
  CHECK(error.message.find("codec-test-key") == std::string::npos);
  CHECK(error.message.size() <= util::kServerTextMaxBytes + 3);
  CHECK(error.kind == ErrorKind::kInvalidRequest);
}

TEST_CASE("codec: Retry-After in seconds is honoured, other forms ignored") {
  CHECK(SubmitError(429, ErrorBody("rate_limit_exceeded"), "3").retry_after_s == 3.0);
  CHECK(ParseRetryAfter(" 7 ") == 7.0);
  CHECK_FALSE(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT").has_value());
  CHECK_FALSE(ParseRetryAfter("-1").has_value());
  CHECK_FALSE(ParseRetryAfter("").has_value());
  CHECK(ParseRetryAfter("1.5") == 1.5);
  CHECK(ParseRetryAfter("86400") == 86400.0);
  CHECK_FALSE(ParseRetryAfter("86401").has_value());
  // What std::from_chars would read as a double, none of it a number of seconds: a NaN passed
  // every range check (it compares false with everything).
  for (const char* hostile : {"nan", "NaN", "-nan", "inf", "infinity", "1e3", "0x10", "1.", "."}) {
    INFO(hostile);
    const auto parsed = ParseRetryAfter(hostile);
    CHECK((!parsed.has_value() || (std::isfinite(*parsed) && *parsed >= 0)));
  }
  CHECK_FALSE(ParseRetryAfter("nan").has_value());
  CHECK_FALSE(ParseRetryAfter("inf").has_value());
  CHECK_FALSE(ParseRetryAfter("1e3").has_value());
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

TEST_CASE("codec: the task's id and timestamps are read; costTime is never taken for a duration") {
  auto decode = [](std::string_view body) {
    TaskResult result = DecodeTaskResponse(200, body, "");
    REQUIRE(std::holds_alternative<TaskStatus>(result));
    return std::get<TaskStatus>(result);
  };
  // api.md's own example: timestamps 2 s apart, costTime 70.
  TaskStatus done = decode(
      R"({"id":"397ce9f2-a","status":"completed","created_at":1775383908,"completed_at":1775383910,"output":{"urls":["https://f/a.png"],"metadata":{"costTime":70}}})");
  CHECK(done.id == "397ce9f2-a");
  CHECK(ReportedDurationSeconds(done) == 2);
  // Missing, fractional, string, negative or absurd timestamps are no duration.
  for (
      std::string_view body : {
          R"({"id":"t","status":"completed","created_at":1775383908})",
          R"({"id":"t","status":"completed","created_at":1775383908.5,"completed_at":1775383910})",
          R"({"id":"t","status":"completed","created_at":"1775383908","completed_at":1775383910})",
          R"({"id":"t","status":"completed","created_at":1775383910,"completed_at":1775383908})",
          R"({"id":"t","status":"completed","created_at":5,"completed_at":1775383908})",
          R"({"id":"t","status":"completed","created_at":1775383908,"completed_at":99999999999999})",
          R"({"id":"t","status":"completed","created_at":1775383908,"completed_at":1775983908})",
      }) {
    CAPTURE(body);
    CHECK_FALSE(ReportedDurationSeconds(decode(body)).has_value());
  }
  // An id that is no valid task id is not taken (the body stays decodable; a caller that needs
  // the id refuses it).
  CHECK(decode(R"({"id":"../x","status":"pending"})").id.empty());
  CHECK(decode(R"({"id":7,"status":"pending"})").id.empty());
}

TEST_CASE("codec: a completed task with no, too many or malformed URLs names its problem") {
  auto problem = [](const std::string& body) {
    TaskResult result = DecodeTaskResponse(200, body, "");
    REQUIRE(std::holds_alternative<TaskStatus>(result));
    CHECK(std::get<TaskStatus>(result).state == TaskStatus::State::kCompleted);
    return std::get<TaskStatus>(result).output_problem;
  };
  CHECK(problem(R"({"status":"completed"})") == TaskStatus::OutputProblem::kNoImages);
  CHECK(problem(R"({"status":"completed","output":{"urls":[]}})") ==
        TaskStatus::OutputProblem::kNoImages);
  CHECK(problem(R"({"status":"completed","output":{"urls":[1]}})") ==
        TaskStatus::OutputProblem::kMalformed);
  std::string many = R"({"status":"completed","output":{"urls":[)";
  for (int i = 0; i < 5000; ++i)
    many += std::string(i ? "," : "") + "\"https://f/" + std::to_string(i) + "\"";
  many += "]}}";
  CHECK(problem(many) == TaskStatus::OutputProblem::kTooManyImages);
  CHECK(OutputProblemCode(TaskStatus::OutputProblem::kNoImages) == "no_images");
}

TEST_CASE("codec: malformed task responses are errors, never crashes") {
  for (std::string_view body : {"", "null", "[]", R"({"status":"exploded"})", R"({"status":7})",
                                "{\"status\":\"completed\",\"output\":{\"urls\":[\"a\""}) {
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
  // Numbers beyond a 64-bit count are no balance (a double that large was undefined behaviour
  // to convert; found by the api_bodies fuzzer, testdata/fuzz/api_bodies/regressions/).
  CHECK_FALSE(DecodeCredits(R"({"data":{"credit":7777777777777777777777777777777777}})"));
  CHECK_FALSE(DecodeCredits(R"({"credits":18446744073709551615})"));
  CHECK_FALSE(DecodeCredits(R"({"credits":-1e300})"));
  CHECK(DecodeCredits(R"({"credits":9223372036854775807})") == 9223372036854775807);
}

}  // namespace
}  // namespace nanobatch::api
