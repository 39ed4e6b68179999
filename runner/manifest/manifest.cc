#include "runner/manifest/manifest.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <utility>

#include "runner/manifest/item_store.h"

namespace nanobatch::manifest {

ManifestFormat FormatOf(const std::string& path) {
  // Ignoring case: prompts.YAML is YAML (read as JSONL, it was told to be named .yaml).
  auto ends_with = [&](std::string_view suffix) {
    if (path.size() < suffix.size()) return false;
    const std::string_view tail = std::string_view(path).substr(path.size() - suffix.size());
    return std::equal(tail.begin(), tail.end(), suffix.begin(), [](char a, char b) {
      return std::tolower(static_cast<unsigned char>(a)) == b;
    });
  };
  return ends_with(".yaml") || ends_with(".yml") ? ManifestFormat::kYaml : ManifestFormat::kJsonl;
}

namespace {

char FoldChar(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// For an id "X-k" with k in 1..15 (no leading zero): "X" (a prefix of `id`); otherwise empty.
// Read from the end: every id of a manifest is looked at twice, and most are not X-k.
std::string_view ExtraImageOwner(std::string_view id) {
  const std::size_t n = id.size();
  // k = 1..9: "X-k" with X not empty.
  if (n >= 3 && id[n - 2] == '-' && id[n - 1] >= '1' && id[n - 1] <= '9') {
    return id.substr(0, n - 2);
  }
  // k = 10..15.
  if (n >= 4 && id[n - 3] == '-' && id[n - 2] == '1' && id[n - 1] >= '0' && id[n - 1] <= '5') {
    return id.substr(0, n - 3);
  }
  return {};
}

bool EqualFolded(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (FoldChar(a[i]) != FoldChar(b[i])) return false;
  }
  return true;
}

// ASCII letters of `word` (eight bytes) lowered, the others unchanged: the same as FoldChar on
// each byte, eight at a time (each byte is 'A'..'Z' exactly when adding 0x80 - 'A' to its low
// seven bits carries into the top bit while adding 0x80 - 'Z' - 1 does not, and its own top bit is
// clear).
std::uint64_t FoldWord(std::uint64_t word) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ull;
  constexpr std::uint64_t kTopBits = 0x8080808080808080ull;
  const std::uint64_t low_bits = word & ~kTopBits;
  const std::uint64_t at_least_a = low_bits + kOnes * (0x80 - 'A');
  const std::uint64_t above_z = low_bits + kOnes * (0x80 - 'Z' - 1);
  const std::uint64_t upper = at_least_a & ~above_z & ~word & kTopBits;
  return word | (upper >> 2);  // 0x80 >> 2 is the 0x20 that lowers a letter
}

std::uint64_t Mix(std::uint64_t h) {  // MurmurHash3's finaliser: every output bit from every input
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

std::uint64_t Step(std::uint64_t h, std::uint64_t word) {
  h = (h ^ word) * 0x9fb21c651e98df25ull;
  return h ^ (h >> 29);
}

// A hash of the folded name, eight bytes a step and folded on the fly (no copy of the name). It
// lives only in memory, so it may change between versions.
std::uint32_t HashName(std::string_view name) {
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ name.size();
  std::size_t i = 0;
  for (; i + 8 <= name.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, name.data() + i, sizeof word);
    h = Step(h, FoldWord(word));
  }
  if (i < name.size()) {
    // The last 1-7 bytes as the low bytes of a word, the rest zero (as a copy into a zeroed word
    // would give on this little-endian target), without a copy of variable size: a name of at
    // least eight bytes loads its last eight and shifts out those already hashed.
    static_assert(std::endian::native == std::endian::little);
    const std::size_t rest = name.size() - i;
    std::uint64_t word = 0;
    if (name.size() >= 8) {
      std::memcpy(&word, name.data() + name.size() - 8, sizeof word);
      word >>= 8 * (8 - rest);
    } else {
      for (std::size_t k = 0; k < rest; ++k) {
        word |= static_cast<std::uint64_t>(static_cast<unsigned char>(name[i + k])) << (8 * k);
      }
    }
    h = Step(h, FoldWord(word));
  }
  return static_cast<std::uint32_t>(Mix(h));
}

}  // namespace

void NameHashIndex::Reserve(std::size_t entries) {
  std::size_t capacity = 64;
  while (capacity * 7 < entries * 10) capacity *= 2;  // load at most 0.7
  if (capacity <= table_.size()) return;
  Table old;
  old.swap(table_);
  table_.assign(capacity, Entry{});
  mask_ = capacity - 1;
  used_ = 0;
  for (const Entry& entry : old) {
    if (entry.owner_plus_one != 0) {
      Insert(entry.tagged_hash, static_cast<Kind>(entry.tagged_hash & kKindBit),
             entry.owner_plus_one - 1);
    }
  }
}

void NameHashIndex::Insert(std::uint32_t hash, Kind kind, std::uint32_t owner) {
  if ((used_ + 1) * 10 > table_.size() * 7) Reserve(std::max<std::size_t>(used_ * 2, 64));
  const std::size_t mask = table_.size() - 1;
  for (std::size_t i = SlotOf(hash, mask);; i = (i + 1) & mask) {
    if (table_[i].owner_plus_one == 0) {
      table_[i] = Entry{(hash & ~kKindBit) | static_cast<std::uint32_t>(kind), owner + 1};
      ++used_;
      return;
    }
  }
}

std::optional<NameClaims::Owner> NameClaims::Check(std::string_view id) const {
  return CheckHashed(id, HashName(id));
}

std::optional<NameClaims::Owner> NameClaims::CheckHashed(std::string_view id,
                                                         std::uint32_t hash) const {
  using Kind = NameHashIndex::Kind;
  // One probe answers both: `id` is taken (ignoring case), or some X-k with X = `id` claimed its
  // extra names. Candidates share a hash; the owner's real id decides.
  if (auto taken = names_.Find(hash, [&](Owner owner, Kind kind) {
        const std::string other = id_of_(owner);
        return EqualFolded(kind == Kind::kName ? std::string_view(other) : ExtraImageOwner(other),
                           id);
      })) {
    return taken;
  }
  // `id` is X-k and X exists.
  const std::string_view owner_name = ExtraImageOwner(id);
  if (owner_name.empty()) return std::nullopt;
  return names_.Find(HashName(owner_name), [&](Owner owner, Kind kind) {
    return kind == Kind::kName && EqualFolded(id_of_(owner), owner_name);
  });
}

void NameClaims::Prefetch(std::string_view id) const { names_.Prefetch(HashName(id)); }

std::optional<NameClaims::Owner> NameClaims::Claim(std::string_view id, Owner owner) {
  const std::uint32_t hash = HashName(id);
  if (auto other = CheckHashed(id, hash)) return other;
  const std::string_view extra_owner = ExtraImageOwner(id);
  if (!extra_owner.empty()) {
    names_.Insert(HashName(extra_owner), NameHashIndex::Kind::kExtraImagesOf, owner);
  }
  names_.Insert(hash, NameHashIndex::Kind::kName, owner);
  return std::nullopt;
}

std::optional<NameClaims::Owner> NameClaims::Find(std::string_view id) const {
  return names_.Find(HashName(id), [&](Owner owner, NameHashIndex::Kind kind) {
    return kind == NameHashIndex::Kind::kName && id_of_(owner) == id;
  });
}

ManifestStats ReadManifest(const std::string& path, const ItemDefaults& defaults,
                           const ItemSink& sink, util::InputErrors& errors) {
  ManifestStats stats;
  ItemStore::Open(
      path, defaults, [&](Item&& item, std::uint32_t) { sink(std::move(item)); }, errors, &stats);
  return stats;
}

}  // namespace nanobatch::manifest
