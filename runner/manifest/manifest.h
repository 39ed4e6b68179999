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
#include <string_view>
#include <utility>
#include <vector>

#include "runner/manifest/item.h"
#include "runner/util/huge_pages.h"
#include "runner/util/input_error.h"

namespace nanobatch::manifest {

using ItemSink = std::function<void(Item&&)>;

struct ManifestStats {
  std::size_t items = 0;    // valid items handed to the sink
  std::size_t entries = 0;  // entries written in the file (YAML matrix: and repeat: expand one)
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
// It holds 32-bit hashes of the folded names and the owner's number, not the names: a million
// ids cost tens of megabytes. On a hash match, `id_of` fetches the earlier owner's id (the
// manifest re-reads it) to confirm, so a hash collision is never a false error.
//
// An open-addressing multimap from name hashes to owners: 8 bytes an entry (ten million names in
// about 130 MB, where a node-based map takes 400). An entry is of one of two kinds: a name an
// owner has (its id), or a name whose extra images an owner has (X, for an owner X-k). Both kinds
// share one table so that checking a new id costs one probe sequence, usually one cache miss, for
// both questions (is it taken, does an X-k own its extra names); with a table per kind,
// validation of a large manifest spent a fifth of its time waiting for the second miss.
// Entries with the hash are only candidates: the caller confirms each against the owner's name.
class NameHashIndex {
 public:
  enum class Kind : std::uint32_t { kName = 0, kExtraImagesOf = 1 };

  void Insert(std::uint32_t hash, Kind kind, std::uint32_t owner);
  // The first owner of an entry with `hash` for which `confirm(owner, kind)` holds.
  template <typename Confirm>
  std::optional<std::uint32_t> Find(std::uint32_t hash, Confirm&& confirm) const {
    if (table_.empty()) return std::nullopt;
    const std::size_t mask = table_.size() - 1;
    const std::uint32_t key = hash & ~kKindBit;
    for (std::size_t i = SlotOf(hash, mask); table_[i].owner_plus_one != 0; i = (i + 1) & mask) {
      const Entry& entry = table_[i];
      if ((entry.tagged_hash & ~kKindBit) == key &&
          confirm(entry.owner_plus_one - 1, static_cast<Kind>(entry.tagged_hash & kKindBit))) {
        return entry.owner_plus_one - 1;
      }
    }
    return std::nullopt;
  }
  // Starts loading the first slot Find(hash) and Insert(hash) will probe.
  void Prefetch(std::uint32_t hash) const {
    // (With the mask computed from table_.size() here, GCC 12 drops the prefetch.)
    if (!table_.empty()) __builtin_prefetch(table_.data() + SlotOf(hash, mask_));
  }
  void Reserve(std::size_t entries);
  void Clear() {
    Table().swap(table_);
    used_ = 0;
    mask_ = 0;
  }

 private:
  // The hash's lowest bit carries the kind (31 bits of hash are plenty to keep candidates rare);
  // the slot comes from the other bits, so both kinds of a name land in the same probe sequence.
  static constexpr std::uint32_t kKindBit = 1;
  static std::size_t SlotOf(std::uint32_t hash, std::size_t mask) { return (hash >> 1) & mask; }

  struct Entry {
    std::uint32_t tagged_hash = 0;
    std::uint32_t owner_plus_one = 0;  // 0: empty
  };
  // Huge pages: a table of megabytes is probed at random places, one TLB miss a probe with
  // 4 KiB pages (and growing it took half the page faults of validating a large manifest).
  using Table = std::vector<Entry, util::HugePageAllocator<Entry>>;
  Table table_;
  std::size_t mask_ = 0;  // table_.size() - 1 once the table exists
  std::size_t used_ = 0;
};

class NameClaims {
 public:
  using Owner = std::uint32_t;
  using IdOf = std::function<std::string(Owner)>;
  explicit NameClaims(IdOf id_of) : id_of_(std::move(id_of)) {}

  // The owner whose names `id` would collide with (including an identical id), if any;
  // otherwise claims the names for `owner` and returns nullopt.
  std::optional<Owner> Claim(std::string_view id, Owner owner);
  // Like Claim, without claiming: whom `id` would collide with.
  std::optional<Owner> Check(std::string_view id) const;
  // The owner of exactly `id`, if claimed.
  std::optional<Owner> Find(std::string_view id) const;
  // Starts loading the memory that checking `id` will read; no effect on the claims.
  void Prefetch(std::string_view id) const;
  void Reserve(std::size_t ids) { names_.Reserve(ids); }
  void Clear() { names_.Clear(); }

 private:
  std::optional<Owner> CheckHashed(std::string_view id, std::uint32_t hash) const;

  IdOf id_of_;
  NameHashIndex names_;
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
// `id_read`, when set, hears each explicit id as soon as it is parsed, before the item is
// validated, and each derived id as soon as it is derived, so the caller can start fetching what
// it needs to check the id (ItemStore prefetches its slot in NameClaims: that cache miss was a
// fifth of the time of validating short lines).
using IdReadHook = std::function<void(std::string_view id)>;
ManifestStats ReadJsonlManifest(const std::string& path, const ItemDefaults& defaults,
                                const ItemSink& sink, util::InputErrors& errors,
                                const IdReadHook& id_read = {});
ManifestStats ReadYamlManifest(const std::string& path, const ItemDefaults& defaults,
                               const ItemSink& sink, util::InputErrors& errors);
// ReadYamlManifest on text already read (`path` names it in errors): for fuzzing and callers
// that hold the document.
ManifestStats ReadYamlManifestText(const std::string& path, const std::string& text,
                                   const ItemDefaults& defaults, const ItemSink& sink,
                                   util::InputErrors& errors);

}  // namespace nanobatch::manifest
