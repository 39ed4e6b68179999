// nanobatch: only wiring. The commands live in runner/cli/.
#include <signal.h>

#include <exception>
#include <iostream>

#include "runner/cli/commands.h"

int main(int argc, char** argv) {
  // A peer that closes a connection must be an error code, not a death by SIGPIPE; a file that
  // outgrows a size limit must be EFBIG from write(), handled like a full disk, not SIGXFSZ.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);
  // The one catch-all of the program (style.md): an exception reaching here is a bug, reported
  // plainly instead of as an abort with no message.
  try {
    return nanobatch::cli::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "nanobatch: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "nanobatch: internal error\n";
  }
  return 70;  // EX_SOFTWARE
}
