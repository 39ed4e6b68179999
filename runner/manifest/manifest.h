#pragma once
// Reading a whole manifest: JSONL (one JSON object a line) or YAML (`.yaml`/`.yml`: a list of
// items, or a mapping with `defaults:` and `items:`), as interface.md fixes.
//
// Every item is validated and every error of the file collected (up to the InputErrors cap)
// before the caller spends anything. Items are handed to a sink one by one as they are read, so a
// caller that only validates keeps no prompt in memory.
//
// Example:
//   util::InputErrors errors;
//   std::vector<Item> items;
//   ReadManifest("prompts.jsonl", defaults, [&](Item&& item) { items.push_back(std::move(item)); },
//                errors);
//   if (!errors.empty()) { errors.Print(std::cerr); return 2; }

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "runner/manifest/item.h"
#include "runner/util/input_error.h"

namespace nanobatch::manifest {

using ItemSink = std::function<void(Item&&)>;

struct ManifestStats {
  std::size_t items = 0;    // valid items handed to the sink
  std::size_t lines = 0;    // lines read
  std::uint64_t bytes = 0;  // bytes read
};

enum class ManifestFormat { kJsonl, kYaml };

// Size caps of a manifest file (a regular file only: a device such as /dev/zero, a FIFO or a
// directory is refused with a clear message). yaml-cpp holds the whole document in memory, so
// YAML manifests are for hand-written batches; JSONL streams and can be large.
inline constexpr std::uint64_t kMaxYamlManifestBytes = 64ull << 20;
inline constexpr std::uint64_t kMaxJsonlManifestBytes = 64ull << 30;

// Output file names must not collide, on any filesystem: an item's images are `<id>.<ext>` and
// `<id>-<k>.<ext>` for k = 1 .. kMaxUrlsPerTask - 1 (interface.md). So ids are unique ignoring
// case (case-insensitive filesystems), and an id may not be another id followed by -1 .. -15
// (that name belongs to the other item's second to sixteenth image). NameClaims enforces both.
class NameClaims {
 public:
  // The id an `id` would collide with, if any; otherwise claims its names and returns nullopt.
  std::optional<std::string> Claim(const std::string& id);

 private:
  std::unordered_map<std::string, std::string> ids_;          // folded id -> id
  std::unordered_map<std::string, std::string> extra_of_;     // folded X of an id X-k -> id
};

// By extension: `.yaml` and `.yml` are YAML, anything else is JSONL.
ManifestFormat FormatOf(const std::string& path);

// Reads and validates the manifest at `path`. The sink receives each valid item whose id is not
// already taken; ids must be unique across the file (explicit or derived). The caller must treat
// the manifest as bad when `errors` is not empty afterwards, even though valid items were sunk.
ManifestStats ReadManifest(const std::string& path, const ItemDefaults& defaults,
                           const ItemSink& sink, util::InputErrors& errors);

// The format-specific readers behind ReadManifest; they check everything but id uniqueness.
ManifestStats ReadJsonlManifest(const std::string& path, const ItemDefaults& defaults,
                                const ItemSink& sink, util::InputErrors& errors);
ManifestStats ReadYamlManifest(const std::string& path, const ItemDefaults& defaults,
                               const ItemSink& sink, util::InputErrors& errors);

}  // namespace nanobatch::manifest
