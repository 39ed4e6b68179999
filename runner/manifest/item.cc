#include "runner/manifest/item.h"

#include <algorithm>
#include <array>
#include <boost/url/parse.hpp>
#include <cctype>
#include <charconv>
#include <cstring>
#include <utility>

#include "runner/api/spec.h"
#include "runner/http/url.h"
#include "runner/util/sha256.h"
#include "runner/util/utf8.h"

namespace nanobatch::manifest {
namespace {

constexpr std::array<std::string_view, 7> kItemKeys = {
    "id", "prompt", "resolution", "aspect_ratio", "output_format", "image_urls", "meta"};

static_assert(kItemKeys[static_cast<std::size_t>(ItemKey::kId)] == "id" &&
              kItemKeys[static_cast<std::size_t>(ItemKey::kPrompt)] == "prompt" &&
              kItemKeys[static_cast<std::size_t>(ItemKey::kResolution)] == "resolution" &&
              kItemKeys[static_cast<std::size_t>(ItemKey::kAspectRatio)] == "aspect_ratio" &&
              kItemKeys[static_cast<std::size_t>(ItemKey::kOutputFormat)] == "output_format" &&
              kItemKeys[static_cast<std::size_t>(ItemKey::kImageUrls)] == "image_urls" &&
              kItemKeys[static_cast<std::size_t>(ItemKey::kMeta)] == "meta");

constexpr std::size_t kMaxIdLength = 128;

std::string Quote(std::string_view value) {
  constexpr std::size_t kShown = 60;  // long values are cut so one error stays one line
  std::string out = "\"";
  out.append(value.substr(0, kShown));
  if (value.size() > kShown) out += "...";
  out += "\"";
  return out;
}

constexpr bool IsIdCharacterSlow(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// A table of the above: one load per character of every id of a manifest, not six compares.
constexpr std::array<bool, 256> kIdCharacters = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c) table[c] = IsIdCharacterSlow(static_cast<char>(c));
  return table;
}();

bool IsIdCharacter(char c) { return kIdCharacters[static_cast<unsigned char>(c)]; }

void AppendField(std::string& out, std::string_view name, std::string_view value) {
  // name=LENGTH:value\n, the length formatted in place (no string of its own per field).
  std::array<char, 24> length{};
  char* length_end = std::to_chars(length.begin(), length.end(), value.size()).ptr;
  out.append(name);
  out += '=';
  out.append(length.data(), static_cast<std::size_t>(length_end - length.data()));
  out += ':';
  out.append(value);
  out += '\n';
}

}  // namespace

bool IsItemKey(std::string_view key) { return ItemKeyIndex(key) >= 0; }

int ItemKeyIndex(std::string_view key) {
  // Every line of a manifest names its keys: the size picks the one candidate to compare.
  ItemKey candidate;
  switch (key.size()) {
    case 2:
      candidate = ItemKey::kId;
      break;
    case 4:
      candidate = ItemKey::kMeta;
      break;
    case 6:
      candidate = ItemKey::kPrompt;
      break;
    case 10:
      candidate = key[0] == 'r' ? ItemKey::kResolution : ItemKey::kImageUrls;
      break;
    case 12:
      candidate = ItemKey::kAspectRatio;
      break;
    case 13:
      candidate = ItemKey::kOutputFormat;
      break;
    default:
      return -1;
  }
  const auto index = static_cast<std::size_t>(candidate);
  // The sizes are equal: a compare of that many bytes, not string_view's generic one.
  const bool same = std::memcmp(kItemKeys[index].data(), key.data(), key.size()) == 0;
  return same ? static_cast<int>(index) : -1;
}

std::string ItemKeysForMessage() { return api::JoinAllowed(kItemKeys); }

std::span<const std::string_view> ItemKeyNames() { return kItemKeys; }

namespace {

// The form a near miss is compared in: no blanks around it, lower case, "jpeg" as "jpg", and
// "16x9" or "16/9" as "16:9".
std::string Normalized(std::string_view value) {
  const std::size_t first = value.find_first_not_of(" \t");
  const std::size_t last = value.find_last_not_of(" \t");
  std::string text(first == std::string_view::npos ? std::string_view()
                                                   : value.substr(first, last - first + 1));
  for (char& c : text) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c == 'x' || c == '/') c = ':';
  }
  if (text == "jpeg") text = "jpg";
  return text;
}

// "is not one of ...", and the allowed value the writer most likely meant, if one is that close.
// Only a suggestion: the value stays an error, since a guess must not decide what is paid for.
template <std::size_t N>
std::string NotOneOf(std::string_view value, const std::array<std::string_view, N>& allowed) {
  std::string message = Quote(value) + " is not one of " + api::JoinAllowed(allowed);
  const std::string near = Normalized(value);
  for (std::string_view candidate : allowed) {
    if (!near.empty() && Normalized(candidate) == near) {
      message += " (did you mean \"" + std::string(candidate) + "\"?)";
      break;
    }
  }
  return message;
}

}  // namespace

std::optional<std::string> CheckResolution(std::string_view value) {
  if (api::kResolutionSet.Contains(value)) return std::nullopt;
  return NotOneOf(value, api::kResolutions);
}

std::optional<std::string> CheckAspectRatio(std::string_view value) {
  if (api::kAspectRatioSet.Contains(value)) return std::nullopt;
  return NotOneOf(value, api::kAspectRatios);
}

std::optional<std::string> CheckOutputFormat(std::string_view value) {
  if (api::kOutputFormatSet.Contains(value)) return std::nullopt;
  return NotOneOf(value, api::kOutputFormats);
}

std::optional<std::string> CheckId(std::string_view value) {
  if (value.empty()) return std::string("is empty");
  if (value.size() > kMaxIdLength) {
    return "is " + std::to_string(value.size()) + " characters long; at most 128 are allowed";
  }
  if (value.front() == '.') return Quote(value) + " starts with '.'";
  bool all_allowed = true;
  for (char c : value) all_allowed &= IsIdCharacter(c);  // no branch per character
  if (!all_allowed) return Quote(value) + " has a character outside [A-Za-z0-9._-]";
  return std::nullopt;
}

std::optional<std::string> CheckPrompt(std::string_view value, bool utf8_checked) {
  if (value.empty()) return std::string("is empty");
  // Nothing but blanks is a gap in the data (an empty cell, a template's empty axis value), not
  // a picture to pay for. (A loop: find_first_not_of calls memchr over its set per character.)
  auto is_blank = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  if (is_blank(value.front()) && std::all_of(value.begin(), value.end(), is_blank)) {
    return std::string("is only whitespace");
  }
  // Code points never outnumber bytes: well-formed text of up to 20,000 bytes needs no count.
  if (utf8_checked && value.size() <= api::kMaxPromptCodePoints) return std::nullopt;
  const std::optional<std::size_t> length =
      utf8_checked ? util::CountCodePointsOfValidUtf8(value) : util::CountCodePoints(value);
  if (!length) return std::string("is not valid UTF-8");
  if (*length > api::kMaxPromptCodePoints) {
    return "is " + std::to_string(*length) + " characters long; at most 20000 are allowed";
  }
  return std::nullopt;
}

std::optional<std::string> CheckImageUrl(std::string_view value) {
  auto url = boost::urls::parse_absolute_uri(value);
  if (!url) return Quote(value) + " is not an absolute URL";
  if (url->scheme_id() != boost::urls::scheme::http &&
      url->scheme_id() != boost::urls::scheme::https) {
    return Quote(value) + " is not an http(s) URL";
  }
  if (url->encoded_host().empty()) return Quote(value) + " has no host";
  if (url->has_port() && !http::ParsePort(url->port())) {
    return Quote(value) + " has a port that is not 1 to 65535";
  }
  return std::nullopt;
}

std::optional<Item> ValidateItem(RawItem&& raw, const ItemDefaults& defaults, const Place& place,
                                 util::InputErrors& errors) {
  std::optional<Item> result;
  ValidateItemInto(std::move(raw), defaults, place, errors, result);
  return result;
}

bool ValidateItemInto(RawItem&& raw, const ItemDefaults& defaults, const Place& place,
                      util::InputErrors& errors, std::optional<Item>& out) {
  bool ok = true;
  auto fail = [&](std::string_view field, std::string message) {
    errors.Add({std::string(place.path), place.line, std::string(field), std::move(message)});
    ok = false;
  };

  Item& item = out.emplace();
  item.line = place.line;

  if (!raw.prompt) {
    fail("prompt", "is required");
  } else if (auto problem = CheckPrompt(*raw.prompt, raw.utf8_checked)) {
    fail("prompt", *problem);
  } else {
    item.prompt = std::move(*raw.prompt);
  }

  if (raw.resolution) {
    item.resolution = std::move(*raw.resolution);
  } else {
    item.resolution = defaults.resolution;
  }
  if (auto problem = CheckResolution(item.resolution)) fail("resolution", *problem);

  if (raw.aspect_ratio) {
    item.aspect_ratio = std::move(*raw.aspect_ratio);
  } else {
    item.aspect_ratio = defaults.aspect_ratio;
  }
  if (auto problem = CheckAspectRatio(item.aspect_ratio)) fail("aspect_ratio", *problem);

  if (raw.output_format) {
    item.output_format = std::move(*raw.output_format);
  } else {
    item.output_format = defaults.output_format;
  }
  if (auto problem = CheckOutputFormat(item.output_format)) fail("output_format", *problem);

  if (raw.image_urls) {
    if (raw.image_urls->size() > api::kMaxImageUrls) {
      fail("image_urls",
           "has " + std::to_string(raw.image_urls->size()) + " URLs; at most 14 are allowed");
    }
    for (std::size_t i = 0; i < raw.image_urls->size(); ++i) {
      if (auto problem = CheckImageUrl((*raw.image_urls)[i])) {
        fail("image_urls[" + std::to_string(i) + "]", *problem);
      }
    }
    item.image_urls = std::move(*raw.image_urls);
  }

  item.meta_json = std::move(raw.meta_json);

  if (raw.id) {
    if (auto problem = CheckId(*raw.id)) fail("id", *problem);
    item.id = std::move(*raw.id);
  }

  if (!ok) {
    out.reset();
    return false;
  }
  if (item.id.empty()) {
    item.id = DeriveId(item);
    item.id_derived = true;
  }
  return true;
}

namespace {

// The digest of the item's canonical encoding. Versioned and length-prefixed: no two different
// items can share an encoding, and a future field can be added under a new version without
// silently changing old ids.
util::Sha256::Digest ContentDigest(const Item& item) {
  // One buffer for every call (single-threaded use per thread): hashing it in one piece is
  // cheaper than a digest update per field, and reusing it saves an allocation per item.
  thread_local std::string canonical;
  canonical.assign("nanobatch-item-v1\n");
  AppendField(canonical, "prompt", item.prompt);
  AppendField(canonical, "resolution", item.resolution);
  AppendField(canonical, "aspect_ratio", item.aspect_ratio);
  AppendField(canonical, "output_format", item.output_format);
  for (const std::string& url : item.image_urls) AppendField(canonical, "image_url", url);
  const util::Sha256::Digest digest = util::Sha256::Of(canonical);
  if (canonical.capacity() > (1u << 20)) std::string().swap(canonical);  // keep no huge buffer
  return digest;
}

}  // namespace

std::string ContentHash(const Item& item) {
  std::string hex;
  util::Sha256::AppendHex(ContentDigest(item), sizeof(util::Sha256::Digest), hex);
  return hex;
}

std::string DeriveId(const Item& item) {
  // Formatted straight from the digest: one allocation, not three (validating a manifest of
  // derived ids pays this per line).
  std::string id;
  id.reserve(5 + 16);
  id.append("item-");
  util::Sha256::AppendHex(ContentDigest(item), 8, id);
  return id;
}

}  // namespace nanobatch::manifest
