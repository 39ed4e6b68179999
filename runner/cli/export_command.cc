// `nanobatch export --out DIR --format webdataset --to DEST`: the directory's finished images as
// training shards (runner/export). The journal is read as `status` reads it.
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
  if (options.samples_per_shard == 0) {
    std::cerr << "nanobatch: --samples-per-shard must be at least 1\n";
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
      *state, *dir, options.to, {.samples_per_shard = options.samples_per_shard});
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
