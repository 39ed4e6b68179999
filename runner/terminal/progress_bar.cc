#include "runner/terminal/progress_bar.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace nanobatch::terminal {
namespace {

constexpr std::string_view kFull = "\u2588";         // █
constexpr std::string_view kEmpty = "\u2591";        // ░
constexpr std::string_view kSeparator = " \u00b7 ";  // " · "
constexpr std::size_t kWidestBar = 30;
constexpr std::size_t kNarrowestBar = 8;

std::string Bar(double fraction, std::size_t cells) {
  const auto full = static_cast<std::size_t>(std::floor(fraction * static_cast<double>(cells)));
  std::string bar = "|";
  for (std::size_t i = 0; i < cells; ++i) bar += i < full ? kFull : kEmpty;
  return bar + "|";
}

// Cuts UTF-8 text to `columns` columns (whole characters).
std::string Cut(std::string_view text, std::size_t columns) {
  std::string out;
  std::size_t used = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const bool starts_character = (byte & 0xC0) != 0x80;
    if (starts_character && used == columns) break;
    if (starts_character) ++used;
    out += text[i];
  }
  return out;
}

}  // namespace

std::size_t Columns(std::string_view text) {
  std::size_t columns = 0;
  for (char c : text) columns += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return columns;
}

std::string Clock(double seconds) {
  const auto total = static_cast<long long>(std::max(0.0, std::round(seconds)));
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60,
                  total % 60);
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", total / 60, total % 60);
  }
  return text;
}

std::string RenderProgressBar(const ProgressFigures& figures, std::size_t width) {
  const std::size_t limit = width > 1 ? width - 1 : 0;
  const std::uint64_t finished = figures.done + figures.failed;
  const double fraction =
      figures.total > 0 ? std::min(1.0, static_cast<double>(finished) / figures.total) : 0;
  char percent[8];
  std::snprintf(percent, sizeof percent, "%3.0f%%", std::floor(fraction * 100));

  // Every part, most useful first; parts are dropped from the end until the line fits.
  std::vector<std::string> parts;
  parts.push_back(std::to_string(finished) + "/" + std::to_string(figures.total));
  std::string time = Clock(figures.elapsed_s);
  if (figures.eta_s) time += "<" + Clock(*figures.eta_s);
  parts.push_back(time);
  if (figures.failed > 0) parts.push_back(std::to_string(figures.failed) + " failed");
  parts.push_back(std::to_string(figures.in_flight) + " in flight");
  char per_minute[32];
  std::snprintf(per_minute, sizeof per_minute, "%.*f img/min",
                figures.images_per_minute < 10 ? 1 : 0, figures.images_per_minute);
  parts.push_back(per_minute);
  parts.push_back(std::to_string(figures.credits_spent) +
                  (figures.budget ? "/" + std::to_string(*figures.budget) : std::string()) + " cr");
  if (figures.retries > 0) parts.push_back(std::to_string(figures.retries) + " retries");

  auto text_of = [&](std::size_t count) {
    std::string text;
    for (std::size_t i = 0; i < count; ++i) text += (i ? std::string(kSeparator) : "") + parts[i];
    return text;
  };
  // Widest bar first; then fewer parts with the widest bar that fits; then a narrower bar.
  for (std::size_t count = parts.size(); count > 0; --count) {
    const std::string text = text_of(count);
    const std::size_t fixed = Columns(percent) + 1 + 2 + 1 + Columns(text);  // "pct |bar| text"
    if (fixed + kNarrowestBar <= limit) {
      const std::size_t cells = std::min(kWidestBar, limit - fixed);
      return std::string(percent) + " " + Bar(fraction, cells) + " " + text;
    }
  }
  // Too narrow for any bar: the percentage and the count, cut to fit.
  return Cut(std::string(percent) + " " + parts[0], limit);
}

}  // namespace nanobatch::terminal
