#include "runner/util/core_dumps.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

namespace nanobatch::util {

bool DisableCoreDumps(std::string* why) {
  bool ok = true;
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    ok = false;
    if (why) *why = std::string("prctl(PR_SET_DUMPABLE): ") + std::strerror(errno);
  }
  const rlimit none{0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0) {
    ok = false;
    if (why) *why = std::string("setrlimit(RLIMIT_CORE): ") + std::strerror(errno);
  }
  return ok;
}

}  // namespace nanobatch::util
