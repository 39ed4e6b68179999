// The shipped systemd unit, checked with the tools systemd users check units with (where this
// machine has them): `systemd-analyze verify` reports nothing, and `systemd-analyze security
// --offline=yes` rates its exposure at 2.0 or less (the unit needs no privilege at all).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
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

TEST_CASE("systemd units: verify is clean and the exposure is at most 2.0") {
  if (::access(kAnalyze, X_OK) != 0) {
    MESSAGE("systemd-analyze is not installed here: unit checks skipped");
    return;
  }
  testing::TempDir dir;
  const std::string binary = std::filesystem::absolute(testing::kNanobatchBinary).string();
  // nanobatch@.service is checked as an instance (nanobatch@cats.service).
  for (const auto& [shipped, name] : {std::pair{"nanobatch.service", "nanobatch.service"},
                                      std::pair{"nanobatch@.service", "nanobatch@cats.service"}}) {
    const std::string unit_name = name;  // (clang 14 cannot capture a structured binding)
    CAPTURE(unit_name);
    // verify checks that ExecStart= exists: point it at the binary just built.
    std::string unit = Read(std::string("configs/") + shipped);
    REQUIRE_FALSE(unit.empty());
    unit = std::regex_replace(unit, std::regex("/usr/local/bin/nanobatch"), binary);
    const std::string path = dir.Write(name, unit);

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
}

TEST_CASE("install.sh: binary, units, the service user and the configs, staged under a destdir") {
  testing::TempDir dir;
  const std::string stage = dir.File("stage");
  const std::map<std::string, std::string> built = {
      {"NANOBATCH_BINARY", testing::kNanobatchBinary},
      {"MERGE_SHARDS_BINARY", "tools/merge_shards/merge_shards"}};
  testing::ProcessResult install =
      testing::RunProcess({"tools/install.sh", "--destdir", stage, "--prefix", "/opt/nb"}, built);
  INFO(install.err);
  REQUIRE(install.exit_code == 0);
  auto mode = [](const std::string& path) {
    return std::filesystem::status(path).permissions() & std::filesystem::perms::mask;
  };
  using std::filesystem::perms;
  CHECK(mode(stage + "/opt/nb/bin/nanobatch") ==
        (perms::owner_all | perms::group_read | perms::group_exec | perms::others_read |
         perms::others_exec));
  // A run's config reaches nanobatch@NAME as a credential: root's alone on disk. serve's is read
  // again on reload by the service's group.
  CHECK(mode(stage + "/etc/nanobatch/nanobatch.yaml") == (perms::owner_read | perms::owner_write));
  CHECK(mode(stage + "/etc/nanobatch/serve.yaml") ==
        (perms::owner_read | perms::owner_write | perms::group_read));
  CHECK(mode(stage + "/etc/nanobatch") ==
        (perms::owner_all | perms::group_read | perms::group_exec));
  CHECK(Read(stage + "/etc/sysusers.d/nanobatch.conf").find("u nanobatch") != std::string::npos);
  const std::string unit = Read(stage + "/etc/systemd/system/nanobatch.service");
  CHECK(unit.find("ExecStart=/opt/nb/bin/nanobatch serve --config /etc/nanobatch/serve.yaml") !=
        std::string::npos);
  CHECK(unit.find("User=nanobatch") != std::string::npos);
  const std::string instance = Read(stage + "/etc/systemd/system/nanobatch@.service");
  CHECK(instance.find("ExecStart=/opt/nb/bin/nanobatch run --config %d/nanobatch.yaml") !=
        std::string::npos);
  // An edited config is never overwritten by a second install.
  dir.Write("stage/etc/nanobatch/nanobatch.yaml", "limits: {rate: 1}\n");
  REQUIRE(testing::RunProcess({"tools/install.sh", "--destdir", stage}, built).exit_code == 0);
  CHECK(Read(stage + "/etc/nanobatch/nanobatch.yaml") == "limits: {rate: 1}\n");
}

}  // namespace
}  // namespace nanobatch
