// The nanobatch binary as users and scripts see it: exit codes, messages, flags.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::cli {
namespace {

const std::string kBinary = "runner/nanobatch";

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("cli: --version and --help exit 0") {
  auto version = testing::RunProcess({kBinary, "--version"});
  CHECK(version.exit_code == 0);
  CHECK(Contains(version.out, "nanobatch 0."));
  auto help = testing::RunProcess({kBinary, "--help"});
  CHECK(help.exit_code == 0);
  for (const char* command : {"run", "status", "validate"}) CHECK(Contains(help.out, command));
  auto run_help = testing::RunProcess({kBinary, "run", "--help"});
  CHECK(run_help.exit_code == 0);
  for (const char* flag : {"--config", "--manifest", "--out", "--base-url", "--ca-file", "--rate",
                           "--burst", "--max-in-flight", "--budget-credits",
                           "--allow-download-host", "--allow-download-network"}) {
    CHECK_MESSAGE(Contains(run_help.out, flag), flag);
  }
}

TEST_CASE("cli: bad usage exits 2") {
  CHECK(testing::RunProcess({kBinary}).exit_code == 2);
  CHECK(testing::RunProcess({kBinary, "frobnicate"}).exit_code == 2);
  CHECK(testing::RunProcess({kBinary, "run", "--rate", "fast"}).exit_code == 2);
  CHECK(testing::RunProcess({kBinary, "validate"}).exit_code == 2);
  CHECK(testing::RunProcess({kBinary, "status"}).exit_code == 2);
}

TEST_CASE("cli: status, gallery and export take the output directory bare or as --out") {
  for (const char* command : {"status", "gallery"}) {
    for (const auto& argv : {std::vector<std::string>{kBinary, command, "testdata"},
                             std::vector<std::string>{kBinary, command, "--out", "testdata"}}) {
      auto result = testing::RunProcess(argv);
      CHECK(result.exit_code == 2);
      CHECK_MESSAGE(Contains(result.err, "testdata holds no nanobatch run"), command);
    }
  }
  auto export_bare = testing::RunProcess({kBinary, "export", "testdata", "--to", "/tmp/x"});
  CHECK(Contains(export_bare.err, "testdata holds no nanobatch run"));
  auto twice = testing::RunProcess({kBinary, "status", "testdata", "--out", "testdata"});
  CHECK(twice.exit_code == 2);
}

TEST_CASE("cli: a mistyped command or flag is named, with what it likely meant") {
  auto command = testing::RunProcess({kBinary, "runn"});
  CHECK(command.exit_code == 2);
  CHECK(Contains(command.err,
                 "nanobatch: unknown command \"runn\" (did you mean \"run\"?); the "
                 "commands are run serve status"));
  auto unknown = testing::RunProcess({kBinary, "frobnicate"});
  CHECK(Contains(unknown.err, "unknown command \"frobnicate\"; the commands are"));
  auto flag = testing::RunProcess({kBinary, "run", "--manifest", "m.jsonl", "--rates", "5"});
  CHECK(flag.exit_code == 2);
  CHECK(Contains(flag.err, "nanobatch: unknown flag --rates for run (did you mean \"--rate\"?)"));
  auto with_value = testing::RunProcess({kBinary, "status", "--out=o", "--jsn"});
  CHECK(Contains(with_value.err, "unknown flag --jsn for status (did you mean \"--json\"?)"));
  auto global = testing::RunProcess({kBinary, "--verison"});
  CHECK(Contains(global.err, "unknown flag --verison (did you mean \"--version\"?)"));
  // Other refusals keep CLI11's own words.
  CHECK(Contains(testing::RunProcess({kBinary}).err, "A subcommand is required"));
}

TEST_CASE("cli: validate passes an empty manifest, with a warning") {
  testing::TempDir dir;
  auto empty = testing::RunProcess({kBinary, "validate", dir.Write("empty.jsonl", "\n\n")});
  CHECK(empty.exit_code == 0);
  CHECK(Contains(empty.out, "empty.jsonl: 0 items"));
  CHECK(Contains(empty.err, "empty.jsonl: warning: the manifest holds no items"));
}

TEST_CASE("cli: validate accepts the good manifests") {
  auto jsonl = testing::RunProcess({kBinary, "validate", "testdata/manifests/good.jsonl"});
  CHECK(jsonl.exit_code == 0);
  CHECK(Contains(jsonl.out, "4 items"));
  CHECK(Contains(jsonl.out, "; checked 4 lines in "));
  CHECK(jsonl.err == "");
  auto yaml = testing::RunProcess({kBinary, "validate", "testdata/manifests/good.yaml"});
  CHECK(yaml.exit_code == 0);
  CHECK(Contains(yaml.out, "3 items"));
  // 1K png default from the manifest: 16 + 24 + 16 credits at list prices.
  CHECK(Contains(yaml.out, "56 credits"));
}

TEST_CASE("cli: validate reports every error as FILE:LINE: field: message and exits 2") {
  const std::string path = "testdata/manifests/bad.jsonl";
  auto result = testing::RunProcess({kBinary, "validate", path});
  CHECK(result.exit_code == 2);
  CHECK(Contains(result.err, path + ":2: id: \"ok\" is already used at line 1"));
  CHECK(Contains(result.err, path + ":3: resolutoin: unknown key"));
  CHECK(Contains(result.err, path + ":4: prompt: is empty"));
  CHECK(Contains(result.err, path + ":5: aspect_ratio:"));
  CHECK(Contains(result.err, path + ":5: output_format:"));
  CHECK(Contains(result.err, path + ":6: -: invalid JSON"));
  CHECK(Contains(result.err, "6 errors; nothing was submitted"));
}

TEST_CASE("cli: validate applies the config's defaults and prices") {
  testing::TempDir dir;
  const std::string config =
      dir.Write("c.yaml", "api:\n  prices: {1K: 10}\ndefaults:\n  resolution: 1K\n");
  const std::string manifest = dir.Write("m.jsonl", "{\"prompt\":\"a\"}\n{\"prompt\":\"b\"}\n");
  auto result = testing::RunProcess({kBinary, "validate", manifest, "--config", config});
  CHECK(result.exit_code == 0);
  CHECK(Contains(result.out, "20 credits"));

  const std::string bad_config = dir.Write("bad.yaml", "defaults:\n  resolution: 9K\n");
  auto bad = testing::RunProcess({kBinary, "validate", manifest, "--config", bad_config});
  CHECK(bad.exit_code == 2);
  CHECK(Contains(bad.err, bad_config + ":2: defaults.resolution:"));
}

TEST_CASE("cli: run checks config, flags, key and manifest before anything, exit 2") {
  testing::TempDir dir;
  const std::string manifest = dir.Write("m.jsonl", "{\"prompt\":\"a\"}\n");
  // No manifest, no out.
  auto missing = testing::RunProcess({kBinary, "run"}, {{"AIVIDEOAPI_API_KEY", "sk-x"}});
  CHECK(missing.exit_code == 2);
  CHECK(Contains(missing.err, "manifest: is required"));
  // A flag's bad value names the flag.
  auto bad_rate = testing::RunProcess(
      {kBinary, "run", "--manifest", manifest, "--out", dir.File("out"), "--rate", "0"},
      {{"AIVIDEOAPI_API_KEY", "sk-x"}});
  CHECK(bad_rate.exit_code == 2);
  CHECK(Contains(bad_rate.err, "command line: --rate: must be above 0"));
  auto http = testing::RunProcess({kBinary, "run", "--manifest", manifest, "--out", dir.File("out"),
                                   "--base-url", "http://127.0.0.1:1"},
                                  {{"AIVIDEOAPI_API_KEY", "sk-x"}});
  CHECK(http.exit_code == 2);
  CHECK(Contains(http.err, "--base-url: must be an https URL"));
  // A bad manifest under run: exit 2, nothing submitted.
  const std::string bad = dir.Write("bad.jsonl", "{\"prompt\":\"\"}\n");
  auto bad_manifest =
      testing::RunProcess({kBinary, "run", "--manifest", bad, "--out", dir.File("out")},
                          {{"AIVIDEOAPI_API_KEY", "sk-secret-value"}});
  CHECK(bad_manifest.exit_code == 2);
  CHECK(Contains(bad_manifest.err, bad + ":1: prompt: is empty"));
  CHECK_FALSE(Contains(bad_manifest.err, "sk-secret-value"));
}

TEST_CASE("cli: run without an API key anywhere is a clear error") {
  testing::TempDir dir;
  const std::string manifest = dir.Write("m.jsonl", "{\"prompt\":\"a\"}\n");
  auto result =
      testing::RunProcess({kBinary, "run", "--manifest", manifest, "--out", dir.File("out")},
                          {{"AIVIDEOAPI_API_KEY", ""}, {"CREDENTIALS_DIRECTORY", ""}});
  CHECK(result.exit_code == 2);
  CHECK(Contains(result.err, "no API key"));
  CHECK_FALSE(Contains(result.err, manifest + ":"));  // the manifest is fine
  // The manifest's errors come in the same answer, and the output directory is not made.
  const std::string bad = dir.Write("bad.jsonl", "{\"prompt\":\"a\"}\n{\"prompt\":\"\"}\n");
  auto both = testing::RunProcess({kBinary, "run", "--manifest", bad, "--out", dir.File("out")},
                                  {{"AIVIDEOAPI_API_KEY", ""}, {"CREDENTIALS_DIRECTORY", ""}});
  CHECK(both.exit_code == 2);
  CHECK(Contains(both.err, "no API key"));
  CHECK(Contains(both.err, bad + ":2: prompt: is empty"));
  CHECK_FALSE(std::filesystem::exists(dir.File("out")));
}

}  // namespace
}  // namespace nanobatch::cli
