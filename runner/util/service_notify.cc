#include "runner/util/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdint>

namespace nanobatch::util {

void NotifyService(const std::string& state) {
  // The result is ignored on purpose: being unable to tell systemd must never stop a paid run.
  sd_notify(0, state.c_str());
}

std::optional<std::chrono::microseconds> WatchdogInterval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec / 2);
}

}  // namespace nanobatch::util
