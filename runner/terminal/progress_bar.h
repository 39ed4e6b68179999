#pragma once
// ProgressBar: the one line a run draws on a terminal, tqdm-style:
//
//    45% |█████████░░░░░░░░░░░| 450/1000 · 3 failed · 12 in flight · 38 img/min · 7200/16000 cr ·
//    12:03<14:20 · 4 retries
//
// Pure: figures and a width in, the line out. The line never exceeds `width - 1` columns (a
// line that fills the last column makes some terminals wrap), so a redraw ("\r" + line +
// erase-to-end) never leaves fragments: when the figures do not fit, the least useful ones are
// dropped first (retries, credits, images per minute, in flight, failed), then the bar narrows,
// then the text is cut.
//
// Example:
//   ProgressFigures figures{.total = 1000, .done = 450};
//   std::string line = RenderProgressBar(figures, TerminalColumns());

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nanobatch::terminal {

struct ProgressFigures {
  std::uint64_t total = 0;  // items of the run
  std::uint64_t done = 0;
  std::uint64_t failed = 0;
  std::uint64_t in_flight = 0;
  double images_per_minute = 0;  // over a recent window
  std::uint64_t credits_spent = 0;
  std::optional<std::uint64_t> budget;
  double elapsed_s = 0;
  std::optional<double> eta_s;  // unknown until something finished
  std::uint64_t retries = 0;    // transient retries summarised instead of logged
};

std::string RenderProgressBar(const ProgressFigures& figures, std::size_t width);

// Display columns of UTF-8 text whose characters are each one column wide (all this file draws).
std::size_t Columns(std::string_view text);
// "12:03", "1:02:03".
std::string Clock(double seconds);

}  // namespace nanobatch::terminal
