#pragma once
// DisableCoreDumps: the API key lives in this process's memory for its whole life, so a crash
// must not write that memory to a core file that other tools (systemd-coredump, apport, a
// support bundle) keep and pass around. The process is marked not dumpable, which also stops
// other users' ptrace and makes /proc/PID's private files root's, and its core size limit is
// set to zero for good measure (a core handler piping to a program ignores that limit, not the
// dumpable flag).
//
// Example (first thing in main):
//   if (std::string why; !util::DisableCoreDumps(&why)) std::cerr << why << "\n";

#include <string>

namespace nanobatch::util {

// False (and `why`) when either step failed; the process goes on either way.
bool DisableCoreDumps(std::string* why);
// Whether DisableCoreDumps marks the process not dumpable (not in sanitizer builds, whose leak
// checker needs to ptrace the process at exit).
bool MarksNotDumpable();

}  // namespace nanobatch::util
