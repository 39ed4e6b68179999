#include "runner/util/service_notify.h"

#include <systemd/sd-daemon.h>

namespace nanobatch::util {

void NotifyService(const std::string& state) {
  // The result is ignored on purpose: being unable to tell systemd must never stop a paid run.
  sd_notify(0, state.c_str());
}

}  // namespace nanobatch::util
