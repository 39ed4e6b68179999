// Sharding end to end (interface.md "Sharding"): N runs of the real binary with the same manifest
// and --shard K/N process every item exactly once (counted by the simulator), and
// tools/merge_shards merges their output directories into one dataset, refusing conflicts.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <set>
#include <string>

#include "runner/testing/fake_api_process.h"
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

constexpr const char* kMergeShards = "tools/merge_shards/merge_shards";
constexpr const char* kConfig =
    "polling: {first_poll_s: 0.05, max_interval_s: 0.2}\n"
    "log: {progress_interval_s: 60}\n"
    "limits: {rate: 300, burst: 30, max_in_flight: 8}\n";

std::string Manifest(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    out += "{\"id\":\"s" + std::to_string(i) + "\",\"prompt\":\"shard prompt " + std::to_string(i) +
           "\"}\n";
  }
  return out;
}

TEST_CASE("shards: K = 0..N-1 process every item exactly once; merge_shards joins them") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "5", "--processing-ms", "5"});
  testing::RunnerJob job(dir, api, Manifest(30), kConfig, "sk-test");
  std::vector<std::string> outs;
  std::set<std::string> ids;
  std::size_t lines = 0;
  for (int k = 0; k < 3; ++k) {
    const std::string out = dir.File("shard-" + std::to_string(k));
    outs.push_back(out);
    std::vector<std::string> args = job.Args({"--shard", std::to_string(k) + "/3"});
    // Each shard has its own output directory (its own journal and budget slice).
    args.insert(args.end(), {"--out", out});
    ProcessResult result = testing::RunProcess(args, {{"AIVIDEOAPI_API_KEY", "sk-test"}});
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    CHECK(result.err.find("(shard " + std::to_string(k) + " of 3 of 30)") != std::string::npos);
    ProcessResult status =
        testing::RunProcess({testing::kNanobatchBinary, "status", "--out", out, "--json"});
    const json::object parsed = json::parse(status.out).as_object();
    CHECK(parsed.at("shard").as_string() == std::to_string(k) + "/3");
    CHECK(parsed.at("done").as_int64() == parsed.at("total").as_int64());
    testing::RunnerJob shard_job = job;
    shard_job.out = out;
    for (const json::object& line : shard_job.Lines("metadata.jsonl")) {
      ++lines;
      CHECK(ids.insert(std::string(line.at("id").as_string())).second);  // in no other shard
    }
  }
  CHECK(lines == 30);
  CHECK(ids.size() == 30);
  const json::object stats = api.Stats();
  CHECK(Stat(stats, "submissions") == 30);
  CHECK(Stat(stats, "duplicate_prompt_submissions") == 0);

  // auto/N takes K from the scheduler's environment: shard 2 again, nothing left to do.
  std::vector<std::string> again = job.Args({"--shard", "auto/3", "--out", outs[2]});
  ProcessResult slurm =
      testing::RunProcess(again, {{"AIVIDEOAPI_API_KEY", "sk-test"}, {"SLURM_ARRAY_TASK_ID", "2"}});
  CHECK(slurm.exit_code == 0);
  CHECK(Stat(api.Stats(), "submissions") == 30);
  ProcessResult bad =
      testing::RunProcess(job.Args({"--shard", "3/3"}), {{"AIVIDEOAPI_API_KEY", "sk-test"}});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--shard: shard 3 is not from 0 to 2") != std::string::npos);

  // The merge: one dataset of 30 items.
  const std::string merged = dir.File("merged");
  ProcessResult merge = testing::RunProcess({kMergeShards, merged, outs[0], outs[1], outs[2]});
  INFO(merge.err);
  REQUIRE(merge.exit_code == 0);
  testing::RunnerJob merged_job = job;
  merged_job.out = merged;
  const auto merged_lines = merged_job.Lines("metadata.jsonl");
  CHECK(merged_lines.size() == 30);
  for (const json::object& line : merged_lines) {
    CHECK(std::filesystem::exists(merged + "/" + std::string(line.at("file_name").as_string())));
  }
  // Conflicts are refused, every one named, nothing written: the same items in two shards...
  const std::string copy = dir.File("copy-of-0");
  std::filesystem::copy(outs[0], copy, std::filesystem::copy_options::recursive);
  ProcessResult conflict = testing::RunProcess({kMergeShards, dir.File("conflict"), outs[0], copy});
  CHECK(conflict.exit_code == 1);
  CHECK(conflict.err.find("is also in") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.File("conflict") + "/metadata.jsonl"));
  // ...one shard named twice (however spelt), or the output among the shards.
  ProcessResult twice =
      testing::RunProcess({kMergeShards, dir.File("twice"), outs[0], outs[0] + "/."});
  CHECK(twice.exit_code == 1);
  CHECK(twice.err.find(outs[0] + "/.: is given twice (as " + outs[0] + ")") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.File("twice") + "/metadata.jsonl"));
  ProcessResult into = testing::RunProcess({kMergeShards, outs[1], outs[0], outs[1]});
  CHECK(into.exit_code == 1);
  CHECK(into.err.find(outs[1] + ": is OUT, the directory to merge into") != std::string::npos);
  const json::object first_line = [&] {
    testing::RunnerJob shard_job = job;
    shard_job.out = outs[1];
    return shard_job.Lines("metadata.jsonl").front();
  }();
  std::filesystem::remove(outs[1] + "/" + std::string(first_line.at("file_name").as_string()));
  ProcessResult missing =
      testing::RunProcess({kMergeShards, dir.File("missing"), outs[0], outs[1], outs[2]});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("is missing") != std::string::npos);
}

}  // namespace
}  // namespace nanobatch::engine
