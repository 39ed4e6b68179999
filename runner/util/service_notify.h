#pragma once
// Tells systemd how the run is going (sd_notify): READY=1 once the run has started, STATUS= with
// the progress line, WATCHDOG=1 from the event loop when the unit sets WatchdogSec= (a stalled
// loop stops pinging and systemd restarts it), STOPPING=1 at the end. Does nothing when not run
// by systemd (no $NOTIFY_SOCKET), so the plain command and the service share one code path.
//
// Example:
//   NotifyService("READY=1");

#include <chrono>
#include <optional>
#include <string>

namespace nanobatch::util {

void NotifyService(const std::string& state);

// The interval at which to send WATCHDOG=1 (half of WatchdogSec=), or nullopt when systemd does
// not watch this process.
std::optional<std::chrono::microseconds> WatchdogInterval();

}  // namespace nanobatch::util
