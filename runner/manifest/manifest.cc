#include "runner/manifest/manifest.h"

#include <unordered_map>
#include <utility>

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

std::optional<std::string> NameClaims::Claim(const std::string& id) {
  const std::string folded = Fold(id);
  if (auto it = ids_.find(folded); it != ids_.end() && it->second != id) return it->second;
  if (auto it = extra_of_.find(folded); it != extra_of_.end()) return it->second;
  const std::string owner = ExtraImageOwner(folded);
  if (!owner.empty()) {
    if (auto it = ids_.find(owner); it != ids_.end()) return it->second;
    extra_of_.emplace(owner, id);
  }
  ids_.emplace(folded, id);
  return std::nullopt;
}

ManifestStats ReadManifest(const std::string& path, const ItemDefaults& defaults,
                           const ItemSink& sink, util::InputErrors& errors) {
  // id -> line of its first use.
  std::unordered_map<std::string, int> first_line_of_id;
  NameClaims claims;
  auto unique_sink = [&](Item&& item) {
    auto [it, inserted] = first_line_of_id.emplace(item.id, item.line);
    if (inserted) {
      if (auto other = claims.Claim(item.id)) {
        const std::string where = std::to_string(first_line_of_id.at(*other));
        errors.Add({path, item.line, "id",
                    "\"" + item.id + "\" and \"" + *other + "\" (line " + where +
                        ") would write the same image file name (ids must differ in more than "
                        "case, and an id must not be another id followed by -1 to -15, the "
                        "names of that item's extra images); give one of them another id"});
        return;
      }
      sink(std::move(item));
      return;
    }
    const std::string first = std::to_string(it->second);
    if (item.id_derived) {
      errors.Add({path, item.line, "id",
                  "item is identical to the one at line " + first + " (derived id " + item.id +
                      "); give each an explicit id to generate it more than once"});
    } else {
      errors.Add({path, item.line, "id", "\"" + item.id + "\" is already used at line " + first});
    }
  };
  return FormatOf(path) == ManifestFormat::kYaml
             ? ReadYamlManifest(path, defaults, unique_sink, errors)
             : ReadJsonlManifest(path, defaults, unique_sink, errors);
}

}  // namespace nanobatch::manifest
