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

namespace {

// The edits between `a` and `b`, or `limit` + 1 as soon as they are known to be more: a name
// whose length differs by more is not compared at all, and a row of the table whose every entry
// is past the limit ends it. (`validate --config` of a config of 20,000 unknown keys took 7.4 s
// with the full table for every known key, 0.4 s with these bounds.)
std::size_t BoundedDistance(std::string_view a, std::string_view b, std::size_t limit) {
  const std::size_t longer = std::max(a.size(), b.size());
  if (longer - std::min(a.size(), b.size()) > limit) return limit + 1;
  if (longer > kMaxCompared) return std::min(longer, limit + 1);  // no typo of a key
  // Three rows of the dynamic-programming table, rotated: the current one, and the two before it
  // for a swap of neighbours. On the stack.
  std::array<std::size_t, 3 * (kMaxCompared + 1)> rows{};
  std::size_t* before = rows.data();
  std::size_t* previous = before + kMaxCompared + 1;
  std::size_t* current = previous + kMaxCompared + 1;
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    std::size_t row_minimum = current[0];
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const bool same = Folded(a[i - 1]) == Folded(b[j - 1]);
      current[j] =
          std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (same ? 0 : 1)});
      if (i > 1 && j > 1 && Folded(a[i - 1]) == Folded(b[j - 2]) &&
          Folded(a[i - 2]) == Folded(b[j - 1])) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
      row_minimum = std::min(row_minimum, current[j]);
    }
    // No later entry is smaller than this row's smallest: each step adds 0 or 1 to an entry of
    // this row, and a swap of neighbours adds 1 to an entry of the row before, which is at least
    // this row's entry diagonally after it less 1.
    if (row_minimum > limit) return limit + 1;
    std::size_t* oldest = before;
    before = previous;
    previous = current;
    current = oldest;
  }
  return std::min(previous[b.size()], limit + 1);
}

}  // namespace

std::size_t EditDistance(std::string_view a, std::string_view b) {
  const std::size_t longer = std::max(a.size(), b.size());
  return BoundedDistance(a, b, longer);
}

std::optional<std::string_view> DidYouMean(std::string_view typed,
                                           std::span<const std::string_view> known) {
  if (typed.empty() || typed.size() > kMaxCompared) return std::nullopt;
  const std::size_t allowed = std::clamp<std::size_t>(typed.size() / 5, 1, 3);
  std::optional<std::string_view> best;
  std::size_t best_distance = allowed + 1;
  bool tied = false;
  for (std::string_view candidate : known) {
    // Only as far as the best so far: a tie with it still counts.
    const std::size_t distance = BoundedDistance(typed, candidate, best_distance);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
      tied = false;
    } else if (distance == best_distance && best) {
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
