#include "runner/manifest/manifest.h"

#include <algorithm>
#include <utility>

#include "runner/manifest/item_store.h"
#include "runner/util/fnv.h"

namespace nanobatch::manifest {

ManifestFormat FormatOf(const std::string& path) {
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".yaml") || ends_with(".yml") ? ManifestFormat::kYaml : ManifestFormat::kJsonl;
}

namespace {

std::string Fold(std::string_view id) {
  std::string folded(id);
  for (char& c : folded) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return folded;
}

// For an id "X-k" with k in 1..15 (no leading zero): "X"; otherwise empty.
std::string ExtraImageOwner(std::string_view id) {
  const auto dash = id.rfind('-');
  if (dash == std::string_view::npos || dash == 0) return "";
  const std::string_view k = id.substr(dash + 1);
  if (k.empty() || k.size() > 2 || k.front() == '0') return "";
  int value = 0;
  for (char c : k) {
    if (c < '0' || c > '9') return "";
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value >= 16) return "";
  return std::string(id.substr(0, dash));
}

}  // namespace

// FNV-1a, then a finaliser (MurmurHash3's) so that every bit of the 32 kept depends on every byte.
std::uint32_t HashName(std::string_view folded) {
  std::uint64_t h = util::Fnv1a64(folded);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<std::uint32_t>(h);
}

void NameHashIndex::Reserve(std::size_t entries) {
  std::size_t capacity = 64;
  while (capacity * 7 < entries * 10) capacity *= 2;  // load at most 0.7
  if (capacity <= table_.size()) return;
  std::vector<Entry> old;
  old.swap(table_);
  table_.assign(capacity, Entry{});
  used_ = 0;
  for (const Entry& entry : old) {
    if (entry.owner_plus_one != 0) Insert(entry.hash, entry.owner_plus_one - 1);
  }
}

void NameHashIndex::Insert(std::uint32_t hash, std::uint32_t owner) {
  if ((used_ + 1) * 10 > table_.size() * 7) Reserve(std::max<std::size_t>(used_ * 2, 64));
  const std::size_t mask = table_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    if (table_[i].owner_plus_one == 0) {
      table_[i] = Entry{hash, owner + 1};
      ++used_;
      return;
    }
  }
}

std::optional<std::uint32_t> NameHashIndex::Find(
    std::uint32_t hash, const std::function<bool(std::uint32_t)>& confirm) const {
  if (table_.empty()) return std::nullopt;
  const std::size_t mask = table_.size() - 1;
  for (std::size_t i = hash & mask; table_[i].owner_plus_one != 0; i = (i + 1) & mask) {
    if (table_[i].hash == hash && confirm(table_[i].owner_plus_one - 1)) {
      return table_[i].owner_plus_one - 1;
    }
  }
  return std::nullopt;
}

std::optional<NameClaims::Owner> NameClaims::Check(const std::string& id) const {
  const std::string folded = Fold(id);
  // Candidates share a hash; the owner's real id decides.
  if (auto same =
          ids_.Find(HashName(folded), [&](Owner owner) { return Fold(id_of_(owner)) == folded; })) {
    return same;
  }
  // `id` is X and some X-k claimed X's extra names.
  if (auto extra = extra_of_.Find(HashName(folded), [&](Owner owner) {
        return ExtraImageOwner(Fold(id_of_(owner))) == folded;
      })) {
    return extra;
  }
  // `id` is X-k and X exists.
  const std::string owner_name = ExtraImageOwner(folded);
  if (owner_name.empty()) return std::nullopt;
  return ids_.Find(HashName(owner_name),
                   [&](Owner owner) { return Fold(id_of_(owner)) == owner_name; });
}

std::optional<NameClaims::Owner> NameClaims::Claim(const std::string& id, Owner owner) {
  if (auto other = Check(id)) return other;
  const std::string folded = Fold(id);
  const std::string extra_owner = ExtraImageOwner(folded);
  if (!extra_owner.empty()) extra_of_.Insert(HashName(extra_owner), owner);
  ids_.Insert(HashName(folded), owner);
  return std::nullopt;
}

std::optional<NameClaims::Owner> NameClaims::Find(const std::string& id) const {
  return ids_.Find(HashName(Fold(id)), [&](Owner owner) { return id_of_(owner) == id; });
}

ManifestStats ReadManifest(const std::string& path, const ItemDefaults& defaults,
                           const ItemSink& sink, util::InputErrors& errors) {
  ManifestStats stats;
  ItemStore::Open(
      path, defaults, [&](Item&& item, std::uint32_t) { sink(std::move(item)); }, errors, &stats);
  return stats;
}

}  // namespace nanobatch::manifest
