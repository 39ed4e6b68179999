// `nanobatch export --out DIR --format webdataset --to DEST`: the directory's finished images as
// training shards (runner/export). The journal is read as `status` reads it.
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <iostream>

#include "runner/cli/commands.h"
#include "runner/export/webdataset.h"
#include "runner/fs/output_dir.h"
#include "runner/journal/journal.h"

namespace nanobatch::cli {

int ExportCommand(const ExportOptions& options) {
  if (options.format != "webdataset") {
    std::cerr << "nanobatch: --format " << options.format << " is not known (webdataset)\n";
    return kExitBadInput;
  }
  constexpr std::uint64_t kMaxSamplesPerShard = 100'000'000;
  std::uint64_t samples_per_shard = 0;
  const std::string& text = options.samples_per_shard;
  const auto [end, problem] =
      std::from_chars(text.data(), text.data() + text.size(), samples_per_shard);
  if (problem != std::errc() || end != text.data() + text.size() || samples_per_shard == 0 ||
      samples_per_shard > kMaxSamplesPerShard) {
    std::cerr << "nanobatch: --samples-per-shard must be a whole number from 1 to "
              << kMaxSamplesPerShard << ", not \"" << text << "\"\n";
    return kExitBadInput;
  }
  // The shards are a copy of the dataset for training: written among its images, or into its
  // state, they would be taken for part of it (and export again into itself).
  std::error_code ignored;
  const auto out = std::filesystem::weakly_canonical(options.out, ignored);
  const auto to = std::filesystem::weakly_canonical(options.to, ignored);
  const auto state_dir = out / ".nanobatch";
  if (!out.empty() &&
      (to == out || std::mismatch(state_dir.begin(), state_dir.end(), to.begin(), to.end()).first ==
                        state_dir.end())) {
    std::cerr << "nanobatch: --to " << options.to
              << " is the run's output directory or its state; give a directory of its own "
                 "(a subdirectory such as "
              << options.out << "/shards will do)\n";
    return kExitBadInput;
  }
  std::string error;
  auto state = journal::Journal::OpenReadOnly(options.out, error);
  auto dir = state ? fs::OutputDir::Open(options.out, /*create=*/false, error) : nullptr;
  if (!state || !dir) {
    std::cerr << "nanobatch: " << error << "\n";
    return kExitBadInput;
  }
  const exporting::ExportResult result = exporting::ExportWebDataset(
      *state, *dir, options.to, {.samples_per_shard = samples_per_shard});
  if (!result.ok) {
    std::cerr << "nanobatch: export to " << options.to << " failed: " << result.error << "\n";
    return 3;
  }
  std::cout << options.to << ": " << result.samples << " samples in " << result.shards
            << (result.shards == 1 ? " shard" : " shards") << " (shard-000000.tar ...), "
            << result.bytes << " bytes of images\n";
  if (!result.skipped.empty()) {
    std::cerr << "nanobatch: " << result.skipped.size()
              << (result.skipped.size() == 1 ? " image is" : " images are")
              << " missing or changed on disk and left out (first: " << result.skipped.front()
              << "); `nanobatch run` fetches them again\n";
    return 1;
  }
  return kExitOk;
}

}  // namespace nanobatch::cli
