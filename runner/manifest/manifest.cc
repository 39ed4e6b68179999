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

ManifestStats ReadManifest(const std::string& path, const ItemDefaults& defaults,
                           const ItemSink& sink, util::InputErrors& errors) {
  // id -> line of its first use.
  std::unordered_map<std::string, int> first_line_of_id;
  auto unique_sink = [&](Item&& item) {
    auto [it, inserted] = first_line_of_id.emplace(item.id, item.line);
    if (inserted) {
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
