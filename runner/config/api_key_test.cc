#include "runner/config/api_key.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <string>

#include "runner/testing/temp_dir.h"

namespace nanobatch::config {
namespace {

// Each test sets exactly the variables it means to.
struct CleanEnvironment {
  CleanEnvironment() {
    ::unsetenv("AIVIDEOAPI_API_KEY");
    ::unsetenv("CREDENTIALS_DIRECTORY");
  }
  ~CleanEnvironment() {
    ::unsetenv("AIVIDEOAPI_API_KEY");
    ::unsetenv("CREDENTIALS_DIRECTORY");
  }
};

TEST_CASE("api key: the environment wins over the key file and the credentials directory") {
  CleanEnvironment clean;
  testing::TempDir dir;
  const std::string file = dir.Write("key", "sk-from-file\n");
  dir.Write("aivideoapi_api_key", "sk-from-credentials\n");
  ::setenv("CREDENTIALS_DIRECTORY", dir.path().c_str(), 1);
  ::setenv("AIVIDEOAPI_API_KEY", "sk-from-env", 1);
  util::InputErrors errors;
  auto key = ResolveApiKey(file, errors);
  REQUIRE(key);
  CHECK(key->value == "sk-from-env");
  CHECK(key->source == "$AIVIDEOAPI_API_KEY");

  ::unsetenv("AIVIDEOAPI_API_KEY");
  key = ResolveApiKey(file, errors);
  REQUIRE(key);
  CHECK(key->value == "sk-from-file");  // the trailing newline is not part of the key

  key = ResolveApiKey("", errors);
  REQUIRE(key);
  CHECK(key->value == "sk-from-credentials");
  CHECK(errors.empty());
}

TEST_CASE("api key: a key file other users can read works, with a warning that says how to fix") {
  CleanEnvironment clean;
  testing::TempDir dir;
  const std::string file = dir.Write("key", "sk-from-file\n");
  REQUIRE(::chmod(file.c_str(), 0644) == 0);
  util::InputErrors errors;
  auto key = ResolveApiKey(file, errors);
  REQUIRE(key);
  CHECK(key->value == "sk-from-file");
  CHECK(key->warning == "the API key file " + file +
                            " can be read by other users (mode 0644): " + "chmod 600 " + file);
  CHECK(key->warning.find("sk-from-file") == std::string::npos);
  REQUIRE(::chmod(file.c_str(), 0600) == 0);
  key = ResolveApiKey(file, errors);
  REQUIRE(key);
  CHECK(key->warning.empty());
  CHECK(errors.empty());
}

TEST_CASE("api key: a key without the sk- prefix is used, with a warning that names its source") {
  CleanEnvironment clean;
  ::setenv("AIVIDEOAPI_API_KEY", "not-a-real-key-123", 1);
  util::InputErrors errors;
  auto key = ResolveApiKey("", errors);
  REQUIRE(key);
  CHECK(key->value == "not-a-real-key-123");
  CHECK(key->warning ==
        "the API key from $AIVIDEOAPI_API_KEY does not start with \"sk-\" as the API's keys do: "
        "expect it to be refused (401, exit 4)");
  CHECK(key->warning.find("not-a-real-key") == std::string::npos);  // the key is never quoted
  ::setenv("AIVIDEOAPI_API_KEY", "sk-good-key-123", 1);
  key = ResolveApiKey("", errors);
  REQUIRE(key);
  CHECK(key->warning.empty());
  CHECK(errors.empty());
}

TEST_CASE("api key: \"Bearer sk-...\" pasted whole is refused, saying to give the key alone") {
  CleanEnvironment clean;
  ::setenv("AIVIDEOAPI_API_KEY", "Bearer sk-pasted-from-curl", 1);
  util::InputErrors errors;
  CHECK_FALSE(ResolveApiKey("", errors));
  REQUIRE(errors.stored().size() == 1);
  CHECK(errors.stored()[0].message == "starts with \"Bearer \": give the key alone (sk-...)");
}

TEST_CASE("api key: none found, an unreadable file or a key that could inject a header") {
  CleanEnvironment clean;
  util::InputErrors errors;
  CHECK_FALSE(ResolveApiKey("", errors));
  CHECK(errors.stored().back().message.find("no API key") == 0);

  CHECK_FALSE(ResolveApiKey("/nonexistent/key", errors));
  CHECK(errors.stored().back().Format() ==
        "/nonexistent/key: api.key_file: cannot open: No such file or directory");
  // A relative path is taken from the working directory, and a missing one says so.
  CHECK_FALSE(ResolveApiKey("no-such-dir/key", errors));
  CHECK(errors.stored().back().message.find(
            "(a relative path is taken from the working directory, /") != std::string::npos);

  testing::TempDir dir;
  CHECK_FALSE(ResolveApiKey(dir.Write("k", "sk-abc\r\nX-Evil: 1\n"), errors));
  CHECK_FALSE(ResolveApiKey(dir.Write("e", "\n"), errors));
  // No error message ever contains the key.
  for (const auto& error : errors.stored())
    CHECK(error.Format().find("sk-abc") == std::string::npos);
}

}  // namespace
}  // namespace nanobatch::config
