#include "runner/util/core_dumps.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

namespace nanobatch::util {

// LeakSanitizer stops the process's threads with ptrace when it exits, which a process marked
// not dumpable refuses to anyone but root: sanitizer builds (tests only, never shipped) keep the
// core limit of zero and stay dumpable.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kMarkNotDumpable = false;
#else
constexpr bool kMarkNotDumpable = true;
#endif

bool MarksNotDumpable() { return kMarkNotDumpable; }

bool DisableCoreDumps(std::string* why) {
  bool ok = true;
  if (kMarkNotDumpable && ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
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
