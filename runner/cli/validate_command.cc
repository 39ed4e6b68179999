#include <array>
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <string>

#include "runner/api/spec.h"
#include "runner/cli/commands.h"
#include "runner/config/config.h"
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

  // Only counts are kept: validating a million-line manifest holds no prompt in memory. Counted
  // by the resolution's position in api::kResolutions (every valid item has one of them), with
  // the prices looked up once: not a map lookup by name, twice, per item.
  std::array<std::uint64_t, api::kResolutions.size()> by_resolution{};
  std::array<std::uint32_t, api::kResolutions.size()> price_of{};
  for (std::size_t i = 0; i < api::kResolutions.size(); ++i) {
    price_of[i] = config::PriceOf(config, std::string(api::kResolutions[i]));
  }
  std::uint64_t credits = 0;
  const auto start = std::chrono::steady_clock::now();
  const manifest::ManifestStats stats = manifest::ReadManifest(
      manifest_path, config.defaults,
      [&](manifest::Item&& item) {
        const int index = api::ResolutionIndex(item.resolution);
        if (index < 0) {  // validation refuses any other (PriceOf ends the process, naming it)
          credits += config::PriceOf(config, item.resolution);
          return;
        }
        ++by_resolution[static_cast<std::size_t>(index)];
        credits += price_of[static_cast<std::size_t>(index)];
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
  std::cout << manifest_path << ": " << stats.items << (stats.items == 1 ? " item" : " items");
  bool listed = false;
  for (std::size_t i = 0; i < by_resolution.size(); ++i) {
    if (by_resolution[i] == 0) continue;
    std::cout << (listed ? ", " : " (") << api::kResolutions[i] << ": " << by_resolution[i];
    listed = true;
  }
  if (listed) std::cout << ")";
  if (stats.entries > 0 && stats.entries != stats.items) {
    std::cout << ", expanded from " << stats.entries << (stats.entries == 1 ? " entry" : " entries")
              << " by matrix: and repeat:";
  }
  std::cout << ", " << credits << " credits at the configured prices; checked " << stats.lines
            << (stats.lines == 1 ? " line" : " lines") << " in " << std::fixed
            << std::setprecision(3) << seconds << " s\n";
  // Valid, but likely not what was meant (an export that wrote nothing, the wrong file).
  if (stats.items == 0) std::cerr << manifest_path << ": warning: the manifest holds no items\n";
  return kExitOk;
}

}  // namespace nanobatch::cli
