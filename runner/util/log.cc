#include "runner/util/log.h"

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>

#include "runner/util/server_text.h"

namespace nanobatch::util {
namespace {

std::string progress_line;  // drawn on the terminal; "" for none
std::uint64_t transient_count = 0;
std::map<std::string, std::uint64_t, std::less<>> transient_by_kind;

// Under systemd, stderr is the journal's stream when $JOURNAL_STREAM ("DEV:INODE") names it.
bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  struct stat info;
  if (::fstat(STDERR_FILENO, &info) != 0) return false;
  return std::string(stream) == std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino);
}

LogFormat format = StderrIsJournal() ? LogFormat::kJournal : LogFormat::kText;
LogLevel threshold = LogLevel::kInfo;

}  // namespace

void SetLogFormat(LogFormat chosen) { format = chosen; }

void SetLogLevel(LogLevel level) { threshold = level; }

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warning") return LogLevel::kWarning;
  if (name == "error") return LogLevel::kError;
  return std::nullopt;
}

std::optional<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  if (name == "journal") return LogFormat::kJournal;
  if (name == "auto") return StderrIsJournal() ? LogFormat::kJournal : LogFormat::kText;
  return std::nullopt;
}

std::string UtcTimestamp(std::time_t time) {
  std::tm utc{};
  gmtime_r(&time, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return stamp;
}

std::string FormatLogLine(LogLevel level, std::string_view message, LogFormat chosen,
                          std::time_t now) {
  // The last line of defence: no log line can carry the API key, whatever it was built from.
  std::string redacted = Redact(message);
  // Log lines are one event each: embedded newlines (from a server's message) are flattened.
  for (char& c : redacted) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  const std::string stamp = UtcTimestamp(now);
  switch (chosen) {
    case LogFormat::kJournal: {
      // sd-daemon.h: SD_ERR "<3>", SD_WARNING "<4>", SD_INFO "<6>", SD_DEBUG "<7>"; the journal
      // adds the time.
      const char* priority = level == LogLevel::kDebug     ? "<7>"
                             : level == LogLevel::kInfo    ? "<6>"
                             : level == LogLevel::kWarning ? "<4>"
                                                           : "<3>";
      return priority + redacted + "\n";
    }
    case LogFormat::kJson: {
      const char* name = level == LogLevel::kDebug     ? "debug"
                         : level == LogLevel::kInfo    ? "info"
                         : level == LogLevel::kWarning ? "warning"
                                                       : "error";
      return boost::json::serialize(
                 boost::json::object{{"time", stamp}, {"level", name}, {"message", redacted}}) +
             "\n";
    }
    case LogFormat::kText:
      break;
  }
  const char* name = level == LogLevel::kDebug     ? "DEBUG"
                     : level == LogLevel::kInfo    ? "INFO"
                     : level == LogLevel::kWarning ? "WARN"
                                                   : "ERROR";
  return stamp + " " + name + " " + redacted + "\n";
}

void Log(LogLevel level, std::string_view message) {
  if (level < threshold) return;
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::string line = progress_line.empty() ? "" : "\r\033[K";
  line += FormatLogLine(level, message, format, now);
  line += progress_line;
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

bool StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

std::size_t TerminalColumns() {
  struct winsize size {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    const long value = std::strtol(columns, nullptr, 10);
    if (value > 0 && value < 10000) return static_cast<std::size_t>(value);
  }
  return 80;
}

void SetProgressLine(std::string line) {
  const bool was_drawn = !progress_line.empty();
  progress_line = std::move(line);
  if (!was_drawn && progress_line.empty()) return;
  const std::string draw = "\r\033[K" + progress_line;
  std::fwrite(draw.data(), 1, draw.size(), stderr);
  std::fflush(stderr);
}

void LogTransient(std::string_view kind, std::string_view message) {
  if (progress_line.empty()) {
    Log(LogLevel::kWarning, message);
    return;
  }
  ++transient_count;
  auto it = transient_by_kind.find(kind);
  if (it == transient_by_kind.end()) it = transient_by_kind.emplace(std::string(kind), 0).first;
  ++it->second;
}

std::uint64_t TransientCount() { return transient_count; }

std::string TransientSummary() {
  std::string summary;
  for (const auto& [kind, count] : transient_by_kind) {
    summary += (summary.empty() ? "" : ", ") + std::to_string(count) + " " + kind;
  }
  return summary;
}

}  // namespace nanobatch::util
