#include "runner/util/service_notify.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
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

boost::asio::awaitable<void> ReportToService(std::function<std::string()> status,
                                             AsyncEvent& stop) {
  const auto watchdog = WatchdogInterval();
  const std::chrono::steady_clock::duration period =
      watchdog ? std::min<std::chrono::steady_clock::duration>(*watchdog, std::chrono::seconds(5))
               : std::chrono::seconds(5);
  while (!co_await stop.WaitFor(period)) {
    NotifyService("STATUS=" + status() + (watchdog ? "\nWATCHDOG=1" : ""));
  }
}

}  // namespace nanobatch::util
