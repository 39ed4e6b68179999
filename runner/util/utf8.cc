#include "runner/util/utf8.h"

#include <simdjson.h>

#include <cstdint>

namespace nanobatch::util {

std::optional<std::size_t> CountCodePoints(std::string_view text) {
  // simdjson's validator (SIMD, picked for this CPU at run time) rejects overlong forms,
  // surrogates, code points above U+10FFFF and truncated sequences, as RFC 3629 asks. In valid
  // UTF-8 every code point has exactly one byte that is not a continuation byte (10xxxxxx):
  // counting those is a loop the compiler vectorizes.
  if (!simdjson::validate_utf8(text.data(), text.size())) return std::nullopt;
  std::size_t count = 0;
  for (const char c : text) count += (static_cast<std::uint8_t>(c) & 0xC0) != 0x80;
  return count;
}

}  // namespace nanobatch::util
