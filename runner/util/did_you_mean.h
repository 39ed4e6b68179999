#pragma once
// DidYouMean: the known name a mistyped one most likely meant ("resolutoin" -> "resolution",
// "limits.burts" -> "limits.burst"), for messages about unknown keys. Only a suggestion: an
// unknown key stays an error, since a guess must not decide what is paid for.
//
// A candidate is close when it differs only in case, or by at most one edit in five characters
// (an insertion, a deletion, a substitution or two neighbours swapped; at least one edit, at
// most three), and is the only candidate that close.
//
// Example:
//   if (auto near = DidYouMean(key, {"prompt", "id"})) message += " (did you mean " + ... + "?)";

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace nanobatch::util {

// The edits between `a` and `b` ignoring ASCII case (optimal string alignment distance). Names
// over 64 characters are no typo of a key: their distance is the longer length.
std::size_t EditDistance(std::string_view a, std::string_view b);

std::optional<std::string_view> DidYouMean(std::string_view typed,
                                           std::span<const std::string_view> known);

// " (did you mean \"NAME\"?)", or empty when nothing is close enough.
std::string DidYouMeanSuffix(std::string_view typed, std::span<const std::string_view> known);

}  // namespace nanobatch::util
