#pragma once
// Logging: one event per line on stderr. Callers log sources ("$AIVIDEOAPI_API_KEY"), never the
// key; every line also passes through Redact() (server_text.h), so a server's echo of the key
// cannot reach the log either. Three formats:
//   text     "2026-11-25T07:32:43Z WARN message"          (terminals, files)
//   journal  "<4>message"                                 (under systemd: the journal keeps the
//            time, and the sd-daemon.h priority prefix lets `journalctl -p warning` filter)
//   json     {"time":"2026-11-25T07:32:43Z","level":"warning","message":"..."}
// `auto` (the default) is journal when stderr is the stream $JOURNAL_STREAM names, else text.
//
// Example:
//   SetLogFormat(LogFormat::kJson);
//   Log(LogLevel::kWarning, "journal: dropped a torn tail of 12 bytes");

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace nanobatch::util {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
enum class LogFormat { kText, kJournal, kJson };

void Log(LogLevel level, std::string_view message);
inline void LogDebug(std::string_view message) { Log(LogLevel::kDebug, message); }
inline void LogInfo(std::string_view message) { Log(LogLevel::kInfo, message); }
inline void LogWarning(std::string_view message) { Log(LogLevel::kWarning, message); }
inline void LogError(std::string_view message) { Log(LogLevel::kError, message); }

void SetLogFormat(LogFormat format);
// Lines below `level` are dropped (default: info).
void SetLogLevel(LogLevel level);
// "debug", "info", "warning", "error"; nullopt else.
std::optional<LogLevel> ParseLogLevel(std::string_view name);
// "text", "json", "journal", or "auto" (journal when stderr is $JOURNAL_STREAM); nullopt else.
std::optional<LogFormat> ParseLogFormat(std::string_view name);
// "2026-11-25T07:32:43Z": the time, in UTC, as log lines stamp it.
std::string UtcTimestamp(std::time_t time);

// The line Log() writes (with its newline), before the terminal's progress-line handling.
std::string FormatLogLine(LogLevel level, std::string_view message, LogFormat format,
                          std::time_t now);

// Whether stderr is a terminal (progress then redraws one line instead of logging).
bool StderrIsTerminal();
// The terminal's width in columns (stderr's; $COLUMNS or 80 when it does not say).
std::size_t TerminalColumns();

// The progress line drawn at the bottom of the terminal ("" for none): drawn now, and after
// every log line, which first erases it (so log lines and the line never mix).
void SetProgressLine(std::string line);
// A transient retry (a download fetched again, a failed task resubmitted): logged as a warning,
// except while a progress line is drawn, where it is only counted (the line shows the count, the
// end-of-run summary the count by kind) instead of scrolling the terminal with one line each.
void LogTransient(std::string_view kind, std::string_view message);
std::uint64_t TransientCount();
// Kinds and counts of the transient retries counted so far.
std::string TransientSummary();

}  // namespace nanobatch::util
