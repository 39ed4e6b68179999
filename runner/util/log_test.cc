#include "runner/util/log.h"

#include <doctest/doctest.h>

#include "runner/util/server_text.h"

namespace nanobatch::util {
namespace {

constexpr std::time_t kNoon = 1795695600;  // 2026-11-26T12:20:00Z

TEST_CASE("log: text, journal and json lines; the key scrubbed and newlines flattened in each") {
  RegisterSecret("sk-log-test-secret-0123456789");
  const std::string message = "server said: sk-log-test-secret-0123456789\nsecond line";
  const std::string text = FormatLogLine(LogLevel::kWarning, message, LogFormat::kText, kNoon);
  CHECK(text.rfind("2026-11-26T12:20:00Z WARN server said: ", 0) == 0);
  CHECK(text.find("sk-log-test-secret") == std::string::npos);
  CHECK(text.find('\n') == text.size() - 1);
  // Under systemd: the sd-daemon priority prefix, no timestamp (the journal has its own).
  CHECK(FormatLogLine(LogLevel::kError, "disk full", LogFormat::kJournal, kNoon) ==
        "<3>disk full\n");
  CHECK(FormatLogLine(LogLevel::kWarning, "slow", LogFormat::kJournal, kNoon) == "<4>slow\n");
  CHECK(FormatLogLine(LogLevel::kInfo, "ok", LogFormat::kJournal, kNoon) == "<6>ok\n");
  const std::string json = FormatLogLine(LogLevel::kInfo, message, LogFormat::kJson, kNoon);
  CHECK(json.rfind(R"({"time":"2026-11-26T12:20:00Z","level":"info","message":"server said: )",
                   0) == 0);
  CHECK(json.find("sk-log-test-secret") == std::string::npos);
  CHECK(json.find('\n') == json.size() - 1);
}

TEST_CASE("log: format names") {
  CHECK(ParseLogFormat("json") == LogFormat::kJson);
  CHECK(ParseLogFormat("text") == LogFormat::kText);
  CHECK(ParseLogFormat("journal") == LogFormat::kJournal);
  CHECK(ParseLogFormat("auto").has_value());
  CHECK_FALSE(ParseLogFormat("xml").has_value());
}

}  // namespace
}  // namespace nanobatch::util
