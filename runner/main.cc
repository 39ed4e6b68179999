// nanobatch: only wiring. The commands live in runner/cli/.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <exception>
#include <iostream>
#include <string>

#include "runner/cli/commands.h"
#include "runner/util/core_dumps.h"

// Started with stdin, stdout or stderr closed, the first files opened (the journal) would take
// fds 0-2 and log lines would be written into them: each missing one is opened on /dev/null.
void MakeStandardFdsSafe() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1) continue;
    const int opened = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (opened >= 0 && opened != fd) {
      ::dup2(opened, fd);
      ::close(opened);
    }
  }
}

int main(int argc, char** argv) {
  MakeStandardFdsSafe();
  // Before the key is read: it must never reach a core file (SECURITY.md).
  if (std::string why; !nanobatch::util::DisableCoreDumps(&why)) {
    std::cerr << "nanobatch: warning: core dumps stay possible: " << why << "\n";
  }
  // A peer that closes a connection must be an error code, not a death by SIGPIPE; a file that
  // outgrows a size limit must be EFBIG from write(), handled like a full disk, not SIGXFSZ.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);
  // A hang-up (a closed terminal, a reload request) never ends a run, not even while a large
  // manifest is still being validated; the engine logs it once its loop is up.
  ::signal(SIGHUP, SIG_IGN);
  // The one catch-all of the program (style.md): an exception reaching here is a bug, reported
  // plainly instead of as an abort with no message.
  try {
    return nanobatch::cli::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "nanobatch: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "nanobatch: internal error\n";
  }
  return 70;  // EX_SOFTWARE, documented in the README's exit status table
}
