#include <iostream>

#include "runner/cli/commands.h"
#include "runner/serve/daemon.h"
#include "runner/util/log.h"
#include "runner/util/server_text.h"
#include "runner/version.h"

namespace nanobatch::cli {

int ServeCommand(config::Config config, const std::string& config_path) {
  util::InputErrors errors;
  std::optional<config::ApiKey> key = ResolveKeyAndTrust(config, errors);
  if (!errors.empty()) {
    errors.Print(std::cerr);
    return kExitBadInput;
  }
  util::RegisterSecret(key->value);
  util::LogInfo("nanobatch " + std::string(kVersion) + " serve: API key from " + key->source +
                "; spool " + config.serve.spool_dir);
  if (!key->warning.empty()) util::LogWarning(key->warning);
  return serve::RunDaemon(std::move(config), config_path, key->value);
}

}  // namespace nanobatch::cli
