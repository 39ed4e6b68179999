#include "runner/util/did_you_mean.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace nanobatch::util {
namespace {

char Folded(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Keys are short; anything longer is no typo of one, and is not worth a quadratic table.
constexpr std::size_t kMaxCompared = 64;

}  // namespace

std::size_t EditDistance(std::string_view a, std::string_view b) {
  // Three rows of the dynamic-programming table: the current one, and the two before it for a
  // swap of neighbours. On the stack: a file with an unknown key on each of a million lines asks
  // a million times.
  if (a.size() > kMaxCompared || b.size() > kMaxCompared) {
    return std::max(a.size(), b.size());  // no typo of a key: far from everything
  }
  using Row = std::array<std::size_t, kMaxCompared + 1>;
  Row before{}, previous{}, current{};
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const bool same = Folded(a[i - 1]) == Folded(b[j - 1]);
      current[j] =
          std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (same ? 0 : 1)});
      if (i > 1 && j > 1 && Folded(a[i - 1]) == Folded(b[j - 2]) &&
          Folded(a[i - 2]) == Folded(b[j - 1])) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string_view> DidYouMean(std::string_view typed,
                                           std::span<const std::string_view> known) {
  if (typed.empty() || typed.size() > kMaxCompared) return std::nullopt;
  const std::size_t allowed = std::clamp<std::size_t>(typed.size() / 5, 1, 3);
  std::optional<std::string_view> best;
  std::size_t best_distance = allowed + 1;
  bool tied = false;
  for (std::string_view candidate : known) {
    if (candidate.size() > kMaxCompared) continue;
    const std::size_t distance = EditDistance(typed, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
      tied = false;
    } else if (distance == best_distance) {
      tied = true;
    }
  }
  if (tied) return std::nullopt;  // two equally likely names: naming one would mislead
  return best;
}

std::string DidYouMeanSuffix(std::string_view typed, std::span<const std::string_view> known) {
  const auto near = DidYouMean(typed, known);
  if (!near) return {};
  return " (did you mean \"" + std::string(*near) + "\"?)";
}

}  // namespace nanobatch::util
