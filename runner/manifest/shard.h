#pragma once
// Sharding a manifest across machines: `run --shard K/N` takes only the items whose id hashes to
// shard K, so N runs with the same manifest and K = 0 .. N-1 process every item exactly once.
//
// The hash is documented and stable (README "Sharding"): FNV-1a, 64 bits, over the id's bytes
// (an explicit id as written, or the derived `item-...` id), modulo N. It depends on nothing but
// the id: not the machine, the version, the manifest's order or the other items.
//
// Example:
//   std::string error;
//   auto shard = ParseShard("auto/8", std::getenv, error);   // K from the scheduler
//   if (shard && InShard(*shard, item.id)) ...

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace nanobatch::manifest {

struct Shard {
  std::uint32_t index = 0;  // K
  std::uint32_t count = 1;  // N
};

inline constexpr std::uint32_t kMaxShards = 100'000;

// "K/N" (0 <= K < N <= 100,000), or "auto/N": K from $JOB_COMPLETION_INDEX (a Kubernetes
// Indexed Job), else $SLURM_ARRAY_TASK_ID (a Slurm array). nullopt with `error` otherwise.
using Getenv = std::function<const char*(const char*)>;
std::optional<Shard> ParseShard(std::string_view text, const Getenv& getenv, std::string& error);

std::uint32_t ShardOf(std::string_view id, std::uint32_t count);
inline bool InShard(const Shard& shard, std::string_view id) {
  return shard.count <= 1 || ShardOf(id, shard.count) == shard.index;
}

}  // namespace nanobatch::manifest
