#include "runner/config/api_key.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "runner/util/input_file.h"

namespace nanobatch::config {
namespace {

constexpr std::size_t kMaxKeyBytes = 4096;

// A key file usually ends with a newline; anything else that is not a visible ASCII character
// would corrupt (or inject into) the HTTP header, so it is refused rather than sent.
std::optional<std::string> CleanKey(std::string raw, const std::string& source,
                                    util::InputErrors& errors) {
  while (!raw.empty() && (raw.back() == '\n' || raw.back() == '\r' || raw.back() == ' ')) {
    raw.pop_back();
  }
  if (raw.empty()) {
    errors.Add({source, 0, "api key", "is empty"});
    return std::nullopt;
  }
  for (char c : raw) {
    if (c <= ' ' || c > '~') {
      // "Bearer sk-..." copied from a curl command line: the scheme is nanobatch's to add.
      const bool bearer = raw.size() > 7 &&
                          (raw.compare(0, 7, "Bearer ") == 0 || raw.compare(0, 7, "bearer ") == 0);
      errors.Add({source, 0, "api key",
                  bearer ? "starts with \"Bearer \": give the key alone (sk-...)"
                         : "contains a space or a non-printable character"});
      return std::nullopt;
    }
  }
  return raw;
}

std::optional<std::string> ReadKeyFile(const std::string& path, util::InputErrors& errors) {
  std::string content, error;
  util::InputFileProblem problem = util::InputFileProblem::kNone;
  if (!util::ReadInputFile(path, kMaxKeyBytes, content, error, &problem)) {
    // configs/example.yaml: paths in a config are relative to the working directory, not to the
    // config file; a unit or a cron job often runs elsewhere than its author did.
    if (problem == util::InputFileProblem::kCannotOpen && !path.empty() && path.front() != '/' &&
        !std::filesystem::exists(path)) {
      std::error_code ignored;
      error += " (a relative path is taken from the working directory, " +
               std::filesystem::current_path(ignored).string() + ")";
    }
    errors.Add({path, 0, "api.key_file", error});
    return std::nullopt;
  }
  return CleanKey(std::move(content), path, errors);
}

// The first key found, as ResolveApiKey documents.
std::optional<ApiKey> FindApiKey(const std::string& key_file, util::InputErrors& errors) {
  if (const char* env = std::getenv("AIVIDEOAPI_API_KEY"); env != nullptr && *env != '\0') {
    auto key = CleanKey(env, "$AIVIDEOAPI_API_KEY", errors);
    if (!key) return std::nullopt;
    return ApiKey{std::move(*key), "$AIVIDEOAPI_API_KEY"};
  }
  if (!key_file.empty()) {
    auto key = ReadKeyFile(key_file, errors);
    if (!key) return std::nullopt;
    ApiKey found{std::move(*key), key_file, ""};
    struct stat info;
    if (::stat(key_file.c_str(), &info) == 0 && (info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
      found.warning = "the API key file " + key_file + " can be read by other users (mode " + mode +
                      "): chmod 600 " + key_file;
    }
    return found;
  }
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir != nullptr && *dir != '\0') {
    const std::string path = std::string(dir) + "/aivideoapi_api_key";
    auto key = ReadKeyFile(path, errors);
    if (!key) return std::nullopt;
    return ApiKey{std::move(*key), path};
  }
  errors.Add({"api key", 0, "-",
              "no API key: set $AIVIDEOAPI_API_KEY, or api.key_file in the config, or "
              "LoadCredential=aivideoapi_api_key in the systemd unit"});
  return std::nullopt;
}

}  // namespace

std::optional<ApiKey> ResolveApiKey(const std::string& key_file, util::InputErrors& errors) {
  std::optional<ApiKey> key = FindApiKey(key_file, errors);
  // api.md: a key that does not start with sk- is refused (401). Still sent (a gateway in front
  // may issue keys of its own), but the user learns why before the run stops with exit 4.
  if (key && key->value.rfind("sk-", 0) != 0) {
    key->warning += (key->warning.empty() ? "" : "; ") + std::string("the API key from ") +
                    key->source +
                    " does not start with \"sk-\" as the API's keys do: expect it to be refused "
                    "(401, exit 4)";
  }
  return key;
}

}  // namespace nanobatch::config
