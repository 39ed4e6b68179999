#include "runner/terminal/progress_bar.h"

#include <doctest/doctest.h>

namespace nanobatch::terminal {
namespace {

ProgressFigures Busy() {
  ProgressFigures figures;
  figures.total = 1000;
  figures.done = 447;
  figures.failed = 3;
  figures.in_flight = 12;
  figures.images_per_minute = 38.4;
  figures.credits_spent = 7200;
  figures.budget = 16000;
  figures.elapsed_s = 723;
  figures.eta_s = 860;
  figures.retries = 4;
  return figures;
}

TEST_CASE("progress bar: everything on a wide terminal") {
  const std::string line = RenderProgressBar(Busy(), 200);
  CHECK(line ==
        " 45% |█████████████░░░░░░░░░░░░░░░░░| 450/1000 · 12:03<14:20 · 3 failed · 12 in flight · "
        "38 img/min · 7200/16000 cr · 4 retries");
}

TEST_CASE("progress bar: never as wide as the terminal, at any width") {
  for (std::size_t width = 0; width <= 220; ++width) {
    const std::string line = RenderProgressBar(Busy(), width);
    INFO("width " << width << ": " << line);
    CHECK(Columns(line) < std::max<std::size_t>(width, 1));
    if (width >= 12) CHECK(line.rfind(" 45% ", 0) == 0);
  }
  // The least useful parts go first; the count and the time stay longest.
  const std::string narrow = RenderProgressBar(Busy(), 50);
  CHECK(narrow.find("retries") == std::string::npos);
  CHECK(narrow.find("450/1000") != std::string::npos);
}

TEST_CASE("progress bar: the start of a run, the end, an empty run") {
  ProgressFigures start;
  start.total = 10;
  CHECK(RenderProgressBar(start, 100) ==
        "  0% |░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░| 0/10 · 0:00 · 0 in flight · 0.0 img/min · 0 cr");
  ProgressFigures end = start;
  end.done = 10;
  end.elapsed_s = 3725;
  CHECK(RenderProgressBar(end, 100).rfind("100% |██████████████████████████████| 10/10 · 1:02:05",
                                         0) == 0);
  CHECK(RenderProgressBar(ProgressFigures{}, 40).rfind("  0% ", 0) == 0);
}

TEST_CASE("progress bar: clocks and columns") {
  CHECK(Clock(0) == "0:00");
  CHECK(Clock(61.4) == "1:01");
  CHECK(Clock(3600) == "1:00:00");
  CHECK(Columns("█░ab") == 4);
}

}  // namespace
}  // namespace nanobatch::terminal
