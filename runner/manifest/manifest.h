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
#include <utility>
#include <vector>

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
//
// It holds 64-bit hashes of the folded names and the owner's number, not the names: a million
// ids cost tens of megabytes. On a hash match, `id_of` fetches the earlier owner's id (the
// manifest re-reads it) to confirm, so a hash collision is never a false error.
// An open-addressing multimap from 32-bit name hashes to owners: 8 bytes an entry (ten million
// names in about 130 MB, where a node-based map takes 400). Entries with the hash are only
// candidates: the caller confirms each against the owner's real name.
class NameHashIndex {
 public:
  void Insert(std::uint32_t hash, std::uint32_t owner);
  // The first owner with `hash` for which `confirm(owner)` holds.
  std::optional<std::uint32_t> Find(std::uint32_t hash,
                                    const std::function<bool(std::uint32_t)>& confirm) const;
  void Reserve(std::size_t entries);
  void Clear() {
    std::vector<Entry>().swap(table_);
    used_ = 0;
  }

 private:
  struct Entry {
    std::uint32_t hash = 0;
    std::uint32_t owner_plus_one = 0;  // 0: empty
  };
  std::vector<Entry> table_;
  std::size_t used_ = 0;
};

class NameClaims {
 public:
  using Owner = std::uint32_t;
  using IdOf = std::function<std::string(Owner)>;
  explicit NameClaims(IdOf id_of) : id_of_(std::move(id_of)) {}

  // The owner whose names `id` would collide with (including an identical id), if any;
  // otherwise claims the names for `owner` and returns nullopt.
  std::optional<Owner> Claim(const std::string& id, Owner owner);
  // Like Claim, without claiming: whom `id` would collide with.
  std::optional<Owner> Check(const std::string& id) const;
  // The owner of exactly `id`, if claimed.
  std::optional<Owner> Find(const std::string& id) const;
  void Reserve(std::size_t ids) { ids_.Reserve(ids); }
  void Clear() {
    ids_.Clear();
    extra_of_.Clear();
  }

 private:
  IdOf id_of_;
  NameHashIndex ids_;       // hash of the folded id -> owner
  NameHashIndex extra_of_;  // hash of folded X of an id X-k -> owner
};

// The fingerprint of a JSONL line's bytes (Item::source_fingerprint).
std::uint64_t LineFingerprint(std::string_view line);

// Re-parses one JSONL line as ReadJsonlManifest did (same checks, same derived id); errors go to
// `errors`. For ItemStore's reads on demand.
std::optional<Item> ParseJsonlLine(const std::string& path, std::string_view line, int line_number,
                                   std::uint64_t offset, const ItemDefaults& defaults,
                                   util::InputErrors& errors);

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
