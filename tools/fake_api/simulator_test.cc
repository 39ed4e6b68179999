#include "tools/fake_api/simulator.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <string>

namespace nanobatch::fake_api {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::string_view kAuth = "Bearer sk-test";

std::string SubmitBody(std::string_view prompt, std::string_view extra = "") {
  return std::string(R"({"model":"nano-banana-2","input":{"prompt":")") + std::string(prompt) +
         "\"" + std::string(extra) + "}}";
}

json::object Parse(const Reply& reply) { return json::parse(reply.body).as_object(); }

std::string ErrorCode(const Reply& reply) {
  return std::string(Parse(reply).at("error").at("code").as_string());
}

std::string TaskId(const Reply& reply) {
  return std::string(Parse(reply).at("data").at("taskId").as_string());
}

Options Fast() {
  Options options;
  options.pending_ms = 100;
  options.processing_ms = 100;
  options.api_authority = "127.0.0.1:9";
  return options;
}

TEST_CASE("simulator: a task goes pending -> processing -> completed, credits pre-deducted") {
  Simulator sim(Fast());
  const auto t0 = Clock::now();
  const std::int64_t start = sim.balance();
  Reply submitted = sim.Submit(kAuth, SubmitBody("a cat", R"(,"resolution":"2K")"), t0);
  REQUIRE(submitted.status == 200);
  CHECK(Parse(submitted).at("code").as_int64() == 200);
  CHECK(Parse(submitted).at("msg").as_string() == "success");
  const std::string id = TaskId(submitted);
  CHECK(sim.balance() == start - 24);

  CHECK(Parse(sim.Query(kAuth, id, t0 + milliseconds(50))).at("status").as_string() == "pending");
  CHECK(Parse(sim.Query(kAuth, id, t0 + milliseconds(150))).at("status").as_string() ==
        "processing");
  json::object done = Parse(sim.Query(kAuth, id, t0 + milliseconds(250)));
  CHECK(done.at("status").as_string() == "completed");
  CHECK(done.at("model").as_string() == "nano-banana-2");
  const json::array& urls = done.at("output").at("urls").as_array();
  REQUIRE(urls.size() == 1);
  CHECK(urls[0].as_string() == "https://127.0.0.1:9/images/" + id + "-0.jpg");
  CHECK(sim.balance() == start - 24);  // completed: spent for good
}

TEST_CASE("simulator: wire faults come by probability, or every Nth answer exactly") {
  Options none = Fast();
  Simulator quiet(none);
  for (int i = 0; i < 20; ++i) CHECK_FALSE(quiet.DrawWireFault());  // no kind: never

  Options every = Fast();
  every.wire_fault = "reset";
  every.wire_fault_every = 3;
  Simulator third(every);
  std::string drawn;
  for (int i = 0; i < 9; ++i) drawn += third.DrawWireFault() ? 'x' : '.';
  CHECK(drawn == "..x..x..x");

  Options always = Fast();
  always.wire_fault = "hang";
  always.p_wire_fault = 1;
  Simulator all(always);
  for (int i = 0; i < 5; ++i) CHECK(all.DrawWireFault());
}

TEST_CASE("simulator: a failed task reports upstream_error and its credits come back") {
  Options options = Fast();
  options.p_task_fail = 1;
  Simulator sim(options);
  const auto t0 = Clock::now();
  const std::int64_t start = sim.balance();
  const std::string id = TaskId(sim.Submit(kAuth, SubmitBody("x", R"(,"resolution":"4K")"), t0));
  CHECK(sim.balance() == start - 36);
  json::object failed = Parse(sim.Query(kAuth, id, t0 + seconds(1)));
  CHECK(failed.at("status").as_string() == "failed");
  CHECK(failed.at("error").at("code").as_string() == "upstream_error");
  CHECK(sim.balance() == start);
  CHECK(sim.Image("/images/" + id + "-0.jpg", t0 + seconds(1)).status == 404);
}

TEST_CASE("simulator: 401 for a missing, wrong or non-sk- key; 403 when the IP is denied") {
  Simulator sim(Fast());
  const auto now = Clock::now();
  for (std::string_view bad : {"", "sk-test", "Bearer sk-wrong", "Basic sk-test"}) {
    Reply reply = sim.Submit(bad, SubmitBody("x"), now);
    CHECK(reply.status == 401);
    CHECK(ErrorCode(reply) == "invalid_api_key");
    CHECK(Parse(reply).at("error").at("type").as_string() == "authentication_error");
  }
  Options no_prefix = Fast();
  no_prefix.api_key = "test";
  Simulator strict(no_prefix);
  CHECK(strict.Credits("Bearer test", now).status == 401);

  Options denied = Fast();
  denied.deny_all_ips = true;
  Simulator deny(denied);
  Reply reply = deny.Query(kAuth, "any", now);
  CHECK(reply.status == 403);
  CHECK(ErrorCode(reply) == "ip_not_allowed");
  CHECK(sim.submissions() == 0);
}

TEST_CASE("simulator: 400 invalid_request and 404 model_not_found, nothing charged") {
  Simulator sim(Fast());
  const auto now = Clock::now();
  const std::int64_t start = sim.balance();
  const std::string too_long(20001, 'a');
  for (const std::string& body :
       {std::string("not json"), std::string(R"({"input":{"prompt":"x"}})"),
        std::string(R"({"model":"nano-banana-2"})"), SubmitBody(""), SubmitBody(too_long),
        SubmitBody("x", R"(,"resolution":"8K")"), SubmitBody("x", R"(,"aspect_ratio":"7:5")"),
        SubmitBody("x", R"(,"output_format":"gif")"),
        SubmitBody("x", R"(,"image_urls":"https://a.b/c.png")"),
        SubmitBody("x", R"(,"image_urls":["ftp://a.b/c.png"])")}) {
    Reply reply = sim.Submit(kAuth, body, now);
    CHECK_MESSAGE(reply.status == 400, body);
    CHECK(ErrorCode(reply) == "invalid_request");
  }
  Reply wrong_model = sim.Submit(kAuth, R"({"model":"nano-banana-1","input":{"prompt":"x"}})", now);
  CHECK(wrong_model.status == 404);
  CHECK(ErrorCode(wrong_model) == "model_not_found");
  CHECK(sim.balance() == start);
  CHECK(sim.submissions() == 0);
}

TEST_CASE("simulator: 402 insufficient_credits when the balance cannot cover the price") {
  Options options = Fast();
  options.credits = 20;
  Simulator sim(options);
  const auto now = Clock::now();
  CHECK(sim.Submit(kAuth, SubmitBody("one"), now).status == 200);  // 16 of 20
  Reply broke = sim.Submit(kAuth, SubmitBody("two"), now);
  CHECK(broke.status == 402);
  CHECK(ErrorCode(broke) == "insufficient_credits");
  CHECK(sim.balance() == 4);
  json::object credits = Parse(sim.Credits(kAuth, now));
  CHECK(credits.at("data").at("credits").as_int64() == 4);
}

TEST_CASE("simulator: 404 task_not_found for an unknown task id") {
  Simulator sim(Fast());
  Reply reply = sim.Query(kAuth, "no-such-task", Clock::now());
  CHECK(reply.status == 404);
  CHECK(ErrorCode(reply) == "task_not_found");
}

TEST_CASE("simulator: the server-side rate limit answers 429 with Retry-After, then refills") {
  Options options = Fast();
  options.rate = 2;
  options.burst = 2;
  Simulator sim(options);
  const auto t0 = Clock::now() + seconds(1);
  CHECK(sim.Credits(kAuth, t0).status == 200);
  CHECK(sim.Credits(kAuth, t0).status == 200);
  Reply limited = sim.Credits(kAuth, t0);
  CHECK(limited.status == 429);
  CHECK(ErrorCode(limited) == "rate_limit_exceeded");
  REQUIRE(limited.retry_after);
  CHECK(*limited.retry_after == 1);
  CHECK(sim.Credits(kAuth, t0 + milliseconds(600)).status == 200);
  json::object stats = json::parse(sim.Stats(t0, false)).as_object();
  CHECK(stats.at("rate_limited_429").as_int64() == 1);
  CHECK(stats.at("max_requests_in_1s").as_int64() == 4);
}

TEST_CASE("simulator: 429 spend_limit_exceeded until the spend window reopens") {
  Options options = Fast();
  options.spend_limit = 32;
  options.spend_window_s = 60;
  Simulator sim(options);
  const auto t0 = Clock::now();
  CHECK(sim.Submit(kAuth, SubmitBody("a"), t0).status == 200);
  CHECK(sim.Submit(kAuth, SubmitBody("b"), t0).status == 200);
  Reply limited = sim.Submit(kAuth, SubmitBody("c"), t0 + seconds(1));
  CHECK(limited.status == 429);
  CHECK(ErrorCode(limited) == "spend_limit_exceeded");
  CHECK(Parse(limited).at("error").at("type").as_string() == "billing_error");
  REQUIRE(limited.retry_after);
  CHECK(*limited.retry_after == 59);
  CHECK(sim.Submit(kAuth, SubmitBody("c"), t0 + seconds(61)).status == 200);
}

TEST_CASE("simulator: injected 500/503 on submit charge nothing; injected 429 obey retry_after_s") {
  Options options = Fast();
  options.p_submit_5xx = 1;
  Simulator sim(options);
  const std::int64_t start = sim.balance();
  bool saw_500 = false, saw_503 = false;
  for (int i = 0; i < 40; ++i) {
    Reply reply = sim.Submit(kAuth, SubmitBody("x"), Clock::now());
    if (reply.status == 500) saw_500 = ErrorCode(reply) == "internal_error";
    if (reply.status == 503) saw_503 = ErrorCode(reply) == "upstream_error";
  }
  CHECK(saw_500);
  CHECK(saw_503);
  CHECK(sim.balance() == start);

  Options storm = Fast();
  storm.p_429 = 1;
  storm.retry_after_s = 0;
  Simulator stormy(storm);
  Reply reply = stormy.Credits(kAuth, Clock::now());
  CHECK(reply.status == 429);
  CHECK_FALSE(reply.retry_after.has_value());
}

TEST_CASE("simulator: images are real PNG/JPEG bytes, several per task, only once completed") {
  Options options = Fast();
  options.images_per_task = 2;
  options.file_authority = "localhost:7";
  Simulator sim(options);
  const auto t0 = Clock::now();
  const std::string id =
      TaskId(sim.Submit(kAuth, SubmitBody("x", R"(,"output_format":"png")"), t0));
  CHECK(sim.Image("/images/" + id + "-0.png", t0).status == 404);  // not finished yet
  json::object done = Parse(sim.Query(kAuth, id, t0 + seconds(1)));
  const json::array& urls = done.at("output").at("urls").as_array();
  REQUIRE(urls.size() == 2);
  CHECK(urls[1].as_string() == "https://localhost:7/images/" + id + "-1.png");
  ImageReply first = sim.Image("/images/" + id + "-0.png", t0 + seconds(1));
  ImageReply second = sim.Image("/images/" + id + "-1.png", t0 + seconds(1));
  REQUIRE(first.status == 200);
  CHECK(first.content_type == "image/png");
  CHECK(first.bytes.substr(0, 8) == "\x89PNG\r\n\x1a\n");
  CHECK(first.bytes != second.bytes);
  CHECK(sim.Image("/images/" + id + "-2.png", t0 + seconds(1)).status == 404);
  CHECK(sim.Image("/images/" + id + "-0.jpg", t0 + seconds(1)).status == 404);

  const std::string jpg = TaskId(sim.Submit(kAuth, SubmitBody("y"), t0));
  ImageReply jpeg = sim.Image("/images/" + jpg + "-0.jpg", t0 + seconds(1));
  REQUIRE(jpeg.status == 200);
  CHECK(jpeg.bytes.substr(0, 3) == "\xFF\xD8\xFF");
  json::object stats = json::parse(sim.Stats(t0 + seconds(1), true)).as_object();
  CHECK(stats.at("image_sha256").as_object().size() == 3);
}

TEST_CASE("simulator: URL faults give plain-http and foreign-host URLs") {
  Options plain = Fast();
  plain.p_plain_http_url = 1;
  Simulator sim(plain);
  const auto t0 = Clock::now();
  std::string id = TaskId(sim.Submit(kAuth, SubmitBody("x"), t0));
  CHECK(Parse(sim.Query(kAuth, id, t0 + seconds(1)))
            .at("output")
            .at("urls")
            .at(0)
            .as_string()
            .starts_with("http://"));

  Options foreign = Fast();
  foreign.p_foreign_host_url = 1;
  Simulator other(foreign);
  id = TaskId(other.Submit(kAuth, SubmitBody("x"), t0));
  CHECK(Parse(other.Query(kAuth, id, t0 + seconds(1)))
            .at("output")
            .at("urls")
            .at(0)
            .as_string()
            .starts_with("https://foreign.invalid/"));
}

TEST_CASE("simulator: stats count submissions per prompt and duplicates") {
  Simulator sim(Fast());
  const auto t0 = Clock::now();
  sim.Submit(kAuth, SubmitBody("same"), t0);
  sim.Submit(kAuth, SubmitBody("same"), t0);
  sim.Submit(kAuth, SubmitBody("other"), t0);
  json::object stats = json::parse(sim.Stats(t0, true)).as_object();
  CHECK(stats.at("submissions").as_int64() == 3);
  CHECK(stats.at("duplicate_prompt_submissions").as_int64() == 1);
  CHECK(stats.at("max_submissions_per_prompt").as_int64() == 2);
  CHECK(stats.at("credits_charged").as_int64() == 48);
  CHECK(stats.at("submissions_by_prompt").at("same").as_int64() == 2);
}

}  // namespace
}  // namespace nanobatch::fake_api
