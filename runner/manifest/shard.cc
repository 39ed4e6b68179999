#include "runner/manifest/shard.h"

#include <charconv>

#include "runner/util/fnv.h"

namespace nanobatch::manifest {
namespace {

std::optional<std::uint32_t> Number(std::string_view text) {
  std::uint32_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::uint32_t ShardOf(std::string_view id, std::uint32_t count) {
  return count == 0 ? 0 : static_cast<std::uint32_t>(util::Fnv1a64(id) % count);
}

std::optional<Shard> ParseShard(std::string_view text, const Getenv& getenv, std::string& error) {
  const auto slash = text.find('/');
  const std::string_view k_text = text.substr(0, slash);
  const auto count =
      slash == std::string_view::npos ? std::nullopt : Number(text.substr(slash + 1));
  if (!count || *count < 1 || *count > kMaxShards) {
    error = "\"" + std::string(text) + "\" is not K/N or auto/N (N from 1 to " +
            std::to_string(kMaxShards) + ")";
    return std::nullopt;
  }
  std::optional<std::uint32_t> index;
  if (k_text == "auto") {
    for (const char* variable : {"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"}) {
      const char* value = getenv(variable);
      if (value == nullptr || *value == '\0') continue;
      index = Number(value);
      if (!index) {
        error = std::string("$") + variable + " is \"" + value + "\", not a shard number";
        return std::nullopt;
      }
      break;
    }
    if (!index) {
      error = "auto/" + std::to_string(*count) +
              " needs $JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or $SLURM_ARRAY_TASK_ID "
              "(Slurm array)";
      return std::nullopt;
    }
  } else {
    index = Number(k_text);
  }
  if (!index || *index >= *count) {
    error = "shard " + (index ? std::to_string(*index) : "\"" + std::string(k_text) + "\"") +
            " is not from 0 to " + std::to_string(*count - 1);
    return std::nullopt;
  }
  return Shard{*index, *count};
}

}  // namespace nanobatch::manifest
