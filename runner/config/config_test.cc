#include "runner/config/config.h"

#include <doctest/doctest.h>

#include <string>

#include "runner/testing/temp_dir.h"

namespace nanobatch::config {
namespace {

std::string ErrorText(const util::InputErrors& errors) {
  std::string out;
  for (const auto& error : errors.stored()) out += error.Format() + "\n";
  return out;
}

TEST_CASE("config: the shipped serve config is valid for serve") {
  Config loaded;
  util::InputErrors errors;
  REQUIRE(LoadConfigFile("configs/serve.yaml", loaded, errors));
  ValidateConfig(loaded, errors, {.require_paths = false, .serve = true});
  CHECK(ErrorText(errors) == "");
  CHECK(loaded.serve.spool_dir == "/var/lib/nanobatch/spool");
  // serve needs a spool; webhooks share its listener (callbacks.listen is refused).
  Config bare;
  bare.callbacks.public_url = "https://hooks.example.com/h";
  bare.callbacks.listen = "127.0.0.1:9000";
  util::InputErrors bare_errors;
  ValidateConfig(bare, bare_errors, {.require_paths = false, .serve = true});
  CHECK(ErrorText(bare_errors).find("serve.spool_dir: is required by serve") != std::string::npos);
  CHECK(ErrorText(bare_errors).find("callbacks.listen: is not used by serve") != std::string::npos);
}

TEST_CASE("config: the shipped example loads cleanly and equals the built-in defaults") {
  Config loaded;
  util::InputErrors errors;
  LoadConfigFile("configs/example.yaml", loaded, errors);
  CHECK(ErrorText(errors) == "");
  ValidateConfig(loaded, errors);
  CHECK(ErrorText(errors) == "");

  const Config defaults;
  CHECK(loaded.api.base_url == defaults.api.base_url);
  CHECK(loaded.api.prices == defaults.api.prices);
  CHECK(loaded.limits.rate == defaults.limits.rate);
  CHECK(loaded.limits.burst == defaults.limits.burst);
  CHECK(loaded.limits.max_in_flight == defaults.limits.max_in_flight);
  CHECK(loaded.limits.max_downloads == defaults.limits.max_downloads);
  CHECK(loaded.limits.budget_credits == defaults.limits.budget_credits);
  CHECK(loaded.polling.first_poll_s == defaults.polling.first_poll_s);
  CHECK(loaded.polling.task_deadline_s == defaults.polling.task_deadline_s);
  CHECK(loaded.timeouts.request_s == defaults.timeouts.request_s);
  CHECK(loaded.download.max_bytes == defaults.download.max_bytes);
  CHECK(loaded.download.allowed_hosts == defaults.download.allowed_hosts);
  CHECK(loaded.retry.max_task_attempts == defaults.retry.max_task_attempts);
  CHECK(loaded.retry.spend_limit_give_up_s == defaults.retry.spend_limit_give_up_s);
  CHECK(loaded.log.level == defaults.log.level);
  CHECK(loaded.serve.listen == defaults.serve.listen);
  CHECK(loaded.serve.max_jobs == defaults.serve.max_jobs);
  CHECK(loaded.serve.max_manifest_bytes == defaults.serve.max_manifest_bytes);
  CHECK(loaded.log.progress_interval_s == defaults.log.progress_interval_s);
  CHECK(loaded.defaults.output_format == defaults.defaults.output_format);
  CHECK(loaded.output.image_sync == defaults.output.image_sync);
}

TEST_CASE("config: values are read and keep their origin") {
  testing::TempDir dir;
  const std::string path = dir.Write("c.yaml",
                                     "manifest: m.jsonl\n"
                                     "out: /tmp/out\n"
                                     "api:\n"
                                     "  base_url: https://127.0.0.1:8443\n"
                                     "  prices: {4K: 40}\n"
                                     "limits:\n"
                                     "  rate: 7.5\n"
                                     "  budget_credits: 1000\n"
                                     "download:\n"
                                     "  allowed_hosts: [localhost, files.example.com]\n"
                                     "  allowed_networks: [10.0.0.0/8, \"fd00::/8\"]\n"
                                     "defaults:\n"
                                     "  output_format: png\n");
  Config config;
  util::InputErrors errors;
  LoadConfigFile(path, config, errors);
  ValidateConfig(config, errors);
  CHECK(ErrorText(errors) == "");
  CHECK(config.api.base_url == "https://127.0.0.1:8443");
  CHECK(PriceOf(config, "4K") == 40);
  CHECK(PriceOf(config, "1K") == 16);
  CHECK(config.limits.rate == 7.5);
  CHECK(config.limits.budget_credits == 1000u);
  CHECK(config.download.allowed_hosts.size() == 2);
  CHECK(config.download.allowed_networks == std::vector<std::string>{"10.0.0.0/8", "fd00::/8"});
  CHECK(config.defaults.output_format == "png");
  CHECK(config.origins.at("limits.rate").line == 7);
}

TEST_CASE("config: a download network that is not a CIDR block names the key and the block") {
  testing::TempDir dir;
  const std::string path = dir.Write("c.yaml",
                                     "manifest: m.jsonl\n"
                                     "out: o\n"
                                     "download:\n"
                                     "  allowed_networks: [127.0.0.0/8, 10.1.2.3/8, intranet]\n");
  Config config;
  util::InputErrors errors;
  LoadConfigFile(path, config, errors);
  ValidateConfig(config, errors);
  const std::string text = ErrorText(errors);
  CHECK(text.find(path + ":4: download.allowed_networks: \"10.1.2.3/8\" has bits set") !=
        std::string::npos);
  CHECK(text.find("\"intranet\" is not an IP address") != std::string::npos);
  CHECK(errors.total() == 2);
  // A list is required.
  Config other;
  util::InputErrors list_errors;
  LoadConfigFile(dir.Write("d.yaml", "download: {allowed_networks: 10.0.0.0/8}\n"), other,
                 list_errors);
  CHECK(ErrorText(list_errors).find("must be a list of CIDR blocks") != std::string::npos);
}

TEST_CASE(
    "config: a key given again wins, as a flag given again does; a second document is an "
    "error") {
  // A base config and its overrides concatenated: sections merge, the later key wins (the tests'
  // own configs are built so).
  testing::TempDir dir;
  Config config;
  util::InputErrors errors;
  const std::string twice = dir.Write("c.yaml",
                                      "limits:\n"
                                      "  rate: 3\n"
                                      "  budget_credits: 1000\n"
                                      "limits:\n"
                                      "  budget_credits: 100000\n");
  CHECK(LoadConfigFile(twice, config, errors));
  CHECK(errors.empty());
  CHECK(config.limits.rate == 3);
  CHECK(config.limits.budget_credits == 100000);
  CHECK(config.origins.at("limits.budget_credits").line == 5);
  // A second document would be dropped unread: refused.
  Config other;
  util::InputErrors document_errors;
  const std::string two = dir.Write("d.yaml", "limits: {rate: 3}\n---\nlimits: {rate: 300}\n");
  CHECK_FALSE(LoadConfigFile(two, other, document_errors));
  CHECK(ErrorText(document_errors).find(two + ":2: -: a second YAML document starts here") !=
        std::string::npos);
  CHECK(other.limits.rate == Config().limits.rate);
}

TEST_CASE("config: a duration written with a unit is told the number of seconds to write") {
  testing::TempDir dir;
  const std::string path =
      dir.Write("c.yaml",
                "timeouts: {request_s: 1h, connect_s: 500ms, download_s: 2 min}\n"
                "polling: {task_deadline_s: soon}\nlimits: {rate: 5s}\n");
  Config config;
  util::InputErrors errors;
  LoadConfigFile(path, config, errors);
  const std::string text = ErrorText(errors);
  CHECK(text.find(":1: timeouts.request_s: must be a number (seconds, without a unit: 1h is "
                  "3600)") != std::string::npos);
  CHECK(text.find("timeouts.connect_s: must be a number (seconds, without a unit: 500ms is "
                  "0.5)") != std::string::npos);
  CHECK(text.find("timeouts.download_s: must be a number (seconds, without a unit: 2 min is "
                  "120)") != std::string::npos);
  CHECK(text.find(":2: polling.task_deadline_s: must be a number\n") != std::string::npos);
  CHECK(text.find(":3: limits.rate: must be a number\n") != std::string::npos);  // not seconds
}

TEST_CASE("config: unknown keys, wrong types and bad values all name file, line and key") {
  testing::TempDir dir;
  const std::string path = dir.Write("c.yaml",
                                     "manifest: m.jsonl\n"
                                     "out: o\n"
                                     "limits:\n"
                                     "  rate: fast\n"
                                     "  burts: 3\n"
                                     "  max_in_flight: -1\n"
                                     "  budget_credits: lots\n"
                                     "api:\n"
                                     "  prices: {8K: 99}\n"
                                     "defaults:\n"
                                     "  aspect_ratio: 7:5\n"
                                     "polling: 3\n"
                                     "colour: blue\n"
                                     "limit: {rate: 5}\n"
                                     "output: {image_sync: sometimes}\n");
  Config config;
  util::InputErrors errors;
  LoadConfigFile(path, config, errors);
  const std::string text = ErrorText(errors);
  CHECK(text.find(path + ":4: limits.rate: must be a number") != std::string::npos);
  CHECK(text.find(path + ":5: limits.burts: unknown key (did you mean \"limits.burst\"?)") !=
        std::string::npos);
  // The bounds a value that is no whole number is told are the ones the range check applies.
  CHECK(text.find(path + ":6: limits.max_in_flight: must be a whole number from 1 to 100000\n") !=
        std::string::npos);
  CHECK(text.find(path + ":7: limits.budget_credits: must be a whole number of credits from 0 to "
                         "1000000000000, or null") != std::string::npos);
  CHECK(text.find(path + ":9: api.prices: \"8K\" is not a resolution") != std::string::npos);
  CHECK(text.find(path + ":11: defaults.aspect_ratio: \"7:5\" is not one of") != std::string::npos);
  CHECK(text.find(path + ":12: polling: must be a mapping") != std::string::npos);
  CHECK(text.find(path + ":13: colour: unknown key (configs/example.yaml") != std::string::npos);
  CHECK(text.find(path + ":14: limit: unknown key (did you mean \"limits\"?)") !=
        std::string::npos);
  CHECK(errors.total() == 9);
  ValidateConfig(config, errors);
  CHECK(ErrorText(errors).find(
            path + ":15: output.image_sync: \"sometimes\" is not auto, syncfs or fsync") !=
        std::string::npos);
}

TEST_CASE("config: a key in the wrong section is named with the section it belongs in") {
  testing::TempDir dir;
  const std::string path = dir.Write("c.yaml",
                                     "rate: 5\n"
                                     "limits:\n"
                                     "  model: x\n"
                                     "timeouts: {request: 5}\n"
                                     "colour: blue\n");
  Config config;
  util::InputErrors errors;
  LoadConfigFile(path, config, errors);
  CHECK(ErrorText(errors) ==
        path +
            ":1: rate: unknown key (did you mean \"limits.rate\"? it belongs in the limits: "
            "section)\n" +
            path +
            ":3: limits.model: unknown key (did you mean \"api.model\"? it belongs in the api: "
            "section)\n" +
            path + ":4: timeouts.request: unknown key (did you mean \"timeouts.request_s\"?)\n" +
            path + ":5: colour: unknown key (configs/example.yaml has every key)\n");
}

TEST_CASE("config: range checks name the key or the flag that set it") {
  Config config;
  config.manifest = "m.jsonl";
  config.out = "out";
  config.limits.rate = 0;
  config.SetFromFlag("limits.rate", "--rate");
  config.limits.burst = 0;
  config.api.base_url = "http://api.example.com";
  config.download.allowed_hosts = {"https://file.example.com/x"};
  config.retry.max_delay_s = 0.1;
  util::InputErrors errors;
  ValidateConfig(config, errors);
  const std::string text = ErrorText(errors);
  CHECK(text.find("command line: --rate: must be above 0") != std::string::npos);
  CHECK(text.find("config: limits.burst: must be from 1 to 100000") != std::string::npos);
  CHECK(text.find("api.base_url: must be an https URL") != std::string::npos);
  CHECK(text.find("download.allowed_hosts: \"https://file.example.com/x\" is not a host or "
                  "host:port") != std::string::npos);
  CHECK(text.find("retry.max_delay_s: must be at least retry.base_delay_s") != std::string::npos);
  CHECK(errors.total() == 5);
}

TEST_CASE("config: the base URL is scheme, host and port only") {
  for (const char* good :
       {"https://api.aivideoapi.ai", "https://127.0.0.1:8443", "https://api.aivideoapi.ai/"}) {
    Config config;
    config.manifest = "m";
    config.out = "o";
    config.api.base_url = good;
    util::InputErrors errors;
    ValidateConfig(config, errors);
    CHECK_MESSAGE(errors.empty(), good);
  }
  // A port past 65535 too: Boost.URL alone read :99999 as port 34463.
  for (const char* bad : {"https://api.aivideoapi.ai/v1", "api.aivideoapi.ai", "https://",
                          "https://u:p@api.aivideoapi.ai", "https://api.aivideoapi.ai?x=1",
                          "https://api.aivideoapi.ai:99999", "https://api.aivideoapi.ai:0",
                          "https://api.aivideoapi.ai:65536"}) {
    Config config;
    config.manifest = "m";
    config.out = "o";
    config.api.base_url = bad;
    util::InputErrors errors;
    ValidateConfig(config, errors);
    CHECK_MESSAGE(errors.total() == 1, bad);
  }
}

TEST_CASE("config: callbacks need an https public URL (http on loopback) and an IP:PORT") {
  auto errors_for = [](const std::string& url, const std::string& listen) {
    Config config;
    config.manifest = "m.jsonl";
    config.out = "out";
    config.callbacks.public_url = url;
    config.callbacks.listen = listen;
    util::InputErrors errors;
    ValidateConfig(config, errors);
    return ErrorText(errors);
  };
  CHECK(errors_for("", "") == "");
  CHECK(errors_for("https://hooks.example.com/nb", "127.0.0.1:8751") == "");
  CHECK(errors_for("http://127.0.0.1:8751/hooks", "127.0.0.1:8751") == "");
  CHECK(errors_for("http://hooks.example.com/nb", "127.0.0.1:8751").find("must be an https URL") !=
        std::string::npos);
  CHECK(errors_for("https://hooks.example.com/?a=b", "127.0.0.1:8751").find("no query") !=
        std::string::npos);
  CHECK(errors_for("hooks", "127.0.0.1:8751").find("not an absolute URL") != std::string::npos);
  CHECK(errors_for("https://hooks.example.com:99999/nb", "127.0.0.1:8751")
            .find("\"99999\" is not a port") != std::string::npos);
  CHECK(errors_for("https://h.example/", "").find("callbacks.listen: is required") !=
        std::string::npos);
  CHECK(errors_for("https://h.example/", "localhost:8751").find("is not IP:PORT") !=
        std::string::npos);
  CHECK(errors_for("", "127.0.0.1:8751").find("needs callbacks.public_url") != std::string::npos);
}

TEST_CASE("config: manifest and out are required; a missing file and bad YAML are errors") {
  Config config;
  util::InputErrors errors;
  ValidateConfig(config, errors);
  CHECK(ErrorText(errors).find("manifest: is required") != std::string::npos);
  CHECK(ErrorText(errors).find("out: is required") != std::string::npos);

  util::InputErrors missing;
  CHECK_FALSE(LoadConfigFile("/nonexistent.yaml", config, missing));
  CHECK(ErrorText(missing) == "/nonexistent.yaml: -: cannot open: No such file or directory\n");

  testing::TempDir dir;
  util::InputErrors broken;
  const std::string path = dir.Write("b.yaml", "limits:\n  rate: [1,\n");
  LoadConfigFile(path, config, broken);
  REQUIRE(broken.total() == 1);
  CHECK(broken.stored()[0].message.find("invalid YAML") == 0);
}

TEST_CASE("config: flags go through the file's parser and ranges: -5 is no budget") {
  struct Case {
    const char* key;
    const char* flag;
    const char* text;
  };
  for (const Case& c : {Case{"limits.budget_credits", "--budget-credits", "-5"},
                        Case{"limits.burst", "--burst", "-1"}, Case{"limits.rate", "--rate", "nan"},
                        Case{"limits.rate", "--rate", "inf"},
                        Case{"limits.max_in_flight", "--max-in-flight", "1.5"}}) {
    INFO(c.flag << " " << c.text);
    Config config;
    util::InputErrors errors;
    ApplyFlag(config, c.key, c.flag, c.text, errors);
    CHECK(errors.total() == 1);
    CHECK(ErrorText(errors).find(std::string("command line: ") + c.flag) == 0);
  }
  Config config;
  config.manifest = "m";
  config.out = "o";
  util::InputErrors errors;
  ApplyFlag(config, "limits.budget_credits", "--budget-credits", "5000", errors);
  ApplyFlag(config, "limits.rate", "--rate", "20000", errors);
  REQUIRE(errors.empty());
  CHECK(config.limits.budget_credits == 5000u);
  ValidateConfig(config, errors);
  CHECK(ErrorText(errors) ==
        "command line: --rate: must be above 0 and at most 10000 requests a second\n");
}

TEST_CASE("config: absurd durations and sizes are range errors, in the file as on the flag") {
  testing::TempDir dir;
  Config config;
  util::InputErrors errors;
  REQUIRE(
      LoadConfigFile(dir.Write("c.yaml",
                               "timeouts: {request_s: 1e308}\npolling: {task_deadline_s: -1}\n"
                               "download: {max_bytes: 99999999999999}\nretry: {max_attempts: 0}\n"),
                     config, errors));
  ValidateConfig(config, errors, {.require_paths = false});
  const std::string text = ErrorText(errors);
  INFO(text);
  CHECK(text.find("c.yaml:1: timeouts.request_s: must be above 0 and at most 3600 seconds") !=
        std::string::npos);
  CHECK(text.find("c.yaml:2: polling.task_deadline_s") != std::string::npos);
  CHECK(text.find("c.yaml:3: download.max_bytes: must be from 1024") != std::string::npos);
  CHECK(text.find("c.yaml:4: retry.max_attempts: must be from 1") != std::string::npos);
  CHECK(errors.total() == 4);
}

TEST_CASE("config: a directory or device as the config file is one clear error") {
  testing::TempDir dir;
  for (const std::string& path : {dir.path(), std::string("/dev/zero")}) {
    Config config;
    util::InputErrors errors;
    CHECK_FALSE(LoadConfigFile(path, config, errors));
    CHECK(errors.total() == 1);
    CHECK((ErrorText(errors).find("is a directory") != std::string::npos ||
           ErrorText(errors).find("not a regular file") != std::string::npos));
  }
}

}  // namespace
}  // namespace nanobatch::config
