#pragma once
// RunnerJob: one `nanobatch run` job against a FakeApiProcess, for end-to-end tests: a manifest,
// an output directory and a config written into a TempDir, runs of the real binary with the key
// in the environment, and the job's files and `status --json` read back.
//
// Example:
//   RunnerJob job(dir, api, "{\"prompt\":\"cat\"}\n", "limits: {rate: 100}\n", "sk-test");
//   ProcessResult r = job.Run({"--budget-credits", "100"});
//   CHECK(job.Status().at("done").as_int64() == 1);

#include <boost/json/object.hpp>
#include <string>
#include <vector>

#include "runner/testing/fake_api_process.h"
#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::testing {

class RunnerJob {
 public:
  RunnerJob(TempDir& dir, FakeApiProcess& api, const std::string& manifest_text,
            const std::string& config_text, std::string key);

  // The runner's argv: pointed at the simulator, with `extra` flags after it.
  std::vector<std::string> Args(const std::vector<std::string>& extra = {}) const;
  // Runs to the end (at most two minutes) with `key` (default: the job's) in the environment.
  ProcessResult Run(const std::vector<std::string>& extra = {}, const std::string& key = "") const;
  // `nanobatch status --out <out> --json`, parsed; throws if it fails.
  boost::json::object Status() const;
  // The JSON lines of `<out>/<name>` (metadata.jsonl, failed.jsonl).
  std::vector<boost::json::object> Lines(const std::string& name) const;

  TempDir& dir;
  FakeApiProcess& api;
  std::string manifest;
  std::string out;
  std::string config;
  std::string key;
};

// Fast timings for a simulator that answers in milliseconds.
inline constexpr const char* kFastTestConfig =
    "polling: {first_poll_s: 0.05, max_interval_s: 0.3, task_deadline_s: 60}\n"
    "retry: {max_attempts: 8, base_delay_s: 0.02, max_delay_s: 0.2, spend_limit_pause_s: 0.2,"
    " spend_limit_give_up_s: 30}\n"
    "timeouts: {connect_s: 5, request_s: 10, download_s: 20}\n"
    "log: {progress_interval_s: 60}\n"
    "limits: {rate: 300, burst: 30, max_in_flight: 16, max_downloads: 4}\n";

// A job with kFastTestConfig (then `extra_config`, whose keys win) and the simulator's default
// key.
struct FastJob : RunnerJob {
  FastJob(TempDir& d, FakeApiProcess& a, const std::string& manifest_text,
          const std::string& extra_config = "")
      : RunnerJob(d, a, manifest_text, std::string(kFastTestConfig) + extra_config, "sk-test") {}
};

}  // namespace nanobatch::testing
