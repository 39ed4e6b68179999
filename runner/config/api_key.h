#pragma once
// The API key, from the first of (interface.md "API key"):
//   1. $AIVIDEOAPI_API_KEY
//   2. the file named by config `api.key_file`
//   3. $CREDENTIALS_DIRECTORY/aivideoapi_api_key (systemd LoadCredential=)
// The key is only ever returned to the caller, which puts it in an Authorization header; it is
// never printed, and error messages name where it was looked for, never its value.
//
// Example:
//   auto key = ResolveApiKey(config.api.key_file, errors);

#include <optional>
#include <string>

#include "runner/util/input_error.h"

namespace nanobatch::config {

struct ApiKey {
  std::string value{};
  std::string source;  // "$AIVIDEOAPI_API_KEY", a file path...: safe to log
  // Set when api.key_file can be read by other users, or the key does not start with sk-: the
  // key is still used, and the caller logs this so that someone fixes it.
  std::string warning{};
};

std::optional<ApiKey> ResolveApiKey(const std::string& key_file, util::InputErrors& errors);

}  // namespace nanobatch::config
