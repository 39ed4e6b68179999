// Issue 7's promises, end to end: the real binary against the simulator's hostile modes over real
// TLS on loopback. Each case is a class of failure found outside testing (money, the key, the
// files, the process), checked from both sides: the runner's files and exit code, and the
// server's own counts.
#include <doctest/doctest.h>
#include <signal.h>

#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "runner/testing/fake_api_process.h"
#include "runner/testing/runner_job.h"
#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::engine {
namespace {

namespace json = boost::json;
namespace stdfs = std::filesystem;
using testing::FakeApiProcess;
using testing::ProcessResult;
using testing::Stat;
using testing::TempDir;

constexpr const char* kBinary = testing::kNanobatchBinary;
constexpr const char* kKey = "sk-unique-leak-canary-20261126";

constexpr const char* kFastConfig =
    "polling: {first_poll_s: 0.05, max_interval_s: 0.2, task_deadline_s: 60}\n"
    "retry: {max_attempts: 4, base_delay_s: 0.02, max_delay_s: 0.1}\n"
    "timeouts: {connect_s: 5, request_s: 10, download_s: 20}\n"
    "log: {progress_interval_s: 60}\n"
    "limits: {rate: 300, burst: 30, max_in_flight: 8, max_downloads: 4}\n";

std::string Manifest(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    out += "{\"id\":\"t" + std::to_string(i) + "\",\"prompt\":\"trust prompt " + std::to_string(i) +
           "\",\"output_format\":\"" + (i % 2 ? "png" : "jpg") + "\"}\n";
  }
  return out;
}

std::vector<std::string> Fast(std::vector<std::string> args) {
  args.insert(args.end(), {"--api-key", kKey, "--pending-ms", "5", "--processing-ms", "5"});
  return args;
}

// A job with fast timings (plus `extra`) and the leak-canary key.
struct Job : testing::RunnerJob {
  Job(TempDir& d, FakeApiProcess& a, const std::string& manifest_text,
      const std::string& extra = "")
      : RunnerJob(d, a, manifest_text, std::string(kFastConfig) + extra, kKey) {}
};

std::int64_t Get(const json::object& object, const char* key) { return object.at(key).as_int64(); }

// The server's count `name` once it reaches `count`, or after 10 s (a run in the background).
std::int64_t WaitForStat(FakeApiProcess& api, const char* name, std::int64_t count) {
  std::int64_t value = Stat(api.Stats(), name);
  for (int i = 0; i < 500 && value < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    value = Stat(api.Stats(), name);
  }
  return value;
}

// --- Money ----------------------------------------------------------------------------------

TEST_CASE("trust: a 200 submit answer without a usable task id is counted, never overspent") {
  for (const char* kind :
       {"html", "no-task-id", "invalid-utf8", "deep-json", "long-id", "crlf-id", "slash-id"}) {
    INFO(kind);
    TempDir dir;
    FakeApiProcess api(
        dir, Fast({"--p-bad-submit-body", "0.3", "--bad-submit-body", kind, "--seed", "7"}));
    Job job(dir, api, Manifest(10), "limits: {budget_credits: 240}\n");  // 15 tasks of 16
    ProcessResult result = job.Run();
    INFO(result.err);
    // 5: five such answers in a row stopped submitting (the next test).
    CHECK((result.exit_code == 0 || result.exit_code == 3 || result.exit_code == 5));
    const json::object stats = api.Stats();
    // The server charged every task it created, answered well or not: never past the budget.
    CHECK(Stat(stats, "credits_charged") <= 240);
    CHECK(Stat(stats, "bad_submit_bodies") >= 1);
    // Every unusable answer is a possible duplicate in status, its credits counted as spent.
    const json::object status = job.Status();
    CHECK(Get(status, "possible_duplicate_submissions") == Stat(stats, "bad_submit_bodies"));
    CHECK(Get(status, "credits_spent") + Get(status, "credits_reserved") >=
          Stat(stats, "credits_charged"));
    // The tasks whose answers were usable were polled as usual.
    CHECK(Stat(stats, "queries") >= 1);
  }
}

TEST_CASE("trust: 200 submit answers without a task id, 5 in a row, stop submitting (exit 5)") {
  // Each is perhaps charged: before, the run stopped only once one item had been resubmitted
  // retry.max_attempts times, every item in flight paying meanwhile (92 submits for 200 items).
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--p-bad-submit-body", "1", "--bad-submit-body", "html"}));
  // One item's own attempts (retry.max_attempts) would stop it too: more of them than the streak.
  Job job(dir, api, Manifest(20), "limits: {max_in_flight: 1}\nretry: {max_attempts: 10}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 5);
  CHECK(result.err.find("5 submits in a row answered HTTP 200 without a task id") !=
        std::string::npos);
  CHECK(result.err.find("is --base-url (api.base_url) the API?") != std::string::npos);
  CHECK(Stat(api.Stats(), "submissions") == 5);
  const json::object status = job.Status();
  CHECK(Get(status, "possible_duplicate_submissions") == 5);
  CHECK(Get(status, "credits_spent") >= Stat(api.Stats(), "credits_charged"));
  CHECK(Get(status, "queued") == 20);
  CHECK(job.Lines("failed.jsonl").empty());
}

TEST_CASE("trust: submit answers lost one after another: one submit at a time, then exit 3") {
  // The API takes (and charges) every submit and answers none in time. Before, every item in
  // flight was sent again and again until one of them used its retry.max_attempts: here 8 in
  // flight, 3 attempts each, up to 24 tasks paid, none known. Now the run's first submit goes
  // alone, the others wait for its answer, and 3 lost in a row, one at a time, stop: 3 paid.
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--wire-fault", "hang", "--p-wire-fault", "1"}));
  Job job(dir, api, Manifest(20),
          "limits: {max_in_flight: 8}\ntimeouts: {request_s: 0.5}\n"
          "retry: {max_attempts: 3, base_delay_s: 0.02, max_delay_s: 0.1}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("one submit at a time until one is answered") != std::string::npos);
  CHECK(result.err.find("3 submits in a row, sent one at a time, got no usable answer") !=
        std::string::npos);
  const std::int64_t paid = Stat(api.Stats(), "submissions");
  CHECK(paid == 3);
  const json::object status = job.Status();
  CHECK(Get(status, "possible_duplicate_submissions") == paid);  // every one of them counted
  CHECK(Get(status, "credits_spent") >= Stat(api.Stats(), "credits_charged"));
  CHECK(Get(status, "queued") == 20);
}

TEST_CASE("trust: polls that keep failing stop the run (exit 3); the task is never paid again") {
  for (const char* fault : {"--p-poll-5xx", "--p-poll-garbage"}) {
    INFO(fault);
    TempDir dir;
    FakeApiProcess api(dir, Fast({fault, "1"}));
    Job job(dir, api, Manifest(4), "limits: {max_in_flight: 2}\n");
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 3);
    CHECK(result.err.find("API kept failing") != std::string::npos);
    const json::object stats = api.Stats();
    CHECK(Stat(stats, "submissions") == 2);  // the two in flight, no resubmission
    CHECK(Stat(stats, "duplicate_prompt_submissions") == 0);
    CHECK(job.Lines("failed.jsonl").empty());
    CHECK(Get(job.Status(), "in_flight") == 2);
  }
}

TEST_CASE("trust: a task past its deadline stays submitted; the next run polls, not pays") {
  TempDir dir;
  FakeApiProcess api(dir, {"--api-key", kKey, "--pending-ms", "5", "--processing-ms", "3000"});
  const std::string short_deadline =
      "polling: {first_poll_s: 0.05, max_interval_s: 0.2, task_deadline_s: 0.3}\n";
  Job job(dir, api, Manifest(3), short_deadline);
  ProcessResult first = job.Run();
  INFO(first.err);
  CHECK(first.exit_code == 3);
  CHECK(first.err.find("stays submitted") != std::string::npos);
  CHECK(job.Lines("failed.jsonl").empty());
  CHECK(Get(job.Status(), "in_flight") == 3);
  // The same job with the default deadline: the open tasks are polled until they complete.
  dir.Write("config.yaml", kFastConfig);
  ProcessResult second = job.Run();
  INFO(second.err);
  CHECK(second.exit_code == 0);
  CHECK(Stat(api.Stats(), "submissions") == 3);
}

TEST_CASE("trust: after 402 no queued submission is sent; 'stop' stops every waiting submit") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--credits", "48"}));  // three 1K tasks
  Job job(dir, api, Manifest(30), "limits: {rate: 5, burst: 1, max_in_flight: 30}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 3);
  const json::object stats = api.Stats();
  CHECK(Stat(stats, "submissions") == 3);
  CHECK(Stat(stats, "insufficient_credits_402") == 1);  // the one that told us; none after it
  CHECK(Get(job.Status(), "done") == 3);
}

TEST_CASE(
    "trust: a completed task with no images, or thousands, fails clearly; status stays fast") {
  struct Case {
    const char* images;
    const char* code;
  };
  for (const Case& c : {Case{"0", "no_images"}, Case{"5000", "too_many_images"}}) {
    INFO(c.code);
    TempDir dir;
    FakeApiProcess api(dir, Fast({"--images-per-task", c.images}));
    Job job(dir, api, Manifest(2));
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 1);
    auto failed = job.Lines("failed.jsonl");
    REQUIRE(failed.size() == 2);
    CHECK(failed[0].at("error_code") == c.code);
    CHECK(Stat(api.Stats(), "submissions") == 2);  // completed means charged: not paid again
    CHECK(Get(job.Status(), "credits_spent") == 32);
  }
}

// --- Configuration problems stop at once ------------------------------------------------------

TEST_CASE("trust: TLS verification failures stop at once with exit 5, recording nothing per item") {
  for (const char* certificate : {"expired", "wronghost"}) {
    INFO(certificate);
    TempDir dir;
    FakeApiProcess api(dir, Fast({}), certificate);
    Job job(dir, api, Manifest(5));
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 5);
    CHECK(result.err.find("TLS certificate of 127.0.0.1") != std::string::npos);
    CHECK(job.Lines("failed.jsonl").empty());
    CHECK(Get(job.Status(), "queued") == 5);
  }
  // A CA that did not sign the server's certificate: the message says to set --ca-file.
  TempDir dir, other_dir;
  FakeApiProcess api(dir, Fast({}));
  FakeApiProcess other(other_dir, Fast({}));
  Job job(dir, api, Manifest(2));
  ProcessResult result = job.Run({"--ca-file", other.ca_file()});
  CHECK(result.exit_code == 5);
  CHECK(result.err.find("--ca-file") != std::string::npos);
}

TEST_CASE("trust: a base URL that is not the API stops with exit 5 instead of failing items") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({}));
  Job job(dir, api, Manifest(6));
  // The file host answers every /v1 request 404 with a body that is no API error.
  ProcessResult result =
      job.Run({"--base-url", "https://127.0.0.1:" + std::to_string(api.file_port())});
  INFO(result.err);
  CHECK(result.exit_code == 5);
  CHECK(result.err.find("is --base-url (api.base_url) the API?") != std::string::npos);
  CHECK(job.Lines("failed.jsonl").empty());
  CHECK(Get(job.Status(), "queued") == 6);
}

TEST_CASE("trust: an API that cannot be reached is said at once; the run stops, nothing paid") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({}));
  Job job(dir, api, Manifest(3));
  // A port nothing listens on: taken from the kernel, then let go.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const std::string closed = std::to_string(probe.local_endpoint().port());
  probe.close();
  ProcessResult result = job.Run({"--base-url", "https://127.0.0.1:" + closed});
  INFO(result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("submit not sent (connecting to 127.0.0.1:" + closed) != std::string::npos);
  CHECK(result.err.find("the API kept failing") != std::string::npos);
  CHECK(Get(job.Status(), "queued") == 3);
  CHECK(Get(job.Status(), "credits_spent") == 0);
  CHECK(Get(job.Status(), "possible_duplicate_submissions") == 0);
  CHECK(Stat(api.Stats(), "submissions") == 0);
}

TEST_CASE("trust: an allowed host that resolves to loopback is refused unless its network is") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({}));
  Job job(dir, api, Manifest(10), "limits: {max_in_flight: 1}\n");
  // The harness allows loopback; a user who allowed only the host name has not.
  std::vector<std::string> args = job.Args();
  for (auto it = args.begin(); it != args.end();) {
    it = *it == "--allow-download-network" ? args.erase(it, it + 2) : it + 1;
  }
  ProcessResult first =
      testing::RunProcess(args, {{"AIVIDEOAPI_API_KEY", job.key}}, std::chrono::seconds(120));
  INFO(first.err);
  CHECK(first.exit_code == 5);
  CHECK(first.err.find("is a loopback address") != std::string::npos);
  CHECK(first.err.find("download.allowed_networks") != std::string::npos);
  CHECK(Stat(api.Stats(), "images_served") == 0);
  CHECK(Stat(api.Stats(), "submissions") <= 4);
  CHECK(job.Lines("failed.jsonl").empty());
  // Allowing loopback: the paid images are downloaded, nothing is paid twice.
  ProcessResult second = job.Run();
  INFO(second.err);
  CHECK(second.exit_code == 0);
  CHECK(Stat(api.Stats(), "submissions") == 10);
  CHECK(Stat(api.Stats(), "duplicate_prompt_submissions") == 0);
  CHECK(job.Lines("metadata.jsonl").size() == 10);
}

TEST_CASE("trust: image hosts refused by policy stop after 3 in a row; the rerun downloads them") {
  TempDir dir;
  // URLs on the API's host but the file port: allowed only when host *and* port are.
  FakeApiProcess api(dir, Fast({"--file-host", "127.0.0.1"}));
  Job job(dir, api, Manifest(10), "limits: {max_in_flight: 1}\n");
  ProcessResult first = job.Run();
  INFO(first.err);
  CHECK(first.exit_code == 5);
  CHECK(first.err.find("--allow-download-host 127.0.0.1:" + std::to_string(api.file_port())) !=
        std::string::npos);
  const std::int64_t paid = Stat(api.Stats(), "submissions");
  CHECK(paid <= 4);
  CHECK(Stat(api.Stats(), "images_served") == 0);
  CHECK(job.Lines("failed.jsonl").empty());
  // Allowing the host: the paid images are downloaded, nothing is paid twice.
  ProcessResult second =
      job.Run({"--allow-download-host", "127.0.0.1:" + std::to_string(api.file_port())});
  INFO(second.err);
  CHECK(second.exit_code == 0);
  CHECK(Stat(api.Stats(), "submissions") == 10);
  CHECK(Stat(api.Stats(), "duplicate_prompt_submissions") == 0);
  CHECK(job.Lines("metadata.jsonl").size() == 10);
}

TEST_CASE("trust: images answered 404 are fetched again; --retry-failed downloads, never pays") {
  {
    // Not there for the first two requests (a CDN the file has not reached): fetched again.
    TempDir dir;
    FakeApiProcess api(dir, Fast({"--image-status", "404", "--image-status-times", "2"}));
    Job job(dir, api, Manifest(2));
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 0);
    CHECK(Stat(api.Stats(), "image_statuses_sent") == 4);
    CHECK(job.Lines("metadata.jsonl").size() == 2);
  }
  TempDir dir;
  // Not there for as many requests as the run makes (retry.max_attempts is 4): given up on.
  FakeApiProcess api(dir, Fast({"--image-status", "404", "--image-status-times", "4"}));
  Job job(dir, api, Manifest(2));
  ProcessResult first = job.Run();
  INFO(first.err);
  CHECK(first.exit_code == 1);
  auto failed = job.Lines("failed.jsonl");
  REQUIRE(failed.size() == 2);
  CHECK(failed[0].at("error_code") == "download_failed");
  CHECK(std::string(failed[0].at("message").as_string()).find("HTTP 404") != std::string::npos);
  CHECK(Stat(api.Stats(), "image_statuses_sent") == 8);
  // The tasks completed and were paid for: retried, their images are downloaded, not paid again.
  ProcessResult retried = job.Run({"--retry-failed"});
  INFO(retried.err);
  CHECK(retried.exit_code == 0);
  CHECK(retried.err.find("not paying again") != std::string::npos);
  CHECK(Stat(api.Stats(), "submissions") == 2);
  CHECK(job.Lines("metadata.jsonl").size() == 2);
  CHECK(job.Lines("failed.jsonl").empty());
  CHECK(job.Status().at("credits_spent").as_int64() == 32);
}

TEST_CASE(
    "trust: an image over download.max_bytes fails at once, saying so; raised, it is fetched") {
  TempDir dir;
  // Noise keeps the images from compressing: a few KB, over the smallest limit allowed.
  FakeApiProcess api(dir, Fast({"--image-noise", "255"}));
  Job job(dir, api, Manifest(2), "download: {max_bytes: 1024}\n");
  ProcessResult first = job.Run();
  INFO(first.err);
  CHECK(first.exit_code == 1);
  auto failed = job.Lines("failed.jsonl");
  REQUIRE(failed.size() == 2);
  CHECK(failed[0].at("error_code") == "image_too_large");
  CHECK(std::string(failed[0].at("message").as_string()).find("download.max_bytes (1024 bytes)") !=
        std::string::npos);
  CHECK(first.err.find("retrying") == std::string::npos);  // the same URL is as large again
  // The limit raised (a later key wins), the paid images are downloaded: nothing paid again.
  std::ofstream(job.config, std::ios::app) << "download: {max_bytes: 67108864}\n";
  ProcessResult retried = job.Run({"--retry-failed"});
  INFO(retried.err);
  CHECK(retried.exit_code == 0);
  CHECK(Stat(api.Stats(), "submissions") == 2);
  CHECK(job.Lines("metadata.jsonl").size() == 2);
}

TEST_CASE("trust: image hosts that redirect, or answer 404, stop submitting after 3 in a row") {
  SUBCASE("a redirect is never followed; the paid items stay for a later run") {
    TempDir dir;
    FakeApiProcess api(dir, Fast({"--image-status", "302"}));
    Job job(dir, api, Manifest(10), "limits: {max_in_flight: 1}\n");
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 5);
    CHECK(result.err.find("never followed") != std::string::npos);
    const std::int64_t paid = Stat(api.Stats(), "submissions");
    CHECK(paid <= 4);
    // One request an item: neither retried nor followed to where it pointed.
    CHECK(Stat(api.Stats(), "image_statuses_sent") == paid);
    CHECK(Stat(api.Stats(), "images_served") == 0);
    CHECK(job.Lines("failed.jsonl").empty());
  }
  SUBCASE("404 for every image: a few items fail, the rest are not paid for") {
    TempDir dir;
    FakeApiProcess api(dir, Fast({"--image-status", "404"}));
    Job job(dir, api, Manifest(10), "limits: {max_in_flight: 1}\n");
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 5);
    CHECK(result.err.find("3 items in a row: image URL answered HTTP 404") != std::string::npos);
    CHECK(Stat(api.Stats(), "submissions") <= 4);
    CHECK(job.Lines("failed.jsonl").size() >= 3);
  }
  SUBCASE("images sent gzip-encoded though asked for identity: refused at once, never stored") {
    TempDir dir;
    FakeApiProcess api(dir, Fast({"--image-content-encoding", "gzip"}));
    Job job(dir, api, Manifest(10), "limits: {max_in_flight: 1}\n");
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 5);
    CHECK(result.err.find("3 items in a row: the image host sent the image encoded "
                          "(Content-Encoding: gzip)") != std::string::npos);
    const std::int64_t paid = Stat(api.Stats(), "submissions");
    CHECK(paid <= 4);
    CHECK(Stat(api.Stats(), "images_served") == paid);  // one request an item, not retried
    const auto failed = job.Lines("failed.jsonl");
    REQUIRE(failed.size() >= 3);
    CHECK(failed[0].at("error_code") == "bad_image");
    CHECK(job.Lines("metadata.jsonl").empty());
  }
}

TEST_CASE("trust: a stop ends downloads still waiting for their image at once") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--p-image-hang", "1"}));
  Job job(dir, api, Manifest(4));
  testing::BackgroundProcess runner(job.Args(), {{"AIVIDEOAPI_API_KEY", kKey}},
                                    dir.File("runner.log"));
  // The images are asked for: they never come.
  REQUIRE(WaitForStat(api, "images_served", 4) == 4);
  const auto signalled = std::chrono::steady_clock::now();
  runner.Signal(SIGTERM);
  CHECK(runner.Wait(std::chrono::seconds(15)) == 3);
  // Not the 5 s grace that a body already streaming gets.
  CHECK(std::chrono::steady_clock::now() - signalled < std::chrono::seconds(2));
  CHECK(job.Status().at("in_flight").as_int64() +
            job.Status().at("completed_awaiting_download").as_int64() ==
        4);
}

TEST_CASE(
    "trust: submits never answered, then two stops: at once, possible duplicates, never "
    "'submitted'") {
  TempDir dir;
  // Every /v1 answer hangs: the submits are handled (charged) and never answered.
  FakeApiProcess api(dir, Fast({"--wire-fault", "hang", "--p-wire-fault", "1"}));
  Job job(dir, api, Manifest(3), "limits: {max_in_flight: 3}\n");
  testing::BackgroundProcess runner(job.Args(), {{"AIVIDEOAPI_API_KEY", kKey}},
                                    dir.File("runner.log"));
  // The run's first submit goes alone (SubmitGate); the two others wait for its answer.
  REQUIRE(WaitForStat(api, "submissions", 1) == 1);
  // The first SIGTERM would wait 5 s for the answer; a second one (Ctrl-C pressed again) ends
  // the wait at once.
  const auto signalled = std::chrono::steady_clock::now();
  runner.Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  runner.Signal(SIGTERM);
  CHECK(runner.Wait(std::chrono::seconds(20)) == 3);
  CHECK(std::chrono::steady_clock::now() - signalled < std::chrono::seconds(2));
  // Its outcome is unknown: counted as spent once, a possible duplicate, queued again; the two
  // never sent cost nothing. (GCC 12 once ran the await of both branches of a ?: here and
  // recorded each item as submitted, with an empty task id and its credits counted twice.)
  const json::object status = job.Status();
  CHECK(Stat(api.Stats(), "submissions") == 1);
  CHECK(Get(status, "submitted") == 0);
  CHECK(Get(status, "in_flight") == 0);
  CHECK(Get(status, "queued") == 3);
  CHECK(Get(status, "possible_duplicate_submissions") == 1);
  CHECK(Get(status, "credits_spent") == 16);
  CHECK(Get(status, "credits_reserved") == 0);
  std::ifstream log(dir.File("runner.log"));
  std::stringstream text;
  text << log.rdbuf();
  CHECK(text.str().find("its callback named task") == std::string::npos);
  CHECK(text.str().find("SIGTERM again: not waiting") != std::string::npos);
}

TEST_CASE("trust: a long Retry-After is said, with when requests resume; a stop ends the wait") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--p-429", "1", "--retry-after-s", "3600"}));
  Job job(dir, api, Manifest(2));
  const std::string log = dir.File("runner.log");
  testing::BackgroundProcess runner(job.Args(), {{"AIVIDEOAPI_API_KEY", kKey}}, log);
  auto logged = [&] {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  for (int i = 0; i < 250 && logged().find("waits until") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string said = logged();
  INFO(said);
  CHECK(said.find("429 rate_limit_exceeded with Retry-After: 3600 s; every API request waits "
                  "until 20") != std::string::npos);
  const auto signalled = std::chrono::steady_clock::now();
  runner.Signal(SIGTERM);
  CHECK(runner.Wait(std::chrono::seconds(15)) == 3);
  CHECK(std::chrono::steady_clock::now() - signalled < std::chrono::seconds(2));
  CHECK(Stat(api.Stats(), "submissions") == 0);
}

// --- The key and what the server sends -------------------------------------------------------

TEST_CASE("trust: a server that echoes the key leaks it nowhere: stderr, journal, output files") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--echo-authorization", "--reject-substring", "prompt 1",
                                "--p-poll-5xx", "0.3", "--p-submit-5xx", "0.3"}));
  // Enough attempts that 30% of 5xx never adds up to "the API is down" (6 in a row: 1 run in
  // ~250 stopped with exit 3); this test is about where the echoed key goes.
  Job job(dir, api, Manifest(6), "retry: {max_attempts: 12}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 1);
  REQUIRE(job.Lines("failed.jsonl").size() == 1);
  CHECK(result.err.find("[redacted]") != std::string::npos);  // the echo was there, scrubbed
  CHECK(result.err.find("leak-canary") == std::string::npos);
  CHECK(result.out.find("leak-canary") == std::string::npos);
  for (const auto& entry : stdfs::recursive_directory_iterator(job.out)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    CHECK_MESSAGE(bytes.str().find("leak-canary") == std::string::npos, entry.path().string());
  }
}

TEST_CASE("trust: a server that echoes the key as a task id gets no file to write it to") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--p-bad-submit-body", "0.5", "--bad-submit-body", "key-id"}));
  Job job(dir, api, Manifest(4), "retry: {max_attempts: 12}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  // Each echo is a lost answer: submitted again, counted (5: five in a row stopped submitting).
  CHECK((result.exit_code == 0 || result.exit_code == 5));
  CHECK(Stat(api.Stats(), "bad_submit_bodies") > 0);
  CHECK(result.err.find("leak-canary") == std::string::npos);
  for (const auto& entry : stdfs::recursive_directory_iterator(job.out)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    CHECK_MESSAGE(bytes.str().find("leak-canary") == std::string::npos, entry.path().string());
  }
}

TEST_CASE("trust: a hostile wire on /v1 answers is retried or stopped on, never overspent") {
  // Each kind breaks a fifth of the API's answers after the API handled (and charged) the
  // request: the answer is lost, late, oversized or malformed. A redirect comes from something
  // in front of the API, so it is sent for every request, none handled.
  struct Case {
    const char* kind;
    const char* probability;  // or "every N": every Nth answer exactly
    int exit_code;
  };
  for (const Case& c :
       {Case{"hang", "0.2", 0}, Case{"trickle", "0.2", 0}, Case{"huge-headers", "0.2", 0},
        Case{"huge-body", "0.2", 0}, Case{"length-long", "0.2", 0}, Case{"length-short", "0.2", 0},
        Case{"bad-chunked", "0.2", 0}, Case{"no-keepalive", "1", 0}, Case{"reset", "0.2", 0},
        Case{"reset", "every 4", 0}, Case{"redirect", "1", 5}, Case{"interim", "1", 0},
        Case{"bare-status", "1", 0}, Case{"switching-protocols", "every 3", 0},
        Case{"gateway-timeout", "every 3", 0}}) {
    const std::string kind = c.kind;
    CAPTURE(kind);
    TempDir dir;
    const std::string probability = c.probability;
    CAPTURE(probability);
    const bool every = probability.rfind("every ", 0) == 0;
    FakeApiProcess api(dir, Fast({"--wire-fault", c.kind, "--seed", "3",
                                  every ? "--wire-fault-every" : "--p-wire-fault",
                                  every ? probability.substr(6) : probability}));
    Job job(dir, api, Manifest(6),
            "retry: {max_attempts: 12, base_delay_s: 0.02, max_delay_s: 0.1}\n"
            "timeouts: {connect_s: 5, request_s: 2, download_s: 20}\n"
            "limits: {budget_credits: 400}\n");
    // Everything in the test's directory but the output directory, before and after.
    auto outside = [&] {
      std::set<std::string> paths;
      for (const auto& entry : stdfs::recursive_directory_iterator(dir.path())) {
        const std::string path = entry.path().string();
        if (path.rfind(job.out, 0) != 0) paths.insert(path);
      }
      return paths;
    };
    const std::set<std::string> before = outside();
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == c.exit_code);
    CHECK(outside() == before);  // nothing written outside the output directory
    const json::object stats = api.Stats();
    CHECK(Stat(stats, "wire_faults") >= 1);
    CHECK(Stat(stats, "credits_charged") <= 400);
    const json::object status = job.Status();
    // Every credit the API charged is counted, whatever happened to its answer.
    CHECK(Get(status, "credits_spent") + Get(status, "credits_reserved") >=
          Stat(stats, "credits_charged"));
    if (kind == "interim" || kind == "bare-status") {
      // Interim answers (then the real one) are valid HTTP, a status line without a reason
      // phrase is what every other client reads: each item is paid for once.
      CHECK(Stat(stats, "submissions") == 6);
      CHECK(Get(status, "possible_duplicate_submissions") == 0);
    }
    if (kind == "switching-protocols" || kind == "gateway-timeout") {
      // A 101, or a CDN's HTML 524, in place of a submit's answer, after the API handled (and
      // charged) it: no task id can be known, so its credits stay counted (above) and the item's
      // next submission is reported as a possible duplicate; a poll's 101 or 524 is retried, as
      // is an image's 101.
      CHECK(Get(status, "possible_duplicate_submissions") >= 1);
      CHECK(Get(status, "possible_duplicate_submissions") + 6 >= Stat(stats, "submissions"));
    }
    if (c.exit_code == 0) {
      CHECK(job.Lines("metadata.jsonl").size() == 6);
    } else {
      CHECK(Stat(stats, "submissions") == 0);
      CHECK(result.err.find("302") != std::string::npos);
    }
  }
}

TEST_CASE("trust: image bodies trickling a byte a second are cut off and fetched again") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--p-trickle", "0.3", "--seed", "5"}));
  Job job(dir, api, Manifest(6),
          "timeouts: {connect_s: 5, request_s: 10, download_s: 60, download_stall_s: 2}\n"
          "retry: {max_attempts: 12, base_delay_s: 0.02, max_delay_s: 0.1}\n");
  const auto start = std::chrono::steady_clock::now();
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 0);
  CHECK(Stat(api.Stats(), "image_faults") >= 1);
  CHECK(result.err.find("slower than download.min_bytes_per_s") != std::string::npos);
  CHECK(job.Lines("metadata.jsonl").size() == 6);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
}

TEST_CASE("trust: published files follow the umask, state stays the owner's alone") {
  struct Case {
    const char* umask;
    stdfs::perms published;
  };
  using P = stdfs::perms;
  for (const Case& c :
       {Case{"0022", P::owner_read | P::owner_write | P::group_read | P::others_read},
        Case{"002",
             P::owner_read | P::owner_write | P::group_read | P::group_write | P::others_read},
        Case{"0077", P::owner_read | P::owner_write}}) {
    const std::string umask = c.umask;
    CAPTURE(umask);
    TempDir dir;
    FakeApiProcess api(dir, Fast({}));
    Job job(dir, api, Manifest(2), "umask: \"" + umask + "\"\n");
    ProcessResult result = job.Run();
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    auto mode = [&](const std::string& name) {
      return stdfs::status(job.out + "/" + name).permissions() & P::all;
    };
    CHECK(mode("t0.jpg") == c.published);
    CHECK(mode("t1.png") == c.published);
    CHECK(mode("metadata.jsonl") == c.published);
    CHECK(mode(".nanobatch/journal.log") == (P::owner_read | P::owner_write));
    CHECK(mode(".nanobatch") == P::owner_all);
  }
  // Not an octal umask: a config error naming the key.
  TempDir dir;
  FakeApiProcess api(dir, Fast({}));
  Job job(dir, api, Manifest(1), "umask: \"0999\"\n");
  ProcessResult bad = job.Run();
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("umask: \"0999\" is not an octal umask") != std::string::npos);
}

TEST_CASE("trust: an image short of its end is never kept; the item fails with bad_image") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--drop-image-tail", "50"}));
  Job job(dir, api, Manifest(2));
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 1);
  auto failed = job.Lines("failed.jsonl");
  REQUIRE(failed.size() == 2);
  CHECK(failed[0].at("error_code") == "bad_image");
  CHECK_FALSE(stdfs::exists(job.out + "/t0.jpg"));
  CHECK_FALSE(stdfs::exists(job.out + "/t1.png"));
  CHECK(Stat(api.Stats(), "submissions") == 2);
}

// --- Files, local input and the process -------------------------------------------------------

TEST_CASE("trust: a link planted at .nanobatch/tmp is refused; nothing outside is deleted") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({}));
  Job job(dir, api, Manifest(2));
  stdfs::create_directories(dir.File("victim"));
  dir.Write("victim/precious.txt", "keep me");
  stdfs::create_directories(job.out + "/.nanobatch");
  stdfs::create_directory_symlink(dir.File("victim"), job.out + "/.nanobatch/tmp");
  ProcessResult result = job.Run();
  CHECK(result.exit_code == 2);
  CHECK(result.err.find("symbolic link") != std::string::npos);
  CHECK(dir.Read("victim/precious.txt") == "keep me");
  CHECK(Stat(api.Stats(), "submissions") == 0);
}

TEST_CASE("trust: started with stdout and stderr closed, the journal stays sound") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({}));
  Job job(dir, api, Manifest(3));
  std::string command = "exec 1>&- 2>&-";
  command += " " + std::string(kBinary);
  for (const std::string& arg : api.RunnerArgs(job.config, job.manifest, job.out)) {
    if (arg == kBinary) continue;
    command += " '" + arg + "'";
  }
  ProcessResult closed =
      testing::RunProcess({"/bin/sh", "-c", command}, {{"AIVIDEOAPI_API_KEY", kKey}});
  CHECK(closed.exit_code == 0);
  ProcessResult again = job.Run();
  INFO(again.err);
  CHECK(again.exit_code == 0);
  CHECK(again.err.find("corrupt") == std::string::npos);
  CHECK(Get(job.Status(), "done") == 3);
}

TEST_CASE("trust: SIGHUP does not stop a run") {
  TempDir dir;
  FakeApiProcess api(dir, {"--api-key", kKey, "--pending-ms", "5", "--processing-ms", "1500"});
  Job job(dir, api, Manifest(3));
  std::vector<std::string> args = api.RunnerArgs(job.config, job.manifest, job.out);
  testing::BackgroundProcess runner(args, {{"AIVIDEOAPI_API_KEY", kKey}}, dir.File("runner.log"));
  // Once during start-up (ignored from main on), once with the event loop up (logged).
  REQUIRE(testing::WaitForFile(job.out + "/.nanobatch/journal.log", std::chrono::seconds(20)));
  runner.Signal(SIGHUP);
  for (int i = 0; i < 1000 && dir.Read("runner.log").find("credit balance") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // bounded: 20 s at most
  }
  REQUIRE(dir.Read("runner.log").find("credit balance") != std::string::npos);
  runner.Signal(SIGHUP);
  CHECK(runner.Wait(std::chrono::seconds(60)) == 0);
  CHECK(dir.Read("runner.log").find("SIGHUP received") != std::string::npos);
}

TEST_CASE("trust: bad local input is a usage error (2) that names the problem") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({}));
  Job job(dir, api, Manifest(1));
  ProcessResult budget = job.Run({"--budget-credits", "-5"});
  CHECK(budget.exit_code == 2);
  CHECK(budget.err.find("--budget-credits") != std::string::npos);
  ProcessResult timeout = job.Run({"--rate", "1e308"});
  CHECK(timeout.exit_code == 2);
  const std::string file = dir.Write("a-file", "x");
  ProcessResult out_file = testing::RunProcess(
      {kBinary, "run", "--manifest", job.manifest, "--out", file}, {{"AIVIDEOAPI_API_KEY", kKey}});
  CHECK(out_file.exit_code == 2);
  CHECK(out_file.err.find("is not a directory") != std::string::npos);
  ProcessResult zero =
      testing::RunProcess({kBinary, "run", "--manifest", "/dev/zero", "--out", dir.File("o")},
                          {{"AIVIDEOAPI_API_KEY", kKey}});
  CHECK(zero.exit_code == 2);
  CHECK(zero.err.find("not a regular file") != std::string::npos);
  stdfs::create_directories(dir.File("x.yaml"));
  ProcessResult directory = testing::RunProcess({kBinary, "validate", dir.File("x.yaml")});
  CHECK(directory.exit_code == 2);
  CHECK(directory.err.find("is a directory") != std::string::npos);
  ProcessResult config =
      testing::RunProcess({kBinary, "run", "--config", dir.File("missing.yaml")});
  CHECK(config.exit_code == 2);
  CHECK(config.err.find("No such file or directory") != std::string::npos);
  CHECK(config.err.find("is required") == std::string::npos);  // no follow-on errors
  // A CA file that is no certificate: a configuration error naming the key, before anything.
  ProcessResult bad_ca = job.Run({"--ca-file", dir.Write("not-a-ca.pem", "hello\n")});
  CHECK(bad_ca.exit_code == 2);
  CHECK(bad_ca.err.find("api.ca_file: cannot load the CA file") != std::string::npos);
  CHECK(bad_ca.err.find("internal error") == std::string::npos);
  ProcessResult validate = testing::RunProcess({kBinary, "validate", job.manifest, "--config",
                                                dir.Write("bad.yaml", "limits: {rate: 0}\n")});
  CHECK(validate.exit_code == 2);
  CHECK(validate.err.find("limits.rate") != std::string::npos);
}

TEST_CASE("trust: a manifest edited during the run stops it; the edited item is never submitted") {
  TempDir dir;
  FakeApiProcess api(dir, {"--api-key", kKey, "--pending-ms", "100", "--processing-ms", "300"});
  // Items are read again from the file when their turn comes: two at a time here.
  Job job(dir, api, Manifest(12), "limits: {max_in_flight: 2}\n");
  testing::BackgroundProcess runner(job.Args(), {{"AIVIDEOAPI_API_KEY", kKey}},
                                    dir.File("runner.log"));
  for (int i = 0; i < 500 && Stat(api.Stats(), "submissions") == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(Stat(api.Stats(), "submissions") >= 1);
  // The last item's prompt changes in place (same length): "trust prompt 11" -> "TRUST PROMPT 11".
  std::string edited = Manifest(12);
  edited.replace(edited.rfind("trust prompt 11"), 15, "TRUST PROMPT 11");
  dir.Write("manifest.jsonl", edited);
  const int exit_code = runner.Wait(std::chrono::seconds(60));
  std::ifstream log(dir.File("runner.log"));
  const std::string err((std::istreambuf_iterator<char>(log)), {});
  INFO(err);
  CHECK(exit_code == 5);
  CHECK(err.find("the manifest changed since it was validated") != std::string::npos);
  const json::object stats = api.Stats(true);
  const json::object& by_prompt = stats.at("submissions_by_prompt").as_object();
  CHECK_FALSE(by_prompt.contains("TRUST PROMPT 11"));
  CHECK(Stat(stats, "submissions") < 12);
  // The next run validates the new version and finishes it.
  ProcessResult again = job.Run();
  CHECK(again.exit_code == 0);
  CHECK(api.Stats(true).at("submissions_by_prompt").as_object().contains("TRUST PROMPT 11"));
}

TEST_CASE("trust: log formats: syslog priorities for the journal, one JSON object a line, no key") {
  TempDir dir;
  FakeApiProcess api(dir, Fast({"--echo-authorization", "--reject-substring", "trust prompt 1"}));
  {
    Job job(dir, api, Manifest(2), "log: {format: journal}\n");
    ProcessResult result = job.Run();
    CHECK(result.exit_code == 1);  // one item refused (400): failed for good
    CHECK(result.err.find("<6>run: 2 items") != std::string::npos);
    CHECK(result.err.find("<4>item t1 failed for good") != std::string::npos);
    CHECK(result.err.find("INFO") == std::string::npos);  // no duplicate timestamp or level
    CHECK(result.err.find(kKey) == std::string::npos);
  }
  TempDir other;
  FakeApiProcess api2(other, Fast({"--echo-authorization"}));
  Job job(other, api2, Manifest(2), "log: {format: json}\n");
  ProcessResult result = job.Run();
  CHECK(result.exit_code == 0);
  std::istringstream lines(result.err);
  std::string line;
  int parsed = 0;
  while (std::getline(lines, line)) {
    json::object object = json::parse(line).as_object();
    CHECK(object.contains("time"));
    CHECK(object.contains("level"));
    ++parsed;
  }
  CHECK(parsed >= 3);
  CHECK(result.err.find(kKey) == std::string::npos);
}

}  // namespace
}  // namespace nanobatch::engine
