#include "runner/util/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "runner/util/server_text.h"

namespace nanobatch::util {
namespace {

bool progress_line_active = false;

}  // namespace

void Log(LogLevel level, std::string_view message) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
  const char* name = level == LogLevel::kInfo      ? "INFO"
                     : level == LogLevel::kWarning ? "WARN"
                                                   : "ERROR";
  std::string line = progress_line_active ? "\r\033[K" : "";
  line += stamp;
  line += ' ';
  line += name;
  line += ' ';
  // The last line of defence: no log line can carry the API key, whatever it was built from.
  const std::string redacted = Redact(message);
  line.append(redacted);
  // Log lines are one event each: embedded newlines (from a server's message) are flattened.
  for (std::size_t i = line.size() - redacted.size(); i < line.size(); ++i) {
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

bool StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

void SetProgressLineActive(bool active) { progress_line_active = active; }

}  // namespace nanobatch::util
