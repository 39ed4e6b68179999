#pragma once
// Tells systemd how the run or the daemon is going (sd_notify): READY=1 once started, STATUS=
// with a progress line, WATCHDOG=1 from the event loop when the unit sets WatchdogSec= (a stalled
// loop stops pinging and systemd restarts it), STOPPING=1 at the end. Does nothing when not run
// by systemd (no $NOTIFY_SOCKET), so the plain command and the service share one code path.
//
// Example:
//   NotifyService("READY=1");

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "runner/util/async.h"

namespace nanobatch::util {

void NotifyService(const std::string& state);

// The interval at which to send WATCHDOG=1 (half of WatchdogSec=), or nullopt when systemd does
// not watch this process.
std::optional<std::chrono::microseconds> WatchdogInterval();

// The event loop's own report to systemd until `stop` is notified: STATUS=<status()> every 5 s,
// with WATCHDOG=1 every half WatchdogSec= when systemd watches (a stalled loop stops pinging and
// is restarted). `run` and `serve` both run it.
boost::asio::awaitable<void> ReportToService(std::function<std::string()> status, AsyncEvent& stop);

}  // namespace nanobatch::util
