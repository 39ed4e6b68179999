#include <iostream>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runner/cli/commands.h"
#include "runner/config/api_key.h"
#include "runner/engine/engine.h"
#include "runner/http/client.h"
#include "runner/journal/journal.h"
#include "runner/manifest/item_store.h"
#include "runner/util/log.h"
#include "runner/util/server_text.h"
#include "runner/version.h"

namespace nanobatch::cli {

int RunCommand(config::Config config, const RunOptions& options) {
  util::InputErrors errors;
  // Everything is checked before anything is spent: the key, then the whole manifest, against
  // the journal of the output directory (whose lock this run holds from here on).
  std::optional<config::ApiKey> key = config::ResolveApiKey(config.api.key_file, errors);
  if (std::string trust_error; !http::Client::CheckTrustStore(config.api.ca_file, trust_error)) {
    errors.Add({"config", 0, "api.ca_file", trust_error});
  }
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
    // A lock held by another runner, a corrupt journal or an --out that is not a directory
    // needs the user (2); a disk problem is resumable once space or permissions are fixed (3).
    // Nothing was submitted either way.
    return failure == journal::OpenFailure::kIo ? kExitStoppedResumable : kExitBadInput;
  }
  for (const std::string& warning : journal->recovery().warnings) util::LogWarning(warning);

  // One pass over the manifest validates every item and plans each one from the journal; the
  // items themselves are not kept (the store re-reads each when its turn comes).
  engine::JobPlanner planner(journal->state(), journal->dir().fd(),
                             {.manifest = config.manifest,
                              .out = config.out,
                              .callbacks = !config.callbacks.public_url.empty(),
                              .retry_failed = options.retry_failed,
                              .verify_images = options.verify_images,
                              .shard = options.shard});
  std::unique_ptr<manifest::ItemStore> store = manifest::ItemStore::Open(
      config.manifest, config.defaults,
      [&](manifest::Item&& item, std::uint32_t index) { planner.Visit(item, index, errors); },
      errors);
  if (errors.empty()) planner.Finish(*store, errors);
  if (!errors.empty()) {
    errors.Print(std::cerr);
    std::cerr << "nanobatch: nothing was submitted\n";
    return kExitBadInput;
  }

  store->ReleaseNameIndex();  // validated and planned: the run needs items by index only

  // From here on, whatever a server sends back is scrubbed of the key before it is printed or
  // stored (util::ServerText), and every log line is too.
  util::RegisterSecret(key->value);
  util::LogInfo("nanobatch " + std::string(kVersion) + ": API key from " + key->source +
                "; output in " + config.out);
  // An exception escaping the engine is a bug: main reports it and exits 70.
  return engine::RunEngine(config, key->value, *store, planner.Take(), *journal,
                           {.retry_failed = options.retry_failed, .shard = options.shard});
}

}  // namespace nanobatch::cli
