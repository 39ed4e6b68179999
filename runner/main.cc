// nanobatch: only wiring. The commands live in runner/cli/.
#include <exception>
#include <iostream>

#include "runner/cli/commands.h"

int main(int argc, char** argv) {
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
