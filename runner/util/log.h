#pragma once
// Logging: one event per line on stderr, "2026-11-25T07:32:43Z LEVEL message". Callers log
// sources ("$AIVIDEOAPI_API_KEY"), never the key; every line also passes through Redact()
// (server_text.h), so a server's echo of the key cannot reach the log either.
//
// Example:
//   Log(LogLevel::kWarning, "journal: dropped a torn tail of 12 bytes");

#include <string_view>

namespace nanobatch::util {

enum class LogLevel { kInfo, kWarning, kError };

void Log(LogLevel level, std::string_view message);
inline void LogInfo(std::string_view message) { Log(LogLevel::kInfo, message); }
inline void LogWarning(std::string_view message) { Log(LogLevel::kWarning, message); }
inline void LogError(std::string_view message) { Log(LogLevel::kError, message); }

// Whether stderr is a terminal (progress then redraws one line instead of logging).
bool StderrIsTerminal();
// Clears a progress line drawn on the terminal, if any, before a log line is written.
void SetProgressLineActive(bool active);

}  // namespace nanobatch::util
