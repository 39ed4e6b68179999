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
  std::string_view from;  // the variable K came from, with auto
  if (k_text == "auto") {
    for (const char* variable : {"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"}) {
      const char* value = getenv(variable);
      if (value == nullptr || *value == '\0') continue;
      from = variable;
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
    // Slurm arrays are often numbered from 1, which leaves shard 0 to nobody.
    if (from == "SLURM_ARRAY_TASK_ID") {
      error += " ($SLURM_ARRAY_TASK_ID: the array must be numbered from 0, --array=0-" +
               std::to_string(*count - 1) + ", for auto/" + std::to_string(*count) + ")";
    } else if (!from.empty()) {
      error += " ($" + std::string(from) + ": the job's completions must be " +
               std::to_string(*count) + ", for auto/" + std::to_string(*count) + ")";
    }
    return std::nullopt;
  }
  return Shard{*index, *count};
}

}  // namespace nanobatch::manifest
