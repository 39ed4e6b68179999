// `nanobatch serve` end to end: the real binary as a daemon against the simulator over TLS, its
// spool on disk, its HTTP API and metrics read with curl, systemd's notify socket read by the
// test, signals sent to its PID. Checked from both sides: the spool's files and the API's
// answers, and what the simulator counted (submissions per prompt, credits, requests).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runner/testing/fake_api_process.h"
#include "runner/testing/local_sockets.h"
#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::serve {
namespace {

namespace json = boost::json;
using testing::BackgroundProcess;
using testing::FakeApiProcess;
using testing::ProcessResult;
using testing::Stat;
using testing::TempDir;

constexpr const char* kToken = "test-token-0123456789abcdef";

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// One request with curl (an independent client), plain HTTP on loopback.
HttpAnswer Http(const std::string& method, const std::string& url, const std::string& body = "",
                const std::string& token = "") {
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "20", "-X",
                                   method, "-o",  "-",          "-w", "\n%{http_code}"};
  if (!token.empty()) {
    argv.push_back("-H");
    argv.push_back("Authorization: Bearer " + token);
  }
  if (!body.empty()) {
    argv.push_back("--data-binary");
    argv.push_back(body);
  }
  argv.push_back(url);
  ProcessResult result = testing::RunProcess(argv, {}, std::chrono::seconds(30));
  HttpAnswer answer;
  const auto newline = result.out.rfind('\n');
  if (newline == std::string::npos) return answer;
  answer.body = result.out.substr(0, newline);
  answer.status = std::atoi(result.out.c_str() + newline + 1);
  return answer;
}

std::string Manifest(const std::string& prefix, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    out += "{\"id\":\"" + prefix + std::to_string(i) + "\",\"prompt\":\"" + prefix + " prompt " +
           std::to_string(i) + "\"}\n";
  }
  return out;
}

// Drops a manifest into inbox/ the way the contract asks: written elsewhere, renamed in.
void Drop(TempDir& dir, const std::string& file, const std::string& text) {
  const std::string staged = dir.Write("staging-" + file, text);
  REQUIRE(std::rename(staged.c_str(), dir.File("spool/inbox/" + file).c_str()) == 0);
}

bool Exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

// A serve daemon's config in a TempDir, pointed at the simulator, and the daemon started from it.
struct Serve {
  // `extra`: more top-level config; `serve_keys`: more keys of the serve: mapping.
  Serve(TempDir& d, FakeApiProcess& a, const std::string& extra = "",
        const std::string& serve_keys = "")
      : dir(d), api(a), port(testing::FreeLoopbackPort()), more_serve_keys(serve_keys) {
    dir.Write("token", std::string(kToken) + "\n");
    WriteConfig(extra);
    ::mkdir(dir.File("spool").c_str(), 0755);
    ::mkdir(dir.File("spool/inbox").c_str(), 0755);
  }
  void WriteConfig(const std::string& extra) {
    config =
        dir.Write("serve.yaml",
                  "api: {base_url: \"" + api.base_url() + "\", ca_file: \"" + api.ca_file() +
                      "\"}\n"
                      "download: {allowed_hosts: [\"localhost:" +
                      std::to_string(api.file_port()) +
                      "\"], allowed_networks: [127.0.0.0/8, \"::1/128\"]}\n"
                      "polling: {first_poll_s: 0.05, max_interval_s: 0.3, task_deadline_s: 120}\n"
                      "retry: {max_attempts: 4, base_delay_s: 0.02, max_delay_s: 0.1}\n"
                      "log: {progress_interval_s: 60}\n"
                      "serve: {spool_dir: \"" +
                      dir.File("spool") + "\", listen: \"127.0.0.1:" + std::to_string(port) +
                      "\", token_file: \"" + dir.File("token") +
                      "\", scan_interval_s: 0.2, max_jobs: 2" + more_serve_keys + "}\n" + extra);
  }
  // Starts the daemon; its log is serve-<N>.log, N counting the starts from 0.
  void Launch(std::map<std::string, std::string> env = {}) {
    env["AIVIDEOAPI_API_KEY"] = "sk-test";
    process = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{testing::kNanobatchBinary, "serve", "--config", config}, env,
        dir.File("serve-" + std::to_string(starts++) + ".log"));
  }
  // Launches and waits until /readyz says ready.
  void Start(std::map<std::string, std::string> env = {}) {
    Launch(std::move(env));
    for (int i = 0; i < 200; ++i) {
      if (Http("GET", Url("/readyz")).status == 200) return;
      REQUIRE(process->running());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL("serve did not become ready");
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
  json::array Jobs() const { return json::parse(Http("GET", Url("/jobs")).body).as_array(); }
  std::string StateOf(const std::string& name) const {
    for (const auto& job : Jobs()) {
      if (job.at("name").as_string() == name) return std::string(job.at("state").as_string());
    }
    return "";
  }
  // Polls /jobs until `done` holds (at most `seconds`); true if it did.
  bool WaitFor(const std::function<bool()>& done, int seconds = 90) const {
    for (int i = 0; i < seconds * 10; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  std::string Log(int start) const { return dir.Read("serve-" + std::to_string(start) + ".log"); }

  TempDir& dir;
  FakeApiProcess& api;
  int port;
  std::string more_serve_keys;
  std::string config;
  std::unique_ptr<BackgroundProcess> process;
  int starts = 0;
};

double MetricValue(const std::string& page, const std::string& sample) {
  const auto at = page.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::stod(page.substr(at + sample.size() + 2));
}

TEST_CASE("serve: three manifests complete; /jobs, the files and /metrics agree; promtool") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "50", "--processing-ms", "200"});
  Serve serve(dir, api, "limits: {rate: 200, burst: 20, max_in_flight: 16}\n",
              ", max_manifest_bytes: 2048");
  serve.Start();

  Drop(dir, "alpha.jsonl", Manifest("a", 3));
  Drop(dir, "beta.yaml", "- {id: b0, prompt: beta prompt 0}\n- {id: b1, prompt: beta prompt 1}\n");
  Drop(dir, "gamma.jsonl", Manifest("g", 4));
  Drop(dir, "broken.jsonl", "{\"id\":\"x\",\"prompt\":\"p\",\"resolution\":\"9K\"}\n");
  // Not a job: left alone.
  dir.Write("spool/inbox/.still-writing.jsonl", "{\"prompt\":");
  dir.Write("spool/inbox/README.txt", "notes");

  REQUIRE(serve.WaitFor([&] {
    return serve.StateOf("alpha") == "done" && serve.StateOf("beta") == "done" &&
           serve.StateOf("gamma") == "done" && serve.StateOf("broken") == "failed";
  }));

  // The files: manifests and summaries in done/ and failed/, images in jobs/NAME/.
  for (const auto& [name, ext, count] :
       {std::tuple{"alpha", "jsonl", 3}, std::tuple{"beta", "yaml", 2},
        std::tuple{"gamma", "jsonl", 4}}) {
    const std::string job = name;  // (clang 14 cannot capture a structured binding)
    CAPTURE(job);
    CHECK(Exists(dir.File(std::string("spool/done/") + name + "." + ext)));
    const json::object summary =
        json::parse(dir.Read(std::string("spool/done/") + name + ".summary.json")).as_object();
    CHECK(summary.at("done").as_int64() == count);
    CHECK(summary.at("exit_code").as_int64() == 0);
    CHECK(summary.at("credits_spent").as_int64() == 16 * count);
    CHECK(summary.contains("credits_refunded"));
    CHECK(summary.at("failed_by_code").as_object().empty());
    const json::object status =
        json::parse(Http("GET", serve.Url(std::string("/jobs/") + name)).body).as_object();
    CHECK(status.at("done").as_int64() == count);
    CHECK(status.at("state").as_string() == "done");
    const std::string metadata = dir.Read(std::string("spool/jobs/") + name + "/metadata.jsonl");
    CHECK(std::count(metadata.begin(), metadata.end(), '\n') == count);
  }
  CHECK(Exists(dir.File("spool/done/beta.yaml")));
  CHECK(
      (Exists(dir.File("spool/jobs/alpha/a0.jpg")) || Exists(dir.File("spool/jobs/alpha/a0.png"))));
  // The bad manifest: failed/, its errors named, nothing spent.
  const json::object broken = json::parse(dir.Read("spool/failed/broken.summary.json")).as_object();
  CHECK(broken.at("exit_code").as_int64() == 2);
  CHECK(json::serialize(broken.at("errors")).find("broken.jsonl:1: resolution") !=
        std::string::npos);
  CHECK(Exists(dir.File("spool/inbox/.still-writing.jsonl")));
  CHECK(Exists(dir.File("spool/inbox/README.txt")));

  // The jobs API: the token is required, compared whole; a bad manifest is refused with its
  // errors; a good one is queued and runs.
  CHECK(Http("POST", serve.Url("/jobs?name=posted"), Manifest("p", 2)).status == 401);
  CHECK(Http("POST", serve.Url("/jobs?name=posted"), Manifest("p", 2), "wrong").status == 401);
  CHECK(Http("POST", serve.Url("/jobs?name=posted"), Manifest("p", 2), std::string(kToken) + "x")
            .status == 401);
  CHECK(Http("POST", serve.Url("/jobs?name=../etc"), Manifest("p", 2), kToken).status == 400);
  const HttpAnswer refused =
      Http("POST", serve.Url("/jobs?name=posted"), "{\"prompt\":\"\"}\n", kToken);
  CHECK(refused.status == 422);
  CHECK(refused.body.find("posted.jsonl:1: prompt") != std::string::npos);
  CHECK(Http("POST", serve.Url("/jobs?name=posted"), Manifest("p", 2), kToken).status == 202);
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("posted") == "done"; }));
  // A YAML manifest with ?format=yaml (a template: 2 items); its errors are named as YAML's.
  CHECK(Http("POST", serve.Url("/jobs?name=y&format=xml"), "- {prompt: a}\n", kToken).status ==
        400);
  CHECK(Http("POST", serve.Url("/jobs?name=y&fromat=yaml"), "- {prompt: a}\n").status ==
        401);  // the token first, as for every other refusal
  const HttpAnswer misspelt =
      Http("POST", serve.Url("/jobs?name=y&fromat=yaml"), "- {prompt: a}\n", kToken);
  CHECK(misspelt.status == 400);
  CHECK(
      misspelt.body.find("unknown query parameter \\\"fromat\\\" (did you mean \\\"format\\\"?)") !=
      std::string::npos);
  const HttpAnswer twice =
      Http("POST", serve.Url("/jobs?name=y1&format=yaml&name=y2"), "- {prompt: a}\n", kToken);
  CHECK(twice.status == 400);
  CHECK(twice.body.find("?name= is given more than once") != std::string::npos);
  const HttpAnswer bad_yaml = Http("POST", serve.Url("/jobs?name=yposted&format=yaml"),
                                   "- {prompt: a, colour: red}\n", kToken);
  CHECK(bad_yaml.status == 422);
  CHECK(bad_yaml.body.find("yposted.yaml:1: colour: unknown key") != std::string::npos);
  CHECK(Http("POST", serve.Url("/jobs?name=yposted&format=yaml"),
             "- {id: yp, prompt: \"a {animal}\", matrix: {animal: [cat, dog]}}\n", kToken)
            .status == 202);
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("yposted") == "done"; }));
  CHECK(Exists(dir.File("spool/done/yposted.yaml")));
  CHECK(Http("GET", serve.Url("/jobs/..%2F..%2Fetc")).status == 404);
  CHECK(Http("GET", serve.Url("/jobs/nosuch")).status == 404);
  CHECK(Http("DELETE", serve.Url("/nosuch"), "", kToken).status == 404);  // no such endpoint
  const HttpAnswer put = Http("PUT", serve.Url("/jobs"));
  CHECK(put.status == 405);
  CHECK(put.body.find("GET or POST /jobs only") != std::string::npos);
  // Bodies are capped by route: manifests up to serve.max_manifest_bytes, callbacks 64 KiB.
  CHECK(Http("POST", serve.Url("/hooks/x"), std::string(std::size_t{100} << 10, 'x')).status ==
        413);
  CHECK(Http("POST", serve.Url("/jobs?name=huge"), std::string(3000, 'x'), kToken).status == 413);

  // /metrics: valid for Prometheus's own checker, and its credits are the simulator's.
  const std::string page = Http("GET", serve.Url("/metrics")).body;
  dir.Write("metrics.txt", page);
  const ProcessResult lint =
      testing::RunProcess({"/bin/sh", "-c", "promtool check metrics < " + dir.File("metrics.txt")});
  CAPTURE(lint.out + lint.err);
  CHECK(lint.exit_code == 0);
  const json::object stats = api.Stats();
  CHECK(Stat(stats, "credits_net") == 16 * 13);
  CHECK(MetricValue(page, "nanobatch_credits_spent_total") == Stat(stats, "credits_net"));
  CHECK(MetricValue(page, "nanobatch_images_flagged") == 0);
  CHECK(MetricValue(page, "nanobatch_jobs{state=\"done\"}") == 5);
  CHECK(MetricValue(page, "nanobatch_jobs{state=\"failed\"}") == 1);
  CHECK(MetricValue(page, "nanobatch_api_requests_total{endpoint=\"submit\",code=\"200\"}") ==
        Stat(stats, "submissions"));
  CHECK(MetricValue(page, "nanobatch_download_bytes_total") > 0);
  // Every job is over: no task waits, and none of the watcher's coroutines is left running.
  CHECK(MetricValue(page, "nanobatch_tasks_awaiting_verdict") == 0);
  CHECK(MetricValue(page, "nanobatch_pollers") == 0);
  CHECK(page.find("nanobatch_journal_sync_seconds_bucket{le=\"+Inf\"}") != std::string::npos);
  CHECK(MetricValue(page, "nanobatch_image_sync_seconds_count") >= 1);
  CHECK(Stat(stats, "max_submissions_per_prompt") == 1);

  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(30)) == 0);
}

TEST_CASE(
    "serve: SIGTERM drains (exit 0), kill -9 loses nothing; restarts resume, none paid twice") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "300", "--processing-ms", "900"});
  Serve serve(dir, api, "limits: {rate: 50, burst: 5, max_in_flight: 6}\n");
  serve.Start();
  Drop(dir, "big.jsonl", Manifest("k", 30));
  auto done_count = [&]() -> std::int64_t {
    const HttpAnswer answer = Http("GET", serve.Url("/jobs/big"));
    if (answer.status != 200) return 0;
    const json::object status = json::parse(answer.body).as_object();
    return status.contains("done") ? status.at("done").as_int64() : 0;
  };
  REQUIRE(serve.WaitFor([&] { return done_count() >= 3; }));
  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(20)) == 0);
  CHECK(serve.Log(0).find("draining") != std::string::npos);
  CHECK(Exists(dir.File("spool/jobs/big/.nanobatch/manifest.jsonl")));  // still active

  serve.Start();
  const std::int64_t before = done_count();
  REQUIRE(serve.WaitFor([&] { return done_count() >= before + 3; }));
  ::kill(serve.process->pid(), SIGKILL);
  serve.process->Wait(std::chrono::seconds(10));

  serve.Start();
  CHECK(serve.Log(2).find("resume first") != std::string::npos);
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("big") == "done"; }));
  const json::object summary = json::parse(dir.Read("spool/done/big.summary.json")).as_object();
  CHECK(summary.at("done").as_int64() == 30);
  const json::object stats = api.Stats(true);
  CHECK(Stat(stats, "distinct_prompts") == 30);
  // Nothing paid twice knowingly: a kill -9 can leave at most the submits that were on the
  // wire, and the journal counts those as possible duplicates.
  const std::int64_t duplicates = summary.at("possible_duplicate_submissions").as_int64();
  CHECK(Stat(stats, "submissions") - 30 <= duplicates);
  // The journal counts every charge the simulator made, and also, at their price (16 credits),
  // the intents the kill cut off whose POST may never have left: never less than the
  // simulator, and more only by those possible duplicates.
  const std::int64_t spent = summary.at("credits_spent").as_int64();
  CHECK(spent >= Stat(stats, "credits_net"));
  CHECK(spent - Stat(stats, "credits_net") <= 16 * duplicates);
}

TEST_CASE("serve: a job whose submits are refused (400) stops alone; its lines name it") {
  TempDir dir;
  FakeApiProcess api(
      dir, {"--reject-substring", "refused", "--pending-ms", "5", "--processing-ms", "5"});
  Serve serve(dir, api, "limits: {rate: 100, burst: 10, max_in_flight: 1}\n");
  serve.Start();
  Drop(dir, "bad.jsonl", Manifest("refused", 20));
  Drop(dir, "good.jsonl", Manifest("g", 10));
  REQUIRE(serve.WaitFor(
      [&] { return serve.StateOf("bad") == "waiting" && serve.StateOf("good") == "done"; }));
  const json::object bad = json::parse(Http("GET", serve.Url("/jobs/bad")).body).as_object();
  CHECK(bad.at("exit_code").as_int64() == 5);
  CHECK(bad.at("failed").as_int64() == 3);
  CHECK(bad.at("queued").as_int64() == 17);
  // Why it waits, for the operator: what report.json says.
  CHECK(std::string(bad.at("stop_reason").as_string()).starts_with("the API refuses the submits"));
  CHECK(std::string(bad.at("stop_detail").as_string()).starts_with("3 items in a row"));
  CHECK_FALSE(
      json::parse(Http("GET", serve.Url("/jobs/good")).body).as_object().contains("stop_reason"));
  CHECK(serve.process->running());  // the other jobs, and the service, go on
  const std::string log = serve.Log(0);
  CHECK(log.find("job bad: item refused0 failed for good: invalid_request") != std::string::npos);
  CHECK(log.find("job bad: no more submissions: the API refuses the submits as invalid") !=
        std::string::npos);
  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("serve: POST ?retry_failed=1 takes a job's failed items up again, paying nothing more") {
  TempDir dir;
  // Each image's first request is answered 410 Gone: its item fails (download_failed), paid.
  FakeApiProcess api(dir, {"--image-status", "410", "--image-status-times", "1", "--pending-ms",
                           "5", "--processing-ms", "5"});
  Serve serve(dir, api, "limits: {rate: 100, burst: 10, max_in_flight: 1}\n");
  serve.Start();
  const std::string manifest = Manifest("r", 2);
  REQUIRE(Http("POST", serve.Url("/jobs?name=r"), manifest, kToken).status == 202);
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("r") == "failed"; }));
  CHECK(json::parse(Http("GET", serve.Url("/jobs/r")).body).as_object().at("failed").as_int64() ==
        2);
  CHECK(Http("POST", serve.Url("/jobs?name=r&retry_failed=yes"), manifest, kToken).status == 400);
  // The same manifest again resumes the directory; with ?retry_failed=1 its failed items too.
  REQUIRE(Http("POST", serve.Url("/jobs?name=r&retry_failed=1"), manifest, kToken).status == 202);
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("r") == "done"; }));
  const json::object status = json::parse(Http("GET", serve.Url("/jobs/r")).body).as_object();
  CHECK(status.at("done").as_int64() == 2);
  CHECK(status.at("failed").as_int64() == 0);
  CHECK(Stat(api.Stats(), "submissions") == 2);  // downloaded again, not paid again
  CHECK(Exists(dir.File("spool/done/r.summary.json")));
  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("serve: one budget for all jobs, kept across a restart; SIGHUP raises it") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "50", "--processing-ms", "150"});
  // 16 credits an item: 80 credits fit 5 of the 8 items of the two jobs.
  Serve serve(dir, api, "limits: {rate: 100, burst: 10, max_in_flight: 4, budget_credits: 80}\n");
  serve.Start();
  Drop(dir, "one.jsonl", Manifest("o", 4));
  Drop(dir, "two.jsonl", Manifest("t", 4));
  REQUIRE(serve.WaitFor(
      [&] { return serve.StateOf("one") == "waiting" || serve.StateOf("two") == "waiting"; }));
  REQUIRE(serve.WaitFor([&] { return Http("GET", serve.Url("/readyz")).status == 503; }));
  CHECK(Http("GET", serve.Url("/readyz")).body.find("budget") != std::string::npos);
  CHECK(Stat(api.Stats(), "credits_net") <= 80);

  // A restart remembers what was spent: still nothing beyond the budget.
  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(20)) == 0);
  serve.Launch();  // not ready: its budget is spent
  REQUIRE(serve.WaitFor([&] { return Http("GET", serve.Url("/healthz")).status == 200; }, 20));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  CHECK(Stat(api.Stats(), "credits_net") <= 80);

  // SIGHUP with a larger budget: the waiting jobs go on and finish.
  serve.WriteConfig("limits: {rate: 100, burst: 10, max_in_flight: 4, budget_credits: 1000}\n");
  serve.process->Signal(SIGHUP);
  REQUIRE(serve.WaitFor(
      [&] { return serve.StateOf("one") == "done" && serve.StateOf("two") == "done"; }));
  CHECK(serve.Log(1).find("limits.budget_credits 80 -> 1000") != std::string::npos);
  CHECK(Stat(api.Stats(), "credits_net") == 8 * 16);
  CHECK(Stat(api.Stats(), "max_submissions_per_prompt") == 1);
  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(30)) == 0);
}

TEST_CASE("serve: DELETE ends a job waiting for the budget at once; a raised budget leaves it") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "50", "--processing-ms", "150"});
  // 16 credits an item: 32 credits fit 2 of its 4 items.
  Serve serve(dir, api, "limits: {rate: 100, burst: 10, max_in_flight: 4, budget_credits: 32}\n");
  serve.Start();
  Drop(dir, "w.jsonl", Manifest("w", 4));
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("w") == "waiting"; }, 30));
  const std::int64_t submitted = Stat(api.Stats(), "submissions");
  const HttpAnswer answer = Http("DELETE", serve.Url("/jobs/w"), "", kToken);
  CHECK(answer.status == 200);
  CHECK(json::parse(answer.body).at("cancelled").as_bool());
  CHECK(serve.StateOf("w") == "failed");
  const json::object summary = json::parse(dir.Read("spool/failed/w.summary.json")).as_object();
  CHECK(summary.at("cancelled").as_bool());
  CHECK(summary.at("credits_spent").as_int64() == Stat(api.Stats(), "credits_net"));
  // A larger budget resumes the jobs that wait for it: not this one.
  serve.WriteConfig("limits: {rate: 100, burst: 10, max_in_flight: 4, budget_credits: 1000}\n");
  serve.process->Signal(SIGHUP);
  REQUIRE(serve.WaitFor([&] { return serve.Log(0).find("reloaded") != std::string::npos; }, 20));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  CHECK(serve.StateOf("w") == "failed");
  CHECK(Stat(api.Stats(), "submissions") == submitted);
  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(30)) == 0);
}

TEST_CASE("serve: webhooks on the shared listener settle tasks; sd_notify on a real socket") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "200", "--processing-ms", "800"});
  const int port = testing::FreeLoopbackPort();
  Serve serve(dir, api,
              "limits: {rate: 100, burst: 10, max_in_flight: 16}\n"
              "callbacks: {public_url: \"http://127.0.0.1:" +
                  std::to_string(port) + "/hooks\", safety_poll_s: 30}\n");
  serve.port = port;
  serve.WriteConfig(
      "limits: {rate: 100, burst: 10, max_in_flight: 16}\n"
      "callbacks: {public_url: \"http://127.0.0.1:" +
      std::to_string(port) + "/hooks\", safety_poll_s: 30}\n");
  testing::NotifySocket socket;
  serve.Start({{"NOTIFY_SOCKET", socket.path()}, {"WATCHDOG_USEC", "600000"}});
  Drop(dir, "hooked.jsonl", Manifest("h", 8));
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("hooked") == "done"; }));
  const json::object stats = api.Stats();
  CHECK(Stat(stats, "callbacks_accepted") >= 8);
  CHECK(Stat(stats, "queries") < 8);  // callbacks, not polls, settled the tasks
  const json::object summary = json::parse(dir.Read("spool/done/hooked.summary.json")).as_object();
  CHECK(summary.at("this_run").at("settled_by_callback").as_int64() == 8);
  // A callback with an unknown token changes nothing.
  CHECK(Http("POST", serve.Url("/hooks/0123456789abcdef0123456789abcdef"), "{}").status == 404);

  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(20)) == 0);
  bool ready = false, status = false, watchdog = false, stopping = false;
  for (const std::string& message : socket.Messages()) {
    ready |= message.find("READY=1") != std::string::npos;
    status |= message.find("STATUS=") != std::string::npos &&
              message.find("jobs running") != std::string::npos;
    watchdog |= message.find("WATCHDOG=1") != std::string::npos;
    stopping |= message.find("STOPPING=1") != std::string::npos;
  }
  CHECK(ready);
  CHECK(status);
  CHECK(watchdog);
  CHECK(stopping);
}

TEST_CASE("serve: SIGHUP changes the request rate, as the simulator sees it") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "4000", "--processing-ms", "4000"});
  Serve serve(dir, api, "limits: {rate: 2, burst: 1, max_in_flight: 200}\n");
  serve.Start();
  Drop(dir, "many.jsonl", Manifest("m", 200));
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("many") == "running"; }, 20));
  auto requests = [&] { return Stat(api.Stats(), "requests"); };
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const std::int64_t slow_start = requests();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const std::int64_t slow = requests() - slow_start;

  serve.WriteConfig("limits: {rate: 40, burst: 1, max_in_flight: 200}\n");
  serve.process->Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::int64_t fast_start = requests();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const std::int64_t fast = requests() - fast_start;
  CAPTURE(slow);
  CAPTURE(fast);
  CHECK(slow <= 3 * 2 + 3);  // 2/s (the _stats requests of the test are not counted)
  CHECK(fast >= 3 * 20);     // well above the old rate, at most 40/s
  CHECK(fast <= 3 * 40 + 10);
  CHECK(serve.Log(0).find("limits.rate 2 -> 40") != std::string::npos);
  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(30)) == 0);
}

TEST_CASE(
    "serve: DELETE /jobs/NAME cancels one job: nothing more is submitted, what is paid finishes, "
    "the other jobs go on; a restart does not resume it; the same name again does") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "300", "--processing-ms", "700"});
  // 4 submits a second: the big jobs are mostly unsubmitted when they are cancelled.
  Serve serve(dir, api, "limits: {rate: 4, burst: 2, max_in_flight: 4}\n");
  serve.Start();
  auto submissions = [&] { return Stat(api.Stats(), "submissions"); };
  auto summary_of = [&](const std::string& name) {
    return json::parse(dir.Read("spool/failed/" + name + ".summary.json")).as_object();
  };
  Drop(dir, "big.jsonl", Manifest("k", 30));
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("big") == "running"; }, 20));
  Drop(dir, "small.jsonl", Manifest("s", 8));
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("small") == "running"; }, 20));
  Drop(dir, "later.jsonl", Manifest("l", 3));
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("later") == "queued"; }, 20));

  // Queued (max_jobs 2): it ends at once in failed/, nothing of it submitted.
  CHECK(Http("DELETE", serve.Url("/jobs/later")).status == 401);
  const HttpAnswer later = Http("DELETE", serve.Url("/jobs/later"), "", kToken);
  CHECK(later.status == 200);
  CHECK(json::parse(later.body).at("cancelled").as_bool());
  CHECK(summary_of("later").at("cancelled").as_bool());
  CHECK(Exists(dir.File("spool/failed/later.jsonl")));
  CHECK(serve.StateOf("later") == "failed");

  // Running: no more submissions; the tasks it paid for still get their images.
  REQUIRE(serve.WaitFor([&] { return submissions() >= 3; }, 30));
  const HttpAnswer big = Http("DELETE", serve.Url("/jobs/big"), "", kToken);
  CHECK(big.status == 202);
  CHECK(json::parse(big.body).at("cancelled").as_bool());
  CHECK(Http("DELETE", serve.Url("/jobs/big"), "", kToken).status == 202);  // said once more
  REQUIRE(serve.WaitFor(
      [&] { return serve.StateOf("big") == "failed" && serve.StateOf("small") == "done"; }));
  const json::object cancelled = summary_of("big");
  CHECK(cancelled.at("cancelled").as_bool());
  CHECK(cancelled.at("exit_code").as_int64() == 3);
  const std::int64_t big_done = cancelled.at("done").as_int64();
  CHECK(big_done < 30);
  // Every submission made is an image on disk: the paid tasks finished, none was left behind.
  const std::int64_t after_cancel = submissions();
  CHECK(after_cancel == big_done + 8);
  CHECK(Stat(api.Stats(), "credits_net") == 16 * after_cancel);
  CHECK(json::parse(Http("GET", serve.Url("/jobs/big")).body).at("cancelled").as_bool());
  CHECK(Http("DELETE", serve.Url("/jobs/big"), "", kToken).status == 409);
  CHECK(Http("DELETE", serve.Url("/jobs/nosuch"), "", kToken).status == 404);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  CHECK(submissions() == after_cancel);
  CHECK(serve.Log(0).find("job big: cancelled") != std::string::npos);
  const std::string page = Http("GET", serve.Url("/metrics")).body;
  CHECK(MetricValue(page, "nanobatch_jobs_cancelled_total") == 2);
  CHECK(MetricValue(page, "nanobatch_jobs{state=\"failed\"}") == 2);

  // The same name again resumes its directory: the rest is submitted, nothing twice.
  Drop(dir, "big.jsonl", Manifest("k", 30));
  REQUIRE(serve.WaitFor([&] { return serve.StateOf("big") == "done"; }));
  CHECK(Http("GET", serve.Url("/jobs/big")).body.find("cancelled") == std::string::npos);
  CHECK(Stat(api.Stats(), "max_submissions_per_prompt") == 1);
  CHECK(submissions() == 38);

  // Cancelled, then killed before its paid tasks finished: the next start ends it in failed/
  // instead of resuming it.
  Drop(dir, "third.jsonl", Manifest("t", 20));
  REQUIRE(serve.WaitFor([&] { return submissions() >= 38 + 2; }, 30));
  CHECK(Http("DELETE", serve.Url("/jobs/third"), "", kToken).status == 202);
  ::kill(serve.process->pid(), SIGKILL);
  serve.process->Wait(std::chrono::seconds(10));
  const std::int64_t at_kill = submissions();
  serve.Start();
  CHECK(serve.StateOf("third") == "failed");
  CHECK(summary_of("third").at("cancelled").as_bool());
  CHECK(serve.Log(1).find("job third: cancelled") != std::string::npos);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  CHECK(submissions() == at_kill);
  // Jobs that ended before this start read as they did: a cancel is still a cancel, and a job
  // done says its exit code.
  const json::object later_now =
      json::parse(Http("GET", serve.Url("/jobs/later")).body).as_object();
  CHECK(later_now.at("state").as_string() == "failed");
  CHECK(later_now.at("cancelled").as_bool());
  const json::object big_now = json::parse(Http("GET", serve.Url("/jobs/big")).body).as_object();
  CHECK(big_now.at("state").as_string() == "done");
  CHECK(big_now.at("exit_code").as_int64() == 0);
  CHECK_FALSE(big_now.contains("cancelled"));
  serve.process->Signal(SIGTERM);
  CHECK(serve.process->Wait(std::chrono::seconds(30)) == 0);
}

}  // namespace
}  // namespace nanobatch::serve
