#include "runner/util/utf8.h"

#include <simdjson.h>

#include <cstdint>
#include <cstring>

namespace nanobatch::util {

std::optional<std::size_t> CountCodePoints(std::string_view text) {
  // simdjson's validator (SIMD, picked for this CPU at run time) rejects overlong forms,
  // surrogates, code points above U+10FFFF and truncated sequences, as RFC 3629 asks.
  if (!simdjson::validate_utf8(text.data(), text.size())) return std::nullopt;
  return CountCodePointsOfValidUtf8(text);
}

std::size_t CountCodePointsOfValidUtf8(std::string_view text) {
  // In valid UTF-8 every code point has exactly one byte that is not a continuation byte
  // (10xxxxxx): the count is the length minus the continuation bytes. Those are found eight at
  // a time (top bit set, next bit clear) and tallied per byte lane, summed every 255 words (no
  // popcount instruction is assumed of the CPU).
  constexpr std::uint64_t kTopBits = 0x8080808080808080ull;
  std::size_t continuation = 0;
  std::size_t i = 0;
  while (i + 8 <= text.size()) {
    std::uint64_t lanes = 0;  // a count per byte lane, at most 255 each
    for (int words = 0; words < 255 && i + 8 <= text.size(); ++words, i += 8) {
      std::uint64_t word;
      std::memcpy(&word, text.data() + i, sizeof word);
      lanes += (word & ~(word << 1) & kTopBits) >> 7;
    }
    // Each lane is below 256 here: add them up.
    for (int lane = 0; lane < 8; ++lane) continuation += (lanes >> (8 * lane)) & 0xFF;
  }
  for (; i < text.size(); ++i) {
    continuation += (static_cast<std::uint8_t>(text[i]) & 0xC0) == 0x80;
  }
  return text.size() - continuation;
}

}  // namespace nanobatch::util
