// The shipped systemd unit, checked with the tools systemd users check units with (where this
// machine has them): `systemd-analyze verify` reports nothing, and `systemd-analyze security
// --offline=yes` rates its exposure at 2.0 or less (the unit needs no privilege at all).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "runner/testing/fake_api_process.h"
#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch {
namespace {

constexpr const char* kAnalyze = "/usr/bin/systemd-analyze";

std::string Read(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST_CASE("systemd unit: verify is clean and the exposure is at most 2.0") {
  if (::access(kAnalyze, X_OK) != 0) {
    MESSAGE("systemd-analyze is not installed here: unit checks skipped");
    return;
  }
  testing::TempDir dir;
  // verify checks that ExecStart= exists: point it at the binary just built.
  std::string unit = Read("configs/nanobatch.service");
  REQUIRE_FALSE(unit.empty());
  const std::string binary = std::filesystem::absolute(testing::kNanobatchBinary).string();
  unit = std::regex_replace(unit, std::regex("/usr/local/bin/nanobatch"), binary);
  const std::string path = dir.Write("nanobatch.service", unit);

  testing::ProcessResult verify = testing::RunProcess({kAnalyze, "verify", path});
  INFO(verify.err);
  CHECK(verify.exit_code == 0);
  CHECK(verify.err.empty());

  testing::ProcessResult security =
      testing::RunProcess({kAnalyze, "security", "--offline=yes", path});
  INFO(security.out);
  std::smatch match;
  REQUIRE(std::regex_search(security.out, match,
                            std::regex("Overall exposure level for [^:]*: ([0-9.]+)")));
  CHECK(std::stod(match[1].str()) <= 2.0);
}

}  // namespace
}  // namespace nanobatch
