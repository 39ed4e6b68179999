#pragma once
// UTF-8 helpers. api.md limits prompts to 20,000 *characters*, and prompts are often Chinese
// (3 bytes a character in UTF-8), so lengths are counted in Unicode code points, not bytes.
//
// Example:
//   CountCodePoints("猫") == 1;  CountCodePoints("\xff") == std::nullopt;

#include <cstddef>
#include <optional>
#include <string_view>

namespace nanobatch::util {

// The number of code points in `text`, or nullopt if it is not well-formed UTF-8 (overlong
// forms, surrogates, code points above U+10FFFF and truncated sequences are all rejected).
std::optional<std::size_t> CountCodePoints(std::string_view text);
// The same for text already known to be well-formed UTF-8 (a string simdjson parsed: it checks
// the whole document), without checking it again.
std::size_t CountCodePointsOfValidUtf8(std::string_view text);

}  // namespace nanobatch::util
