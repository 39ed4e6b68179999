#include <iostream>
#include <vector>

#include "runner/cli/commands.h"
#include "runner/config/api_key.h"
#include "runner/manifest/manifest.h"

namespace nanobatch::cli {

int RunCommand(config::Config config) {
  util::InputErrors errors;
  // Everything is checked before anything is spent: key, then the whole manifest.
  std::optional<config::ApiKey> key = config::ResolveApiKey(config.api.key_file, errors);
  std::vector<manifest::Item> items;
  manifest::ReadManifest(
      config.manifest, config.defaults,
      [&](manifest::Item&& item) { items.push_back(std::move(item)); }, errors);
  if (!errors.empty()) {
    errors.Print(std::cerr);
    std::cerr << "nanobatch: nothing was submitted\n";
    return kExitBadInput;
  }
  std::cerr << "nanobatch: " << items.size() << " items checked; the engine that submits them "
            << "is not part of this build yet\n";
  return kExitBadInput;
}

int StatusCommand(const std::string& out_dir, bool json) {
  std::cerr << "nanobatch: no journal under " << out_dir << "/.nanobatch\n";
  return kExitBadInput;
}

}  // namespace nanobatch::cli
