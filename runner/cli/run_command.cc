#include <iostream>
#include <stdexcept>
#include <string_view>
#include <variant>

#include "runner/cli/commands.h"
#include "runner/config/api_key.h"
#include "runner/engine/engine.h"
#include "runner/engine/job_inputs.h"
#include "runner/http/client.h"
#include "runner/manifest/manifest.h"
#include "runner/util/log.h"
#include "runner/util/server_text.h"
#include "runner/version.h"

namespace nanobatch::cli {

std::optional<config::ApiKey> ResolveKeyAndTrust(const config::Config& config,
                                                 util::InputErrors& errors) {
  std::optional<config::ApiKey> key = config::ResolveApiKey(config.api.key_file, errors);
  if (std::string trust_error; !http::Client::CheckTrustStore(config.api.ca_file, trust_error)) {
    errors.Add({"config", 0, "api.ca_file", trust_error});
  }
  return key;
}

int RunCommand(const config::Config& config, const RunOptions& options) {
  util::InputErrors errors;
  // Everything is checked before anything is spent: the key, then the whole manifest, against
  // the journal of the output directory (whose lock this run holds from here on).
  std::optional<config::ApiKey> key = ResolveKeyAndTrust(config, errors);
  if (!errors.empty()) {
    // The manifest's own errors too, as `validate` finds them: whoever sets the key next should
    // not learn of them only then. The output directory is left alone.
    if (!config.manifest.empty()) {
      manifest::ReadManifest(
          config.manifest, config.defaults, [](manifest::Item&&) {}, errors);
    }
    errors.Print(std::cerr);
    std::cerr << "nanobatch: nothing was submitted\n";
    return kExitBadInput;
  }

  auto opened = engine::OpenJobInputs({.plan = {.manifest = config.manifest,
                                                .out = config.out,
                                                .callbacks = !config.callbacks.public_url.empty(),
                                                .retry_failed = options.retry_failed,
                                                .verify_images = options.verify_images,
                                                .shard = options.shard,
                                                .redo = {options.redo.begin(), options.redo.end()}},
                                       .defaults = config.defaults,
                                       .salvage = options.salvage},
                                      errors);
  if (auto* failure = std::get_if<engine::JobInputsFailure>(&opened)) {
    if (!failure->message.empty()) util::LogError(failure->message);
    if (!errors.empty()) {
      errors.Print(std::cerr);
      std::cerr << "nanobatch: nothing was submitted\n";
    }
    return failure->exit_code;
  }
  engine::JobInputs& inputs = std::get<engine::JobInputs>(opened);

  // From here on, whatever a server sends back is scrubbed of the key before it is printed or
  // stored (util::ServerText), and every log line is too.
  util::RegisterSecret(key->value);
  util::LogInfo("nanobatch " + std::string(kVersion) + ": API key from " + key->source +
                "; output in " + config.out);
  if (!key->warning.empty()) util::LogWarning(key->warning);
  // An exception escaping the engine is a bug: main reports it and exits 70.
  return engine::RunEngine(config, key->value, *inputs.store, std::move(inputs.plan),
                           *inputs.journal,
                           {.retry_failed = options.retry_failed,
                            .shard = options.shard,
                            .manifest_path = config.manifest,
                            .name = ""});
}

}  // namespace nanobatch::cli
