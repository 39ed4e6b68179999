#include <iostream>
#include <stdexcept>
#include <vector>

#include "runner/cli/commands.h"
#include "runner/config/api_key.h"
#include "runner/engine/engine.h"
#include "runner/journal/journal.h"
#include "runner/manifest/manifest.h"
#include "runner/util/log.h"
#include "runner/version.h"

namespace nanobatch::cli {

int RunCommand(config::Config config, const RunOptions& options) {
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

  std::string error;
  journal::OpenFailure failure = journal::OpenFailure::kNone;
  auto journal = journal::Journal::Open(config.out, {.salvage = options.salvage}, error, &failure);
  if (!journal) {
    util::LogError(error);
    // A lock held by another runner or a corrupt journal needs the user (2); a disk problem is
    // resumable once space or permissions are fixed (3). Nothing was submitted either way.
    return failure == journal::OpenFailure::kIo ? kExitStoppedResumable : kExitBadInput;
  }
  for (const std::string& warning : journal->recovery().warnings) util::LogWarning(warning);

  // An item whose content changed under the same explicit id would make the journal describe a
  // different image than the manifest asks for: refuse, naming each one.
  for (const manifest::Item& item : items) {
    const proto::ItemSnapshot* known = journal->state().Find(item.id);
    if (known != nullptr && !known->content_hash().empty() &&
        known->content_hash() != manifest::ContentHash(item)) {
      errors.Add({config.manifest, item.line, "id",
                  "\"" + item.id + "\" was already generated from different content in " +
                      config.out + "; give the changed item a new id"});
    }
  }
  if (!errors.empty()) {
    errors.Print(std::cerr);
    std::cerr << "nanobatch: nothing was submitted\n";
    return kExitBadInput;
  }

  util::LogInfo("nanobatch " + std::string(kVersion) + ": API key from " + key->source +
                "; output in " + config.out);
  try {
    return engine::RunEngine(
        config, key->value, std::move(items), *journal,
        {.retry_failed = options.retry_failed, .verify_images = options.verify_images});
  } catch (const std::runtime_error& e) {
    util::LogError(e.what());  // for example, the CA file cannot be loaded
    return kExitBadInput;
  }
}

}  // namespace nanobatch::cli
