// `nanobatch run` end to end: the real binary against the project's simulator over real TLS on
// loopback, checked from both sides (the runner's files and exit code, the server's own counts).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "runner/download/image_file.h"
#include "runner/testing/fake_api_process.h"
#include "runner/testing/local_sockets.h"
#include "runner/testing/runner_job.h"
#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::engine {
namespace {

namespace json = boost::json;
using testing::FakeApiProcess;
using testing::ProcessResult;
using testing::Stat;
using testing::TempDir;

constexpr const char* kBinary = testing::kNanobatchBinary;

std::string Manifest(int count, const std::string& prefix = "p") {
  static const char* kResolutions[] = {"1K", "2K", "4K"};
  static const char* kRatios[] = {"1:1", "16:9", "9:16", "3:2", "auto"};
  static const char* kFormats[] = {"png", "jpg"};
  std::string out;
  for (int i = 0; i < count; ++i) {
    out += "{\"id\":\"" + prefix + std::to_string(i) + "\",\"prompt\":\"" + prefix + " prompt " +
           std::to_string(i) + "\",\"resolution\":\"" + kResolutions[i % 3] +
           "\",\"aspect_ratio\":\"" + kRatios[i % 5] + "\",\"output_format\":\"" + kFormats[i % 2] +
           "\"}\n";
  }
  return out;
}

using Job = testing::FastJob;

using download::FileSha256;

bool NoTempFiles(const std::string& out) {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".part") != std::string::npos || name.find(".tmp") != std::string::npos)
      return false;
  }
  return true;
}

TEST_CASE("engine: happy path, mixed resolutions, ratios and formats, two images per task") {
  TempDir dir;
  FakeApiProcess api(dir,
                     {"--pending-ms", "20", "--processing-ms", "40", "--images-per-task", "2"});
  Job job(dir, api, Manifest(12));
  ProcessResult result = job.Run();
  INFO(result.err);
  REQUIRE(result.exit_code == 0);

  auto metadata = job.Lines("metadata.jsonl");
  CHECK(metadata.size() == 24);
  json::object stats = api.Stats(/*detail=*/true);
  const json::object& served = stats.at("image_sha256").as_object();
  for (const json::object& line : metadata) {
    const std::string file(line.at("file_name").as_string());
    const std::string path = job.out + "/" + file;
    REQUIRE(std::filesystem::exists(path));
    CHECK(FileSha256(path) == line.at("sha256").as_string());
    CHECK(static_cast<std::int64_t>(std::filesystem::file_size(path)) ==
          line.at("bytes").as_int64());
    for (const char* key :
         {"id", "prompt", "task_id", "resolution", "aspect_ratio", "output_format", "credits"}) {
      CHECK_MESSAGE(line.contains(key), key);
    }
    // The extension follows the bytes: the simulator sends what output_format asked for.
    CHECK(file.substr(file.size() - 3) == line.at("output_format").as_string());
  }
  // <id>.<ext> for urls[0], <id>-1.<ext> for urls[1].
  CHECK(std::filesystem::exists(job.out + "/p0.png"));
  CHECK(std::filesystem::exists(job.out + "/p0-1.png"));
  CHECK(std::filesystem::exists(job.out + "/p1.jpg"));
  // Every file is byte-for-byte what the server served.
  std::size_t matched = 0;
  for (const auto& [path, sha] : served) {
    for (const json::object& line : metadata) matched += line.at("sha256") == sha;
  }
  CHECK(matched == 24);
  CHECK(Stat(stats, "submissions") == 12);
  CHECK(Stat(stats, "credits_charged") == 4 * 16 + 4 * 24 + 4 * 36);
  CHECK(job.Lines("failed.jsonl").empty());
  CHECK(NoTempFiles(job.out));

  json::object status = job.Status();
  CHECK(status.at("total").as_int64() == 12);
  CHECK(status.at("done").as_int64() == 12);
  CHECK(status.at("credits_spent").as_int64() == 304);
  CHECK(status.at("possible_duplicate_submissions").as_int64() == 0);

  // Running the finished manifest again submits nothing.
  ProcessResult again = job.Run();
  CHECK(again.exit_code == 0);
  CHECK(Stat(api.Stats(), "submissions") == 12);
}

TEST_CASE("engine: failed tasks are resubmitted up to max_task_attempts, then failed.jsonl") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "5", "--processing-ms", "5", "--p-task-fail", "1"});
  Job job(dir, api, Manifest(3), "retry: {max_task_attempts: 3}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 1);
  auto failed = job.Lines("failed.jsonl");
  REQUIRE(failed.size() == 3);
  for (const json::object& line : failed) {
    CHECK(line.at("error_code") == "upstream_error");
    CHECK(line.at("attempts").as_int64() == 3);
    CHECK(line.contains("message"));
  }
  json::object stats = api.Stats();
  CHECK(Stat(stats, "submissions") == 9);
  CHECK(Stat(stats, "credits_net") == 0);  // every failed task was refunded
  CHECK(job.Status().at("credits_spent").as_int64() == 0);
  // The report counts the refunds and the failures by code, as the server did.
  CHECK(result.err.find("report: 0 done, 3 failed (upstream_error 3) of 3; credits 0 spent, " +
                        std::to_string(Stat(stats, "credits_refunded")) + " refunded this run") !=
        std::string::npos);

  // --retry-failed gives them a fresh set of attempts (the server still fails them).
  ProcessResult retried = job.Run({"--retry-failed"});
  CHECK(retried.exit_code == 1);
  CHECK(Stat(api.Stats(), "submissions") == 18);
  // Without the flag, failed items are left alone.
  CHECK(job.Run().exit_code == 1);
  CHECK(Stat(api.Stats(), "submissions") == 18);
}

TEST_CASE("engine: 401 and 403 stop the run at once with exit 4, nothing submitted") {
  {
    TempDir dir;
    FakeApiProcess api(dir);
    Job job(dir, api, Manifest(5));
    ProcessResult result = job.Run({}, "sk-wrong-key");
    CHECK(result.exit_code == 4);
    CHECK(result.err.find("invalid_api_key") != std::string::npos);
    CHECK(result.err.find("sk-wrong-key") == std::string::npos);  // the key is never logged
    CHECK(Stat(api.Stats(), "submissions") == 0);
  }
  {
    TempDir dir;
    FakeApiProcess api(dir, {"--deny-all-ips"});
    Job job(dir, api, Manifest(5));
    ProcessResult result = job.Run();
    CHECK(result.exit_code == 4);
    CHECK(result.err.find("ip_not_allowed") != std::string::npos);
    CHECK(Stat(api.Stats(), "submissions") == 0);
  }
}

TEST_CASE("engine: 402 insufficient_credits stops submitting, finishes in flight, exit 3") {
  TempDir dir;
  FakeApiProcess api(dir, {"--credits", "40", "--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api,
          "{\"id\":\"a\",\"prompt\":\"a\"}\n{\"id\":\"b\",\"prompt\":\"b\"}\n"
          "{\"id\":\"c\",\"prompt\":\"c\"}\n{\"id\":\"d\",\"prompt\":\"d\"}\n",
          "limits: {max_in_flight: 1}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("insufficient credits") != std::string::npos);
  CHECK(job.Lines("metadata.jsonl").size() == 2);
  CHECK(job.Lines("failed.jsonl").empty());  // not the items' fault: they stay queued
  json::object status = job.Status();
  CHECK(status.at("done").as_int64() == 2);
  CHECK(status.at("queued").as_int64() == 2);
  CHECK(status.at("credits_reserved").as_int64() == 0);
}

TEST_CASE("engine: 400 fails the item for good (exit 1); model_not_found stops the run (exit 5)") {
  TempDir dir;
  FakeApiProcess api(
      dir, {"--reject-substring", "forbidden", "--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api,
          "{\"id\":\"ok\",\"prompt\":\"fine\"}\n{\"id\":\"bad\",\"prompt\":\"forbidden\"}\n");
  ProcessResult result = job.Run();
  CHECK(result.exit_code == 1);
  auto failed = job.Lines("failed.jsonl");
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].at("id") == "bad");
  CHECK(failed[0].at("error_code") == "invalid_request");
  CHECK(job.Lines("metadata.jsonl").size() == 1);

  // A model that does not exist is the config's fault: the run stops at once with exit 5 and a
  // message naming the key; no item is failed (they stay queued for the corrected config).
  TempDir other;
  FakeApiProcess api2(other);
  Job wrong_model(other, api2, Manifest(40),
                  "api: {model: nano-banana-9}\nlimits: {max_in_flight: 2}\n");
  ProcessResult model = wrong_model.Run();
  CHECK(model.exit_code == 5);
  CHECK(model.err.find("check api.model") != std::string::npos);
  CHECK(wrong_model.Lines("failed.jsonl").empty());
  CHECK(wrong_model.Status().at("queued").as_int64() == 40);
  CHECK(Stat(api2.Stats(), "credits_charged") == 0);
}

TEST_CASE("engine: an item refused 503 while others are accepted waits alone; an outage stops") {
  // 503 upstream_error is also the API's answer to a sensitive prompt: retried, but when other
  // submits get through meanwhile it is the item's, which alone is left queued for the next run
  // (exit 3) instead of stopping every item as an outage would.
  TempDir dir;
  {
    FakeApiProcess api(
        dir, {"--sensitive-substring", "flagged", "--pending-ms", "20", "--processing-ms", "20"});
    std::string manifest;
    for (int i = 0; i < 30; ++i) {
      manifest += "{\"id\":\"s" + std::to_string(i) + "\",\"prompt\":\"" +
                  (i == 0 || i == 10 ? "flagged " : "fine ") + std::to_string(i) + "\"}\n";
    }
    Job job(dir, api, manifest, "limits: {max_in_flight: 4}\n");
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 3);
    CHECK(result.err.find("item s0: the API refused it 8 times (upstream_error: ") !=
          std::string::npos);
    CHECK(result.err.find("left queued for the next run") != std::string::npos);
    CHECK(result.err.find("no more submissions") == std::string::npos);
    CHECK(job.Lines("failed.jsonl").empty());
    CHECK(job.Lines("metadata.jsonl").size() == 28);
    CHECK(job.Status().at("queued").as_int64() == 2);
    CHECK(Stat(api.Stats(), "credits_charged") == 28 * 16);
  }
  // Every submit refused so: an outage, not 30 failed items. Submitting stops, the items stay
  // queued for the run after it.
  TempDir outage_dir;
  FakeApiProcess outage(outage_dir, {"--sensitive-substring", "prompt"});
  Job job(outage_dir, outage, Manifest(30), "limits: {max_in_flight: 4}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("the API kept failing") != std::string::npos);
  CHECK(job.Lines("failed.jsonl").empty());
  CHECK(job.Status().at("queued").as_int64() == 30);
}

TEST_CASE("engine: an API that takes connections and never answers them stops the run (exit 3)") {
  // A black-holed server: every TLS handshake waits out timeouts.connect_s. The submits that
  // cannot be sent are tried one at a time (SubmitGate), each counting for every item: before,
  // each of the 30 items counted its own 8 attempts, one handshake at a time, for 240 s.
  TempDir dir;
  FakeApiProcess api(dir);
  testing::SilentListener silent;
  Job job(dir, api, Manifest(30), "timeouts: {connect_s: 1}\n");
  const auto start = std::chrono::steady_clock::now();
  ProcessResult result =
      job.Run({"--base-url", "https://127.0.0.1:" + std::to_string(silent.port())});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("8 submits in a row, tried one at a time, could not be sent: TLS "
                        "handshake with 127.0.0.1:") != std::string::npos);
  CHECK(seconds < 60);  // about 8 connect timeouts and their backoffs
  CHECK(job.Status().at("queued").as_int64() == 30);
  CHECK(job.Status().at("credits_spent").as_int64() == 0);
}

TEST_CASE("engine: an image host delivering nothing stops the run (exit 3); the next downloads") {
  // Every image is answered 503 to its first 8 requests (retry.max_attempts): the first image's
  // eighth failure, with no image through meanwhile, stops the run instead of every paid task
  // waiting out its attempts while more tasks are paid for. The run after it downloads the
  // images of the paid tasks without paying for them again.
  TempDir dir;
  FakeApiProcess api(dir, {"--image-status", "503", "--image-status-times", "8", "--pending-ms",
                           "5", "--processing-ms", "5"});
  Job job(dir, api, Manifest(40, "h"), "limits: {max_in_flight: 4}\n");
  ProcessResult stopped = job.Run();
  INFO(stopped.err);
  CHECK(stopped.exit_code == 3);
  CHECK(stopped.err.find("the image host kept failing") != std::string::npos);
  CHECK(stopped.err.find("8 downloads of https://") != std::string::npos);
  const std::int64_t paid = Stat(api.Stats(), "submissions");
  CHECK(paid < 40);
  CHECK(job.Status().at("completed_awaiting_download").as_int64() > 0);

  // The host delivers again (here: every image from its ninth request on, within the twelve
  // attempts this run allows).
  Job resumed_job(dir, api, Manifest(40, "h"),
                  "limits: {max_in_flight: 4}\nretry: {max_attempts: 12}\n");
  ProcessResult resumed = resumed_job.Run();
  INFO(resumed.err);
  CHECK(resumed.exit_code == 0);
  CHECK(job.Lines("metadata.jsonl").size() == 40);
  CHECK(Stat(api.Stats(), "submissions") == 40);  // the paid ones were not paid again
}

TEST_CASE("engine: tasks that never finish stop the submits after 20 past their deadline") {
  // A hung model: every task stays pending. Each task past polling.task_deadline_s stays
  // submitted (never paid again), and frees its slot; before, each freed slot paid for another
  // task that hung too, the whole manifest long (here all 60).
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "100000000"});
  Job job(dir, api, Manifest(60, "k"),
          "limits: {max_in_flight: 4}\npolling: {first_poll_s: 0.05, max_interval_s: 0.2, "
          "task_deadline_s: 0.5}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("the API's tasks do not finish") != std::string::npos);
  CHECK(result.err.find("20 tasks in a row") != std::string::npos);
  const std::int64_t paid = Stat(api.Stats(), "submissions");
  CHECK(paid >= 20);
  CHECK(paid <= 24);  // the 20, and those already out when the 20th expired
  json::object status = job.Status();
  CHECK(status.at("in_flight").as_int64() == paid);
  CHECK(status.at("queued").as_int64() == 60 - paid);
  CHECK(status.at("possible_duplicate_submissions").as_int64() == 0);
}

TEST_CASE("engine: a task whose polls fail while others' are answered stays paid; the rest go on") {
  // The task of "stuck" is charged and runs, but the API answers its every poll 500. Its item
  // holds its slot until polling.task_deadline_s (it may still complete: never paid again),
  // while the other 39 are submitted and finished; before, its failed polls stopped submitting.
  TempDir dir;
  FakeApiProcess api(
      dir, {"--broken-poll-substring", "stuck", "--pending-ms", "30", "--processing-ms", "30"});
  std::string manifest = "{\"id\":\"b0\",\"prompt\":\"stuck\"}\n";
  for (int i = 1; i < 40; ++i) {
    manifest +=
        "{\"id\":\"b" + std::to_string(i) + "\",\"prompt\":\"fine " + std::to_string(i) + "\"}\n";
  }
  Job job(dir, api, manifest,
          "limits: {max_in_flight: 4}\npolling: {first_poll_s: 0.05, max_interval_s: 0.3, "
          "task_deadline_s: 6}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("polling task ") != std::string::npos);
  CHECK(result.err.find("while other tasks' polls are answered") != std::string::npos);
  json::object status = job.Status();
  CHECK(status.at("done").as_int64() == 39);
  CHECK(status.at("queued").as_int64() == 0);
  CHECK(status.at("in_flight").as_int64() == 1);
  CHECK(status.at("possible_duplicate_submissions").as_int64() == 0);
  CHECK(Stat(api.Stats(), "submissions") == 40);
}

TEST_CASE("engine: 400 for item after item stops the job (exit 5); --retry-failed once fixed") {
  // Every prompt holds "prompt": the API refuses every submit, as it would a request the config
  // makes wrong for every item. Three refusals in a row stop submitting, not 40 failed items.
  TempDir dir;
  {
    FakeApiProcess refusing(
        dir, {"--reject-substring", "prompt", "--pending-ms", "5", "--processing-ms", "5"});
    Job job(dir, refusing, Manifest(40), "limits: {max_in_flight: 1}\n");
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 5);
    CHECK(result.err.find("3 items in a row: invalid_request") != std::string::npos);
    CHECK(result.err.find("--retry-failed") != std::string::npos);
    CHECK(job.Lines("failed.jsonl").size() == 3);
    CHECK(job.Status().at("queued").as_int64() == 37);
    CHECK(Stat(refusing.Stats(), "credits_charged") == 0);
    // status says how the run ended, the case included (report.json has both).
    const json::object last_run = job.Status().at("last_run").as_object();
    CHECK(last_run.at("exit_code").as_int64() == 5);
    CHECK(std::string(last_run.at("stop_detail").as_string()).starts_with("3 items in a row"));
    ProcessResult status = testing::RunProcess({kBinary, "status", "--out", job.out});
    CHECK(status.out.find("last run:    ended ") != std::string::npos);
    CHECK(status.out.find(", exit 5: the API refuses the submits as invalid") != std::string::npos);
  }
  // One success between refusals ends the streak: the refused items fail one by one.
  {
    TempDir mixed_dir;
    FakeApiProcess mixed(
        mixed_dir, {"--reject-substring", "bad", "--pending-ms", "5", "--processing-ms", "5"});
    std::string manifest;
    for (int i = 0; i < 12; ++i) {
      const std::string id = (i % 3 == 2 ? "ok" : "bad") + std::to_string(i);
      manifest += "{\"id\":\"" + id + "\",\"prompt\":\"" + id + "\"}\n";
    }
    Job job(mixed_dir, mixed, manifest, "limits: {max_in_flight: 1}\n");
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 1);
    CHECK(job.Lines("failed.jsonl").size() == 8);
    CHECK(job.Lines("metadata.jsonl").size() == 4);
  }
  // The request fixed (here: an API that accepts it), --retry-failed submits the refused items
  // again with the queued ones.
  FakeApiProcess accepting(dir, {"--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, accepting, Manifest(40));
  ProcessResult result = job.Run({"--retry-failed"});
  INFO(result.err);
  CHECK(result.exit_code == 0);
  CHECK(job.Lines("metadata.jsonl").size() == 40);
  CHECK(Stat(accepting.Stats(), "submissions") == 40);
}

TEST_CASE("engine: a task that vanishes (404 task_not_found) is submitted again") {
  TempDir dir;
  FakeApiProcess api(dir, {"--p-task-vanish", "0.3", "--pending-ms", "30", "--processing-ms", "30",
                           "--seed", "5"});
  // One at a time, so that which tasks vanish (the seed's draws, in submission order) and the
  // order they are found lost in are the same every time: never 5 in a row here.
  Job job(dir, api, Manifest(10, "v"),
          "retry: {max_task_attempts: 10}\nlimits: {max_in_flight: 1}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 0);
  CHECK(job.Lines("metadata.jsonl").size() == 10);
  json::object stats = api.Stats();
  CHECK(Stat(stats, "submissions") > 10);
  // Lost tasks stay charged: the runner counts them as spent, so its books cover the server's.
  CHECK(job.Status().at("credits_spent").as_int64() >= Stat(stats, "credits_net"));
}

TEST_CASE("engine: an API that loses every task stops the run after 5 in a row, exit 3") {
  // Without the stop, every item was paid for max_task_attempts times, then failed.
  TempDir dir;
  FakeApiProcess api(dir, {"--p-task-vanish", "1", "--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api, Manifest(20, "l"), "limits: {max_in_flight: 1}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("tasks it accepted do not exist (404 task_not_found)") !=
        std::string::npos);
  CHECK(result.err.find("5 tasks in a row") != std::string::npos);
  CHECK(Stat(api.Stats(), "submissions") == 5);
  // The first item lost its 3 tasks (retry.max_task_attempts) and failed; the second waits.
  CHECK(job.Lines("failed.jsonl").size() == 1);
  const json::object status = job.Status();
  CHECK(status.at("queued").as_int64() == 19);
  // Unknown charges count as spent: l0 (1K) three times, l1 (2K) twice.
  CHECK(status.at("credits_spent").as_int64() == 3 * 16 + 2 * 24);
}

TEST_CASE("engine: tasks failing one after another (upstream down) stop the run, exit 3") {
  // Without the stop, every item failed for good after retry.max_task_attempts, minutes into
  // the night; now the items stay queued for the run after the outage.
  TempDir dir;
  FakeApiProcess api(dir, {"--p-task-fail", "1", "--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api, Manifest(30, "f"), "limits: {max_in_flight: 1}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("the API's tasks keep failing") != std::string::npos);
  CHECK(result.err.find("20 tasks in a row") != std::string::npos);
  CHECK(Stat(api.Stats(), "submissions") == 20);
  // One at a time: 6 items used their 3 attempts, the 7th had 2; 23 never started.
  CHECK(job.Lines("failed.jsonl").size() == 6);
  CHECK(job.Status().at("queued").as_int64() == 24);
}

TEST_CASE("engine: tasks completing without a usable image URL stop submitting after 3, exit 5") {
  TempDir dir;
  // 17 URLs: more than nanobatch takes from one task (too_many_images), every time.
  FakeApiProcess api(dir, {"--images-per-task", "17", "--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api, Manifest(20, "u"), "limits: {max_in_flight: 1}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 5);
  CHECK(result.err.find("3 tasks in a row") != std::string::npos);
  CHECK(result.err.find("without an image URL nanobatch can use") != std::string::npos);
  CHECK(Stat(api.Stats(), "submissions") == 3);  // not 20 paid for nothing
  CHECK(job.Lines("failed.jsonl").size() == 3);
  CHECK(job.Status().at("queued").as_int64() == 17);
}

TEST_CASE("engine: the credit budget is never exceeded, as the server counts it") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "20", "--processing-ms", "50"});
  // 20 items at 16 credits; a budget of 100 covers 6.
  Job job(dir, api, [] {
    std::string out;
    for (int i = 0; i < 20; ++i)
      out += "{\"id\":\"b" + std::to_string(i) + "\",\"prompt\":\"budget " + std::to_string(i) +
             "\"}\n";
    return out;
  }());
  ProcessResult result = job.Run({"--budget-credits", "100", "--max-in-flight", "10"});
  INFO(result.err);
  CHECK(result.exit_code == 3);
  json::object stats = api.Stats();
  CHECK(Stat(stats, "credits_charged") <= 100);
  CHECK(Stat(stats, "submissions") == 6);
  json::object status = job.Status();
  CHECK(status.at("budget_credits").as_int64() == 100);
  CHECK(status.at("credits_spent").as_int64() == 96);
  CHECK(status.at("done").as_int64() == 6);
  CHECK(result.err.find("no more submissions: the credit budget is reached (96 of 100 credits "
                        "spent; the next item costs 16, more than the 4 left)") !=
        std::string::npos);
  // The last progress line promises nothing for the 14 items that will not go this run.
  const std::size_t last_progress = result.err.rfind("progress: 6 done");
  REQUIRE(last_progress != std::string::npos);
  const std::string progress =
      result.err.substr(last_progress, result.err.find('\n', last_progress) - last_progress);
  CHECK(progress.find("14 queued") != std::string::npos);
  CHECK(progress.find("ETA") == std::string::npos);
  // The budget holds across runs of the same directory.
  CHECK(job.Run({"--budget-credits", "100"}).exit_code == 3);
  CHECK(Stat(api.Stats(), "submissions") == 6);
}

TEST_CASE("engine: 429 storms with and without Retry-After, 5xx on submit and poll: all done") {
  for (const std::vector<std::string>& faults :
       {std::vector<std::string>{"--p-429", "0.3", "--retry-after-s", "1"},
        std::vector<std::string>{"--p-429", "0.3", "--retry-after-s", "0"},
        std::vector<std::string>{"--p-submit-5xx", "0.3", "--p-poll-5xx", "0.3"}}) {
    TempDir dir;
    std::vector<std::string> args = {"--pending-ms", "5", "--processing-ms", "10", "--seed", "7"};
    args.insert(args.end(), faults.begin(), faults.end());
    FakeApiProcess api(dir, args);
    Job job(dir, api, Manifest(10));
    ProcessResult result = job.Run();
    const std::string context = faults[0] + " " + faults[1] + " " + faults[3] + "\n" + result.err;
    INFO(context);
    CHECK(result.exit_code == 0);
    CHECK(job.Lines("metadata.jsonl").size() == 10);
    json::object stats = api.Stats();
    // An error response creates no task: no item is paid twice.
    CHECK(Stat(stats, "submissions") == 10);
    CHECK(Stat(stats, "duplicate_prompt_submissions") == 0);
  }
}

TEST_CASE("engine: the server sees no 1-second window above rate + burst, and almost no 429") {
  TempDir dir;
  FakeApiProcess api(
      dir, {"--rate", "20", "--burst", "5", "--pending-ms", "100", "--processing-ms", "100"});
  Job job(dir, api, Manifest(40, "r"));
  ProcessResult result = job.Run({"--rate", "20", "--burst", "5", "--max-in-flight", "40"});
  INFO(result.err);
  CHECK(result.exit_code == 0);
  json::object stats = api.Stats();
  CHECK(Stat(stats, "max_requests_in_1s") <= 25);
  CHECK(Stat(stats, "rate_limited_429") <= 2);
}

TEST_CASE("engine: resets, truncated and slow downloads; files match what was served") {
  TempDir dir;
  FakeApiProcess api(
      dir, {"--p-reset", "0.3", "--p-truncate", "0.3", "--p-slow", "0.3", "--slow-ms", "200",
            "--pending-ms", "5", "--processing-ms", "5", "--seed", "3"});
  Job job(dir, api, Manifest(10));
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 0);
  json::object stats = api.Stats(true);
  CHECK(Stat(stats, "image_faults") > 0);
  for (const json::object& line : job.Lines("metadata.jsonl")) {
    CHECK(FileSha256(job.out + "/" + std::string(line.at("file_name").as_string())) ==
          line.at("sha256").as_string());
    bool served = false;
    for (const auto& [path, sha] : stats.at("image_sha256").as_object())
      served = served || sha == line.at("sha256");
    CHECK(served);
  }
  CHECK(NoTempFiles(job.out));
}

TEST_CASE("engine: plain-http image URLs are refused, never fetched; the items fail") {
  TempDir dir;
  FakeApiProcess api(dir, {"--p-plain-http-url", "1", "--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api, Manifest(2));
  ProcessResult result = job.Run();
  CHECK(result.exit_code == 1);
  auto failed = job.Lines("failed.jsonl");
  REQUIRE(failed.size() == 2);
  CHECK(failed[0].at("error_code") == "download_refused");
  CHECK(Stat(api.Stats(), "images_served") == 0);
}

TEST_CASE("engine: SIGTERM mid-run exits 3 quickly; the resume submits nothing twice") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "300", "--processing-ms", "1500"});
  Job job(dir, api, Manifest(30, "s"), "limits: {max_in_flight: 8}\n");
  testing::BackgroundProcess runner(job.Args(), {{"AIVIDEOAPI_API_KEY", "sk-test"}},
                                    dir.File("runner.log"));
  // Wait (bounded) until some tasks are in flight.
  for (int i = 0; i < 200 && Stat(api.Stats(), "submissions") < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(Stat(api.Stats(), "submissions") >= 8);
  const auto signalled = std::chrono::steady_clock::now();
  runner.Signal(SIGTERM);
  const int code = runner.Wait(std::chrono::seconds(15));
  CHECK(code == 3);
  CHECK(std::chrono::steady_clock::now() - signalled < std::chrono::seconds(7));
  json::object status = job.Status();
  CHECK(status.at("in_flight").as_int64() > 0);

  ProcessResult resumed = job.Run();
  INFO(resumed.err);
  CHECK(resumed.exit_code == 0);
  json::object stats = api.Stats();
  CHECK(Stat(stats, "duplicate_prompt_submissions") == 0);
  CHECK(Stat(stats, "submissions") == 30);
  CHECK(job.Lines("metadata.jsonl").size() == 30);
  CHECK(NoTempFiles(job.out));
}

TEST_CASE("engine: spend_limit_exceeded pauses submissions, then goes on or stops with exit 3") {
  {
    TempDir dir;
    FakeApiProcess api(dir, {"--spend-limit", "48", "--spend-window-s", "1", "--pending-ms", "5",
                             "--processing-ms", "5"});
    Job job(dir, api, Manifest(6, "w"));  // 16+24+36+16+24+36 = 152 credits: several windows
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 0);
    CHECK(Stat(api.Stats(), "spend_limited_429") > 0);
    CHECK(result.err.find("pausing submissions") != std::string::npos);
  }
  {
    TempDir dir;
    FakeApiProcess api(dir, {"--spend-limit", "16", "--spend-window-s", "3600"});
    Job job(dir, api, Manifest(3, "x"), "retry: {spend_limit_give_up_s: 0.5}\n");
    ProcessResult result = job.Run();
    CHECK(result.exit_code == 3);
    CHECK(result.err.find("spend limit") != std::string::npos);
    // It says why it did not wait, and what to do.
    CHECK(result.err.find("would pass retry.spend_limit_give_up_s (0.5 s): run the same command "
                          "again once the limit has lifted") != std::string::npos);
  }
}

TEST_CASE("engine: one runner per directory; a changed item under the same id is refused") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "2000", "--processing-ms", "2000"});
  Job job(dir, api, Manifest(2, "l"));
  testing::BackgroundProcess first(job.Args(), {{"AIVIDEOAPI_API_KEY", "sk-test"}},
                                   dir.File("first.log"));
  // metadata.jsonl is written (empty) once the run has its lock and journal.
  REQUIRE(testing::WaitForFile(job.out + "/.nanobatch/journal.log", std::chrono::seconds(20)));
  for (int i = 0; i < 500 && !std::filesystem::exists(job.out + "/metadata.jsonl"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(std::filesystem::exists(job.out + "/metadata.jsonl"));
  ProcessResult second = job.Run();
  CHECK(second.exit_code == 2);
  CHECK(second.err.find("another nanobatch run") != std::string::npos);
  // status takes no lock: it works while the run is live.
  ProcessResult live = testing::RunProcess({kBinary, "status", "--out", job.out, "--json"});
  CHECK(live.exit_code == 0);
  CHECK(json::parse(live.out).at("total").as_int64() == 2);
  first.Signal(SIGTERM);
  CHECK(first.Wait(std::chrono::seconds(15)) == 3);

  // Same id, different prompt: an error naming it, nothing submitted.
  const auto before = Stat(api.Stats(), "submissions");
  dir.Write("manifest.jsonl", "{\"id\":\"l0\",\"prompt\":\"something else\"}\n");
  ProcessResult changed = job.Run();
  CHECK(changed.exit_code == 2);
  CHECK(changed.err.find("\"l0\" was already generated from different content") !=
        std::string::npos);
  CHECK(Stat(api.Stats(), "submissions") == before);
}

TEST_CASE("engine: a finished image deleted or altered is downloaded again, not paid again") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api, Manifest(3, "d"));
  REQUIRE(job.Run().exit_code == 0);
  const std::string original = FileSha256(job.out + "/d1.jpg");
  std::filesystem::remove(job.out + "/d0.png");
  ProcessResult again = job.Run();
  CHECK(again.exit_code == 0);
  CHECK(std::filesystem::exists(job.out + "/d0.png"));
  // Same size, different bytes: only --verify-images (hashing) notices.
  {
    std::fstream file(job.out + "/d1.jpg", std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(100);
    file.put('\x5a');
  }
  REQUIRE(FileSha256(job.out + "/d1.jpg") != original);
  CHECK(job.Run({"--verify-images"}).exit_code == 0);
  CHECK(FileSha256(job.out + "/d1.jpg") == original);
  CHECK(Stat(api.Stats(), "submissions") == 3);
  CHECK(job.Lines("metadata.jsonl").size() == 3);
}

TEST_CASE("engine: items that left the manifest are left alone, and status says so") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api, Manifest(3, "m"));
  REQUIRE(job.Run().exit_code == 0);
  // m2 leaves the manifest; m3 is new.
  dir.Write("manifest.jsonl", Manifest(2, "m") + "{\"id\":\"m3\",\"prompt\":\"new\"}\n");
  ProcessResult result = job.Run();
  CHECK(result.exit_code == 0);
  CHECK(result.err.find("1 item of an earlier run is no longer in the manifest") !=
        std::string::npos);
  json::object status = job.Status();
  CHECK(status.at("total").as_int64() == 3);
  CHECK(status.at("done").as_int64() == 3);
  CHECK(status.at("departed_items").as_int64() == 1);
  CHECK(Stat(api.Stats(), "submissions") == 4);
  CHECK(std::filesystem::exists(job.out + "/m2.png"));  // its image stays
}

TEST_CASE("engine: a full disk stops the run with exit 3 and a hint; the resume finishes") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "5", "--processing-ms", "5", "--image-scale", "0.5"});
  Job job(dir, api, Manifest(8, "f"));
  // RLIMIT_FSIZE makes write() fail with EFBIG past 64 KiB, as a full disk fails with ENOSPC.
  std::string command = "ulimit -f 64; exec";
  for (const std::string& arg : job.Args()) command += " '" + arg + "'";
  ProcessResult full =
      testing::RunProcess({"/bin/bash", "-c", command}, {{"AIVIDEOAPI_API_KEY", "sk-test"}});
  INFO(full.err);
  CHECK(full.exit_code == 3);
  CHECK(full.err.find("free disk space") != std::string::npos);
  CHECK(NoTempFiles(job.out));

  ProcessResult resumed = job.Run();
  INFO(resumed.err);
  CHECK(resumed.exit_code == 0);
  CHECK(job.Lines("metadata.jsonl").size() == 8);
  CHECK(Stat(api.Stats(), "duplicate_prompt_submissions") <=
        job.Status().at("possible_duplicate_submissions").as_int64());
}

// A run under runner/testing's shim: fallocate fails with ENOSPC after `allowed` calls, as on a
// disk filling up (writes still go to what was allocated before).
ProcessResult RunOnFillingDisk(const Job& job, int allowed) {
  return testing::RunProcess(
      job.Args(), {{"AIVIDEOAPI_API_KEY", job.key},
                   {"LD_PRELOAD", std::filesystem::absolute("runner/testing/libfull_disk.so")},
                   {"NB_FULL_DISK_AFTER", std::to_string(allowed)},
                   {"ASAN_OPTIONS", "verify_asan_link_order=0"}});
}

TEST_CASE("engine: a disk too full for the journal's space ahead: nothing is submitted (exit 3)") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api, Manifest(6, "z"));
  ProcessResult full = RunOnFillingDisk(job, 0);
  INFO(full.err);
  CHECK(full.exit_code == 3);
  CHECK(full.err.find("is full: the journal cannot allocate 4 MiB ahead (No space left on "
                      "device)") != std::string::npos);
  CHECK(Stat(api.Stats(), "submissions") == 0);
  CHECK(job.Status().at("queued").as_int64() == 6);

  ProcessResult resumed = job.Run();
  INFO(resumed.err);
  CHECK(resumed.exit_code == 0);
  CHECK(job.Lines("metadata.jsonl").size() == 6);
}

TEST_CASE("engine: the disk fills up mid-run: submits stop, every task paid for is kept (exit 3)") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "200", "--processing-ms", "50"});
  // Prompts of 15,000 characters: the intents alone take 3 MB of journal (finished items'
  // snapshots as much again), so half of the 4 MiB allocated at the start is used before the
  // last item is submitted, and the renewal, refused, stops the submits while tasks are in flight.
  std::string manifest;
  for (int i = 0; i < 200; ++i) {
    manifest += "{\"id\":\"y" + std::to_string(i) + "\",\"prompt\":\"" + std::to_string(i) + " " +
                std::string(15'000, 'y') + "\"}\n";
  }
  Job job(dir, api, manifest, "limits: {rate: 100, burst: 50, max_in_flight: 40}\n");
  ProcessResult filled = RunOnFillingDisk(job, 1);
  INFO(filled.err);
  CHECK(filled.exit_code == 3);
  CHECK(filled.err.find("no more submissions") != std::string::npos);
  CHECK(filled.err.find("is full") != std::string::npos);
  const std::int64_t paid = Stat(api.Stats(), "submissions");
  CHECK(paid > 0);
  CHECK(paid < 200);
  json::object status = job.Status();
  CHECK(status.at("possible_duplicate_submissions").as_int64() == 0);
  CHECK(status.at("intents_open").as_int64() == 0);  // every task sent has its id recorded
  CHECK(status.at("done").as_int64() + status.at("in_flight").as_int64() == paid);

  ProcessResult resumed = job.Run();
  INFO(resumed.err);
  CHECK(resumed.exit_code == 0);
  CHECK(job.Lines("metadata.jsonl").size() == 200);
  CHECK(Stat(api.Stats(), "submissions") == 200);  // none paid twice
}

TEST_CASE("engine: under systemd (NOTIFY_SOCKET) the run reports READY, STATUS and STOPPING") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "5", "--processing-ms", "5"});
  Job job(dir, api, Manifest(2, "n"));
  // sun_path holds 108 bytes: Bazel's temp paths are longer, so the socket lives in /tmp.
  const std::string socket_path = "/tmp/nanobatch-notify-" + std::to_string(::getpid()) + ".sock";
  ::unlink(socket_path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socket_path.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  ProcessResult result = testing::RunProcess(
      job.Args(), {{"AIVIDEOAPI_API_KEY", "sk-test"}, {"NOTIFY_SOCKET", socket_path}});
  CHECK(result.exit_code == 0);
  std::string received;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) received.append(buffer, n).append("|");
  ::close(fd);
  ::unlink(socket_path.c_str());
  CHECK(received.find("READY=1") != std::string::npos);
  CHECK(received.find("STATUS=progress:") != std::string::npos);
  CHECK(received.find("STOPPING=1") != std::string::npos);
}

}  // namespace
}  // namespace nanobatch::engine
