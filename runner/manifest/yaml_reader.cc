// YAML manifests: a list of items, or a mapping with `defaults:` and `items:`. yaml-cpp loads
// the whole document (YAML manifests are the hand-written, small kind; large batches use
// JSONL), and its exceptions are converted to InputErrors here, where the library is called.

#include <yaml-cpp/yaml.h>

#include <utility>
#include <vector>

#include "runner/manifest/manifest.h"
#include "runner/util/input_file.h"
#include "runner/util/yaml_names.h"

namespace nanobatch::manifest {
namespace {

int LineOf(const YAML::Node& node) { return node.Mark().line + 1; }

class YamlItemReader {
 public:
  YamlItemReader(const std::string& path, util::InputErrors& errors)
      : path_(path), errors_(errors) {}

  void Fail(int line, std::string field, std::string message) {
    errors_.Add({path_, line, std::move(field), std::move(message)});
  }

  std::optional<std::string> ReadScalar(const YAML::Node& value, const std::string& field) {
    if (!value.IsScalar()) {
      Fail(LineOf(value), field, "must be a string, not " + std::string(util::YamlKindName(value)));
      return std::nullopt;
    }
    return value.Scalar();
  }

  // The manifest-level `defaults:` mapping: only the per-item API parameters may be set there.
  bool ReadDefaults(const YAML::Node& node, ItemDefaults& defaults) {
    if (!node.IsMap()) {
      Fail(LineOf(node), "defaults",
           "must be a mapping, not " + std::string(util::YamlKindName(node)));
      return false;
    }
    bool ok = true;
    for (const auto& entry : node) {
      const std::string key = entry.first.Scalar();
      const std::string field = "defaults." + key;
      std::string* target = key == "resolution"      ? &defaults.resolution
                            : key == "aspect_ratio"  ? &defaults.aspect_ratio
                            : key == "output_format" ? &defaults.output_format
                                                     : nullptr;
      if (target == nullptr) {
        Fail(LineOf(entry.first), field,
             "unknown key (allowed: resolution aspect_ratio output_format)");
        ok = false;
        continue;
      }
      std::optional<std::string> value = ReadScalar(entry.second, field);
      if (!value) {
        ok = false;
        continue;
      }
      auto problem = key == "resolution"     ? CheckResolution(*value)
                     : key == "aspect_ratio" ? CheckAspectRatio(*value)
                                             : CheckOutputFormat(*value);
      if (problem) {
        Fail(LineOf(entry.second), field, *problem);
        ok = false;
        continue;
      }
      *target = std::move(*value);
    }
    return ok;
  }

  void ReadItem(const YAML::Node& node, const ItemDefaults& defaults, const ItemSink& sink,
                std::size_t& items) {
    const int line = LineOf(node);
    if (!node.IsMap()) {
      Fail(line, "-", "an item must be a mapping, not " + std::string(util::YamlKindName(node)));
      return;
    }
    RawItem raw;
    bool ok = true;
    std::vector<std::string> seen_keys;
    for (const auto& entry : node) {
      const int key_line = LineOf(entry.first);
      if (!entry.first.IsScalar()) {
        Fail(key_line, "-", "a key must be a string");
        ok = false;
        continue;
      }
      const std::string key = entry.first.Scalar();
      if (!IsItemKey(key)) {
        Fail(key_line, key, "unknown key (allowed: " + ItemKeysForMessage() + ")");
        ok = false;
        continue;
      }
      for (const std::string& seen : seen_keys) {
        if (seen == key) {
          Fail(key_line, key, "appears twice in the same item");
          ok = false;
        }
      }
      seen_keys.push_back(key);
      const YAML::Node& value = entry.second;
      if (key == "image_urls") {
        if (!value.IsSequence()) {
          Fail(LineOf(value), key,
               "must be a list of strings, not " + std::string(util::YamlKindName(value)));
          ok = false;
          continue;
        }
        std::vector<std::string> urls;
        for (std::size_t i = 0; i < value.size(); ++i) {
          auto url = ReadScalar(value[i], key + "[" + std::to_string(i) + "]");
          if (url)
            urls.push_back(std::move(*url));
          else
            ok = false;
        }
        raw.image_urls = std::move(urls);
        continue;
      }
      std::optional<std::string> text = ReadScalar(value, key);
      if (!text) {
        ok = false;
        continue;
      }
      std::optional<std::string>& target = key == "id"             ? raw.id
                                           : key == "prompt"       ? raw.prompt
                                           : key == "resolution"   ? raw.resolution
                                           : key == "aspect_ratio" ? raw.aspect_ratio
                                                                   : raw.output_format;
      target = std::move(text);
    }
    if (!ok) return;
    if (auto item = ValidateItem(std::move(raw), defaults, {path_, line}, errors_)) {
      ++items;
      sink(std::move(*item));
    }
  }

 private:
  const std::string& path_;
  util::InputErrors& errors_;
};

}  // namespace

ManifestStats ReadYamlManifest(const std::string& path, const ItemDefaults& config_defaults,
                               const ItemSink& sink, util::InputErrors& errors) {
  ManifestStats stats;
  std::string text, error;
  util::InputFileProblem problem;
  if (!util::ReadInputFile(path, kMaxYamlManifestBytes, text, error, &problem)) {
    const bool too_large = problem == util::InputFileProblem::kTooLarge;
    errors.Add({path, 0, "-", error + (too_large ? " (large batches belong in JSONL)" : "")});
    return stats;
  }
  return ReadYamlManifestText(path, text, config_defaults, sink, errors);
}

ManifestStats ReadYamlManifestText(const std::string& path, const std::string& text,
                                   const ItemDefaults& config_defaults, const ItemSink& sink,
                                   util::InputErrors& errors) {
  ManifestStats stats;
  stats.bytes = text.size();
  for (char c : text) stats.lines += c == '\n';

  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    errors.Add({path, e.mark.line + 1, "-", "invalid YAML: " + e.msg});
    return stats;
  }

  YamlItemReader reader(path, errors);
  ItemDefaults defaults = config_defaults;
  YAML::Node items;
  if (root.IsSequence()) {
    items = root;
  } else if (root.IsMap()) {
    for (const auto& entry : root) {
      const std::string key = entry.first.Scalar();
      if (key != "defaults" && key != "items") {
        reader.Fail(LineOf(entry.first), key, "unknown top-level key (allowed: defaults items)");
      }
    }
    if (root["defaults"] && !reader.ReadDefaults(root["defaults"], defaults)) return stats;
    items = root["items"];
    if (!items) {
      reader.Fail(LineOf(root), "items", "is required when the manifest is a mapping");
      return stats;
    }
    if (!items.IsSequence()) {
      reader.Fail(LineOf(items), "items",
                  "must be a list, not " + std::string(util::YamlKindName(items)));
      return stats;
    }
  } else if (root.IsNull()) {
    return stats;  // an empty file: zero items, which is valid
  } else {
    reader.Fail(LineOf(root), "-",
                "a YAML manifest must be a list of items or a mapping with defaults: and items:");
    return stats;
  }

  // yaml-cpp reports errors while iterating too (for example on a bad anchor); keep them tied to
  // the file rather than letting them escape.
  try {
    for (const auto& node : items) reader.ReadItem(node, defaults, sink, stats.items);
  } catch (const YAML::Exception& e) {
    errors.Add({path, e.mark.line + 1, "-", "invalid YAML: " + e.msg});
  }
  return stats;
}

}  // namespace nanobatch::manifest
