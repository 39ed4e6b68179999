#include <chrono>
#include <iostream>
#include <map>

#include "runner/cli/commands.h"
#include "runner/manifest/manifest.h"

namespace nanobatch::cli {

int ValidateCommand(const std::string& manifest_path, const std::string& config_path) {
  config::Config config;
  util::InputErrors errors;
  if (!config_path.empty()) {
    // The config is checked as `run` checks it (all but the manifest and out it may not name).
    if (config::LoadConfigFile(config_path, config, errors)) {
      config::ValidateConfig(config, errors, {.require_paths = false});
    }
    if (!errors.empty()) {
      errors.Print(std::cerr);
      return kExitBadInput;
    }
  }

  // Only counts are kept: validating a million-line manifest holds no prompt in memory.
  std::map<std::string, std::size_t> by_resolution;
  std::uint64_t credits = 0;
  const auto start = std::chrono::steady_clock::now();
  const manifest::ManifestStats stats = manifest::ReadManifest(
      manifest_path, config.defaults,
      [&](manifest::Item&& item) {
        ++by_resolution[item.resolution];
        credits += config::PriceOf(config, item.resolution);
      },
      errors);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!errors.empty()) {
    errors.Print(std::cerr);
    std::cerr << manifest_path << ": " << errors.total() << " error"
              << (errors.total() == 1 ? "" : "s") << "; nothing was submitted\n";
    return kExitBadInput;
  }
  std::cout << manifest_path << ": " << stats.items << " items";
  for (const auto& [resolution, count] : by_resolution) {
    std::cout << (resolution == by_resolution.begin()->first ? " (" : ", ") << resolution << ": "
              << count;
  }
  if (!by_resolution.empty()) std::cout << ")";
  if (stats.entries > 0 && stats.entries != stats.items) {
    std::cout << ", expanded from " << stats.entries << " entries by matrix: and repeat:";
  }
  std::cout << ", " << credits << " credits at the configured prices; checked " << stats.lines
            << " lines in " << seconds << " s\n";
  return kExitOk;
}

}  // namespace nanobatch::cli
