#pragma once
// Item: one validated manifest entry, exactly what will be sent to the API and paid for.
//
// Both manifest formats (JSONL, YAML) parse into a RawItem, which records what the user wrote,
// and ValidateItem applies every rule of interface.md in one place, so the two readers cannot
// drift apart.
//
// Example:
//   RawItem raw;
//   raw.prompt = "a cat wearing sunglasses";
//   std::optional<Item> item = ValidateItem(std::move(raw), defaults, {"m.jsonl", 3}, errors);

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runner/util/input_error.h"

namespace nanobatch::manifest {

// Values used when neither the item nor the manifest's own `defaults:` sets a field. These come
// from the config's `defaults:` section and start as the API's own defaults.
struct ItemDefaults {
  std::string resolution = "1K";
  std::string aspect_ratio = "auto";
  std::string output_format = "jpg";
};

// Field order keeps padding out: a lifecycle holds one Item in its coroutine frame while its item
// is in flight.
struct Item {
  std::string id;
  std::string prompt;
  std::string resolution;
  std::string aspect_ratio;
  std::string output_format;
  std::vector<std::string> image_urls;
  // The item's own columns (MetaColumns: a JSON object text, or empty): never sent to the API,
  // not part of ContentHash; written to metadata.jsonl beside the image.
  std::string meta_json;
  int line = 0;  // where the item starts in its manifest, for later messages
  // Where a JSONL item's line is in its file (bytes), so it can be read again on demand instead
  // of being held in memory; source_length is 0 for YAML items.
  std::uint32_t source_length = 0;
  std::uint64_t source_offset = 0;
  std::uint64_t source_fingerprint = 0;  // XXH3 of the line's bytes, to notice an edited file
  bool id_derived = false;               // true when the id was computed from the content
};

// What a reader found for one item, before validation. Absent fields stay nullopt.
struct RawItem {
  std::optional<std::string> id;
  std::optional<std::string> prompt;
  std::optional<std::string> resolution;
  std::optional<std::string> aspect_ratio;
  std::optional<std::string> output_format;
  std::optional<std::vector<std::string>> image_urls;
  std::string meta_json;  // built and checked by the reader (MetaColumns)
  // The reader already checked that every string is well-formed UTF-8 (simdjson does, for the
  // whole line); YAML's reader does not.
  bool utf8_checked = false;
};

// Where an item came from, for error messages.
struct Place {
  std::string_view path;
  int line = 0;
};

// The keys an item may have; anything else is an error (a typo must not silently change what is
// paid for).
bool IsItemKey(std::string_view key);
// The item keys, in the order ItemKeyIndex numbers them.
enum class ItemKey { kId, kPrompt, kResolution, kAspectRatio, kOutputFormat, kImageUrls, kMeta };
// The key's position among the item keys (stable, below 32), or -1 for an unknown key.
int ItemKeyIndex(std::string_view key);
std::string ItemKeysForMessage();
std::span<const std::string_view> ItemKeyNames();

// Each returns an error message for a bad value, or nullopt when the value is allowed.
std::optional<std::string> CheckResolution(std::string_view value);
std::optional<std::string> CheckAspectRatio(std::string_view value);
std::optional<std::string> CheckOutputFormat(std::string_view value);
std::optional<std::string> CheckId(std::string_view value);
// `utf8_checked`: the text is known to be well-formed UTF-8 already (not checked again).
std::optional<std::string> CheckPrompt(std::string_view value, bool utf8_checked = false);
std::optional<std::string> CheckImageUrl(std::string_view value);

// Applies defaults and every rule; on failure adds one error per bad field and returns nullopt.
// Id uniqueness is the manifest's business (it needs every item), not this function's.
std::optional<Item> ValidateItem(RawItem&& raw, const ItemDefaults& defaults, const Place& place,
                                 util::InputErrors& errors);
// The same, building the item in `out` (emptied first): a reader that keeps items in slots of
// its own moves none (moving an Item copies each of its short strings' inline buffers). True if
// the item is valid.
bool ValidateItemInto(RawItem&& raw, const ItemDefaults& defaults, const Place& place,
                      util::InputErrors& errors, std::optional<Item>& out);

// SHA-256 (hex) over a canonical, length-prefixed encoding of everything sent to the API:
// prompt, resolution, aspect_ratio, output_format, image_urls (in order). Independent of the
// manifest format, key order, whitespace and the machine, so the same item hashes the same
// across runs; the journal uses it to notice an item changed under its id.
std::string ContentHash(const Item& item);

// The id of an item that has none: "item-" + the first 16 hex digits of ContentHash. Stable
// across runs and machines; changes when anything sent to the API changes.
std::string DeriveId(const Item& item);

}  // namespace nanobatch::manifest
