#include "runner/manifest/manifest.h"

#include <unordered_map>
#include <utility>

#include "runner/manifest/item_store.h"

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

std::uint64_t HashName(std::string_view folded) { return LineFingerprint(folded); }

std::optional<NameClaims::Owner> NameClaims::Check(const std::string& id) const {
  const std::string folded = Fold(id);
  // Candidates share a hash; the owner's real id decides.
  auto range = ids_.equal_range(HashName(folded));
  for (auto it = range.first; it != range.second; ++it) {
    if (Fold(id_of_(it->second)) == folded) return it->second;
  }
  range = extra_of_.equal_range(HashName(folded));
  for (auto it = range.first; it != range.second; ++it) {
    if (ExtraImageOwner(Fold(id_of_(it->second))) == folded) return it->second;
  }
  const std::string owner = ExtraImageOwner(folded);
  if (!owner.empty()) {
    range = ids_.equal_range(HashName(owner));
    for (auto it = range.first; it != range.second; ++it) {
      if (Fold(id_of_(it->second)) == owner) return it->second;
    }
  }
  return std::nullopt;
}

std::optional<NameClaims::Owner> NameClaims::Claim(const std::string& id, Owner owner) {
  if (auto other = Check(id)) return other;
  const std::string folded = Fold(id);
  const std::string extra_owner = ExtraImageOwner(folded);
  if (!extra_owner.empty()) extra_of_.emplace(HashName(extra_owner), owner);
  ids_.emplace(HashName(folded), owner);
  return std::nullopt;
}

std::optional<NameClaims::Owner> NameClaims::Find(const std::string& id) const {
  auto range = ids_.equal_range(HashName(Fold(id)));
  for (auto it = range.first; it != range.second; ++it) {
    if (id_of_(it->second) == id) return it->second;
  }
  return std::nullopt;
}

ManifestStats ReadManifest(const std::string& path, const ItemDefaults& defaults,
                           const ItemSink& sink, util::InputErrors& errors) {
  ManifestStats stats;
  ItemStore::Open(
      path, defaults, [&](Item&& item, std::uint32_t) { sink(std::move(item)); }, errors, &stats);
  return stats;
}

}  // namespace nanobatch::manifest
