#include <iostream>

#include "runner/cli/commands.h"
#include "runner/config/api_key.h"
#include "runner/http/client.h"
#include "runner/serve/daemon.h"
#include "runner/util/log.h"
#include "runner/util/server_text.h"
#include "runner/version.h"

namespace nanobatch::cli {

int ServeCommand(config::Config config, const std::string& config_path) {
  util::InputErrors errors;
  std::optional<config::ApiKey> key = config::ResolveApiKey(config.api.key_file, errors);
  if (std::string trust_error; !http::Client::CheckTrustStore(config.api.ca_file, trust_error)) {
    errors.Add({"config", 0, "api.ca_file", trust_error});
  }
  if (!errors.empty()) {
    errors.Print(std::cerr);
    return kExitBadInput;
  }
  util::RegisterSecret(key->value);
  util::LogInfo("nanobatch " + std::string(kVersion) + " serve: API key from " + key->source +
                "; spool " + config.serve.spool_dir);
  return serve::RunDaemon(std::move(config), config_path, key->value);
}

}  // namespace nanobatch::cli
