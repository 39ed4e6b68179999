// The simulator as a real HTTPS server, checked with curl: an independent client, so that the
// simulator's own correctness does not rest on nanobatch's HTTP code.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <string>

#include "runner/testing/fake_api_process.h"

namespace nanobatch::fake_api {
namespace {

namespace json = boost::json;
using testing::FakeApiProcess;
using testing::ProcessResult;

const std::string kAuth = "Authorization: Bearer sk-test";
const std::string kSubmit =
    R"({"model":"nano-banana-2","input":{"prompt":"a cat","output_format":"png"}})";

std::string SubmitAndGetId(const FakeApiProcess& api, const std::string& body = kSubmit) {
  ProcessResult r = api.Curl({"-X", "POST", "-H", kAuth, "-H", "Content-Type: application/json",
                              "-d", body, api.base_url() + "/v1/images/generations"});
  REQUIRE(r.exit_code == 0);
  return std::string(json::parse(r.out).at("data").at("taskId").as_string());
}

json::object PollUntilDone(const FakeApiProcess& api, const std::string& id) {
  for (int attempt = 0; attempt < 100; ++attempt) {  // bounded: at most ~10 s
    ProcessResult r = api.Curl({"-H", kAuth, api.base_url() + "/v1/tasks/" + id});
    REQUIRE(r.exit_code == 0);
    json::object task = json::parse(r.out).as_object();
    if (task.at("status") == "completed" || task.at("status") == "failed") return task;
    testing::RunProcess({"sleep", "0.1"});
  }
  FAIL("task did not finish");
  return {};
}

TEST_CASE("fake_api: submit, poll and download a real PNG over verified TLS") {
  testing::TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "20", "--processing-ms", "50"});
  const std::string id = SubmitAndGetId(api);
  json::object task = PollUntilDone(api, id);
  REQUIRE(task.at("status") == "completed");
  const std::string url(task.at("output").at("urls").at(0).as_string());
  // Images come from the separate file host (another port, another host name).
  CHECK(url == "https://localhost:" + std::to_string(api.file_port()) + "/images/" + id + "-0.png");
  const std::string image = dir.File("image.png");
  ProcessResult download = api.Curl({"-o", image, url});
  REQUIRE(download.exit_code == 0);
  CHECK(dir.Read("image.png").substr(0, 8) == "\x89PNG\r\n\x1a\n");

  json::object stats = api.Stats(true);
  CHECK(stats.at("submissions").as_int64() == 1);
  CHECK(stats.at("images_served").as_int64() == 1);
  CHECK(stats.at("image_sha256").as_object().contains("/images/" + id + "-0.png"));
}

TEST_CASE("fake_api: TLS is verified: without the test CA curl refuses the server") {
  testing::TempDir dir;
  FakeApiProcess api(dir);
  ProcessResult r =
      testing::RunProcess({"curl", "-sS", "--max-time", "10", api.base_url() + "/_stats"});
  CHECK(r.exit_code == 60);  // CURLE_PEER_FAILED_VERIFICATION
}

TEST_CASE("fake_api: error bodies and HTTP statuses as api.md documents them") {
  testing::TempDir dir;
  FakeApiProcess api(dir, {"--credits", "20"});
  auto status_and_body = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-w", "\n%{http_code}"});
    ProcessResult r = api.Curl(args);
    REQUIRE(r.exit_code == 0);
    const auto newline = r.out.rfind('\n');
    return std::make_pair(std::stoi(r.out.substr(newline + 1)),
                          json::parse(r.out.substr(0, newline)).as_object());
  };
  auto [no_key, no_key_body] = status_and_body({api.base_url() + "/v1/credits"});
  CHECK(no_key == 401);
  CHECK(no_key_body.at("error").at("code") == "invalid_api_key");

  auto [missing, missing_body] = status_and_body({"-H", kAuth, api.base_url() + "/v1/tasks/nope"});
  CHECK(missing == 404);
  CHECK(missing_body.at("error").at("code") == "task_not_found");

  auto [bad, bad_body] = status_and_body(
      {"-X", "POST", "-H", kAuth, "-d", "{}", api.base_url() + "/v1/images/generations"});
  CHECK(bad == 400);
  CHECK(bad_body.at("error").at("type") == "invalid_request_error");

  SubmitAndGetId(api);  // 16 of 20 credits
  auto [broke, broke_body] = status_and_body(
      {"-X", "POST", "-H", kAuth, "-d", kSubmit, api.base_url() + "/v1/images/generations"});
  CHECK(broke == 402);
  CHECK(broke_body.at("error").at("code") == "insufficient_credits");
}

TEST_CASE("fake_api: the server-side rate limit sends 429 with a Retry-After header") {
  testing::TempDir dir;
  FakeApiProcess api(dir, {"--rate", "1", "--burst", "1"});
  // Two requests on one connection: the second finds the bucket empty.
  ProcessResult r = api.Curl({"-i", "-H", kAuth, api.base_url() + "/v1/credits", "-H", kAuth,
                              api.base_url() + "/v1/credits"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("HTTP/1.1 200") != std::string::npos);
  CHECK(r.out.find("HTTP/1.1 429") != std::string::npos);
  CHECK(r.out.find("Retry-After: 1") != std::string::npos);
  CHECK(r.out.find("rate_limit_exceeded") != std::string::npos);
  CHECK(api.Stats().at("rate_limited_429").as_int64() == 1);
}

TEST_CASE("fake_api: download faults: a reset and a truncated body are errors to curl") {
  testing::TempDir dir;
  FakeApiProcess reset_api(dir, {"--p-reset", "1", "--pending-ms", "0", "--processing-ms", "0"});
  json::object task = PollUntilDone(reset_api, SubmitAndGetId(reset_api));
  ProcessResult reset = reset_api.Curl(
      {"-o", "/dev/null", std::string(task.at("output").at("urls").at(0).as_string())});
  CHECK(reset.exit_code != 0);

  testing::TempDir other;
  FakeApiProcess cut_api(other, {"--p-truncate", "1", "--pending-ms", "0", "--processing-ms", "0"});
  task = PollUntilDone(cut_api, SubmitAndGetId(cut_api));
  ProcessResult cut = cut_api.Curl(
      {"-o", "/dev/null", std::string(task.at("output").at("urls").at(0).as_string())});
  CHECK(cut.exit_code == 18);  // CURLE_PARTIAL_FILE
}

TEST_CASE("fake_api: the file host serves images only") {
  testing::TempDir dir;
  FakeApiProcess api(dir);
  ProcessResult r =
      api.Curl({"-w", "%{http_code}", "-o", "/dev/null", "-H", kAuth,
                "https://localhost:" + std::to_string(api.file_port()) + "/v1/credits"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "404");
}

}  // namespace
}  // namespace nanobatch::fake_api
