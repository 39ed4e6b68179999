#pragma once
// ItemStore: a validated manifest held as compact records (where each item's line is in the
// file, and a fingerprint of its bytes) instead of copies of every prompt, so that a
// 1,000,000-item manifest costs tens of megabytes, not hundreds. An item is read again (one
// pread, one parse) when its lifecycle needs it; a line whose bytes changed since validation is
// an error, never a different image paid for. YAML manifests (at most 64 MiB, parsed whole by
// yaml-cpp anyway) are kept in memory.
//
// Opening reads and validates the whole file first (every error collected, ids unique as
// NameClaims requires), so nothing is spent on a bad manifest.
//
// Example:
//   auto store = ItemStore::Open(path, defaults, [&](Item&& item, std::uint32_t i) {...}, errors);
//   if (!errors.empty()) return 2;
//   std::string error;
//   std::optional<Item> item = store->Load(17, error);

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runner/manifest/item.h"
#include "runner/manifest/manifest.h"
#include "runner/util/input_error.h"
#include "runner/util/input_file.h"

namespace nanobatch::manifest {

class ItemStore {
 public:
  using Visit = std::function<void(Item&&, std::uint32_t index)>;

  // Reads and validates `path`; `visit` sees each valid item once, in file order, with its
  // index. The store is usable only when `errors` is empty afterwards.
  static std::unique_ptr<ItemStore> Open(const std::string& path, const ItemDefaults& defaults,
                                         const Visit& visit, util::InputErrors& errors,
                                         ManifestStats* stats = nullptr);

  std::uint32_t size() const { return static_cast<std::uint32_t>(records_.size()); }
  const std::string& path() const { return path_; }
  int line(std::uint32_t index) const { return records_[index].line; }
  // The item at `index`, read again; nullopt with `error` when its line changed on disk.
  std::optional<Item> Load(std::uint32_t index, std::string& error) const;
  // The index of the item whose id is exactly `id`.
  std::optional<std::uint32_t> Find(const std::string& id) const { return claims_.Find(id); }
  // The item whose image names `id` (an item of an earlier run) would collide with.
  std::optional<std::uint32_t> Clash(const std::string& id) const { return claims_.Check(id); }
  // Frees the name index once validation and planning are over (tens of megabytes for a
  // million ids); Find and Clash find nothing afterwards.
  void ReleaseNameIndex() { claims_.Clear(); }

 private:
  ItemStore(std::string path, ItemDefaults defaults);
  // The id of item `index` (for NameClaims on a hash match); empty if it cannot be read.
  std::string IdOf(std::uint32_t index) const;

  struct Record {
    std::uint64_t offset = 0;
    std::uint64_t fingerprint = 0;
    std::uint32_t length = 0;
    std::int32_t line = 0;
  };
  std::string path_;
  ItemDefaults defaults_;
  util::UniqueFd file_;
  std::deque<Record> records_;   // grows in blocks: ten million items, no doubling copy
  std::vector<Item> in_memory_;  // YAML manifests only
  NameClaims claims_;
};

}  // namespace nanobatch::manifest
