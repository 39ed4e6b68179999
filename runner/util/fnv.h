#pragma once
// FNV-1a, 64 bits: a stable, documented hash of bytes (not cryptographic). Used where a value
// must never change across versions and machines (shard assignment) and for hash tables of
// short names. (Manifest line fingerprints, over whole lines, use XXH3: see LineFingerprint.)
//
// Example:
//   std::uint64_t h = Fnv1a64("item-42");

#include <cstdint>
#include <string_view>

namespace nanobatch::util {

inline std::uint64_t Fnv1a64(std::string_view bytes) {
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace nanobatch::util
