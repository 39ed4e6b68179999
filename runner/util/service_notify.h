#pragma once
// Tells systemd how the run is going (sd_notify): READY=1 once the run has started, STATUS= with
// the progress line, STOPPING=1 at the end. Does nothing when not run by systemd (no
// $NOTIFY_SOCKET), so the plain command and the service share one code path.
//
// Example:
//   NotifyService("READY=1");

#include <string>

namespace nanobatch::util {

void NotifyService(const std::string& state);

}  // namespace nanobatch::util
