#include "runner/manifest/shard.h"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

namespace nanobatch::manifest {
namespace {

const char* NoEnv(const char*) { return nullptr; }

TEST_CASE("shard: K/N and auto/N parse; everything else is an error that says what is wanted") {
  std::string error;
  auto shard = ParseShard("2/5", NoEnv, error);
  REQUIRE(shard);
  CHECK(shard->index == 2);
  CHECK(shard->count == 5);
  for (const char* bad : {"5/5", "-1/5", "1/0", "1", "1/", "/3", "a/3", "1/3x", "0/100001"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseShard(bad, NoEnv, error).has_value());
  }
  CHECK(error.find("N from 1 to 100000") != std::string::npos);
  // auto: the Kubernetes index first, then Slurm's.
  std::map<std::string, std::string> env = {{"SLURM_ARRAY_TASK_ID", "3"}};
  auto getenv = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  CHECK(ParseShard("auto/4", getenv, error)->index == 3);
  env["JOB_COMPLETION_INDEX"] = "1";
  CHECK(ParseShard("auto/4", getenv, error)->index == 1);
  env["JOB_COMPLETION_INDEX"] = "7";
  CHECK_FALSE(ParseShard("auto/4", getenv, error).has_value());
  CHECK(error ==
        "shard 7 is not from 0 to 3 ($JOB_COMPLETION_INDEX: the job's completions must "
        "be 4, for auto/4)");
  // A Slurm array numbered from 1 is told to start at 0 (its last task would have no shard, and
  // shard 0 no task).
  env.erase("JOB_COMPLETION_INDEX");
  env["SLURM_ARRAY_TASK_ID"] = "4";
  CHECK_FALSE(ParseShard("auto/4", getenv, error).has_value());
  CHECK(error ==
        "shard 4 is not from 0 to 3 ($SLURM_ARRAY_TASK_ID: the array must be numbered "
        "from 0, --array=0-3, for auto/4)");
  CHECK_FALSE(ParseShard("4/4", getenv, error).has_value());  // not auto: no word of Slurm
  CHECK(error == "shard 4 is not from 0 to 3");
  CHECK_FALSE(ParseShard("auto/4", NoEnv, error).has_value());
  CHECK(error.find("JOB_COMPLETION_INDEX") != std::string::npos);
}

TEST_CASE("shard: N shards cover every id exactly once, evenly, and the hash never changes") {
  constexpr std::uint32_t kShards = 7;
  std::map<std::uint32_t, int> sizes;
  for (int i = 0; i < 70'000; ++i) {
    const std::string id = "img-" + std::to_string(i);
    int owners = 0;
    for (std::uint32_t k = 0; k < kShards; ++k) owners += InShard({k, kShards}, id);
    CHECK(owners == 1);
    ++sizes[ShardOf(id, kShards)];
  }
  for (const auto& [shard, size] : sizes) CHECK(size == doctest::Approx(10'000).epsilon(0.05));
  // The documented hash: FNV-1a 64 of the bytes, mod N. Fixed values guard against any change
  // (shards of a running job must not move between versions).
  CHECK(ShardOf("", 1000) == 14695981039346656037ull % 1000);
  CHECK(ShardOf("a", 1'000'000'007) == 12638187200555641996ull % 1'000'000'007);
  CHECK(InShard({0, 1}, "anything"));
}

}  // namespace
}  // namespace nanobatch::manifest
