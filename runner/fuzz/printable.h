#pragma once
// What every fuzz target demands of text nanobatch will print or store: valid UTF-8 without
// control characters (a terminal must not be driven by a manifest or a server) and bounded.

#include <cstddef>
#include <string_view>

#include "runner/util/utf8.h"

namespace nanobatch::fuzz {

inline bool IsPrintable(std::string_view text, std::size_t max_bytes = 1 << 16) {
  if (text.size() > max_bytes || !util::CountCodePoints(text)) return false;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace nanobatch::fuzz
