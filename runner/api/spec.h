#pragma once
// The fixed vocabulary of the Nano Banana 2 API (../shared/reference/api.md): the model name,
// the allowed parameter values and limits. Pure data, shared by the manifest validator, the
// request codec and the simulator so that all three agree by construction.
//
// Example:
//   if (!IsOneOf(value, kAspectRatios)) { ... }

#include <array>
#include <cstddef>
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
