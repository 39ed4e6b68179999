#pragma once
// The fixed vocabulary of the Nano Banana 2 API (../shared/reference/api.md): the model name,
// the allowed parameter values and limits. Pure data, shared by the manifest validator, the
// request codec and the simulator so that all three agree by construction.
//
// Example:
//   if (!IsOneOf(value, kAspectRatios)) { ... }

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace nanobatch::api {

inline constexpr std::string_view kModel = "nano-banana-2";
inline constexpr std::string_view kDefaultBaseUrl = "https://api.aivideoapi.ai";
inline constexpr std::string_view kDefaultDownloadHost = "file.aivideoapi.ai";

inline constexpr std::size_t kMaxPromptCodePoints = 20'000;
inline constexpr std::size_t kMaxImageUrls = 14;

inline constexpr std::array<std::string_view, 3> kResolutions = {"1K", "2K", "4K"};
inline constexpr std::array<std::string_view, 15> kAspectRatios = {
    "1:1",  "2:3",  "3:2", "3:4", "4:3", "4:5", "5:4", "9:16",
    "16:9", "21:9", "1:4", "4:1", "1:8", "8:1", "auto"};
inline constexpr std::array<std::string_view, 2> kOutputFormats = {"jpg", "png"};

// The API's own defaults when a field is omitted.
inline constexpr std::string_view kDefaultResolution = "1K";
inline constexpr std::string_view kDefaultAspectRatio = "auto";
inline constexpr std::string_view kDefaultOutputFormat = "jpg";

// List prices in credits (api.md "Pricing"); the config may override them.
inline constexpr unsigned kListPrice1K = 16;
inline constexpr unsigned kListPrice2K = 24;
inline constexpr unsigned kListPrice4K = 36;

template <std::size_t N>
constexpr bool IsOneOf(std::string_view value, const std::array<std::string_view, N>& allowed) {
  // Sizes and first bytes rule out nearly every candidate without a call to memcmp (validating a
  // million items compares their fields against these lists millions of times).
  for (std::string_view candidate : allowed) {
    if (candidate.size() == value.size() && (value.empty() || candidate[0] == value[0]) &&
        candidate == value) {
      return true;
    }
  }
  return false;
}

// A text of at most 7 bytes as one word: its bytes, and its size in the top byte (so "a" and
// "a\0" differ, and only the empty text is 0).
constexpr std::uint64_t ShortWord(std::string_view text) {
  std::uint64_t word = static_cast<std::uint64_t>(text.size()) << 56;
  for (std::size_t i = 0; i < text.size() && i < 7; ++i) {
    word |= static_cast<std::uint64_t>(static_cast<unsigned char>(text[i])) << (8 * i);
  }
  return word;
}

// A fixed list of short texts as a perfect hash table of their words: whether a value is one of
// them is a multiply, a shift and one compare. (A million manifest lines check three fields each
// against these lists: callgrind counted 189 instructions a line for the aspect ratio alone by
// IsOneOf, 70 by this.)
struct ShortSet {
  static constexpr int kBits = 6;
  std::array<std::uint64_t, std::size_t{1} << kBits> slots{};  // 0: empty
  std::uint64_t multiplier = 0;

  constexpr std::size_t SlotOf(std::uint64_t word) const {
    return static_cast<std::size_t>((word * multiplier) >> (64 - kBits));
  }
  constexpr bool Contains(std::string_view value) const {
    if (value.empty() || value.size() > 7) return false;
    const std::uint64_t word = ShortWord(value);
    return slots[SlotOf(word)] == word;
  }
};

// Built at compile time: the first of a fixed sequence of odd multipliers (SplitMix64's outputs:
// neighbouring multipliers would place the words alike) that gives every text a slot of its own.
// Every text must be 1 to 7 bytes long (a longer one would be cut).
template <std::size_t N>
constexpr ShortSet MakeShortSet(const std::array<std::string_view, N>& texts) {
  for (std::uint64_t seed = 1;; ++seed) {
    std::uint64_t mixed = seed * 0x9E3779B97F4A7C15ull;
    mixed = (mixed ^ (mixed >> 30)) * 0xBF58476D1CE4E5B9ull;
    mixed = (mixed ^ (mixed >> 27)) * 0x94D049BB133111EBull;
    ShortSet set;
    set.multiplier = (mixed ^ (mixed >> 31)) | 1;
    bool fits = true;
    for (std::string_view text : texts) {
      if (text.empty() || text.size() > 7) return ShortSet{};  // fails the static_assert below
      const std::uint64_t word = ShortWord(text);
      std::uint64_t& slot = set.slots[set.SlotOf(word)];
      if (slot != 0) {
        fits = false;
        break;
      }
      slot = word;
    }
    if (fits) return set;
  }
}

inline constexpr ShortSet kResolutionSet = MakeShortSet(kResolutions);
inline constexpr ShortSet kAspectRatioSet = MakeShortSet(kAspectRatios);
inline constexpr ShortSet kOutputFormatSet = MakeShortSet(kOutputFormats);
static_assert(kResolutionSet.multiplier != 0 && kAspectRatioSet.multiplier != 0 &&
              kOutputFormatSet.multiplier != 0);

// The position of `value` in kResolutions, or -1.
constexpr int ResolutionIndex(std::string_view value) {
  for (std::size_t i = 0; i < kResolutions.size(); ++i) {
    if (kResolutions[i] == value) return static_cast<int>(i);
  }
  return -1;
}

// "a b c", for error messages that list what would have been accepted.
template <std::size_t N>
std::string JoinAllowed(const std::array<std::string_view, N>& allowed) {
  std::string out;
  for (std::string_view candidate : allowed) {
    if (!out.empty()) out += ' ';
    out += candidate;
  }
  return out;
}

}  // namespace nanobatch::api
