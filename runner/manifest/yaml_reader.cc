// YAML manifests: a list of items, or a mapping with `defaults:` and `items:` (and `x-NAME:` keys
// of the file's own, for anchors). yaml-cpp loads the whole document (YAML manifests are the
// hand-written, small kind; large batches use JSONL), and its exceptions are converted to
// InputErrors here, where the library is called.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runner/manifest/manifest.h"
#include "runner/manifest/meta_columns.h"
#include "runner/manifest/prompt_template.h"
#include "runner/util/did_you_mean.h"
#include "runner/util/input_file.h"
#include "runner/util/sha256.h"
#include "runner/util/yaml_document.h"
#include "runner/util/yaml_names.h"

namespace nanobatch::manifest {
namespace {

int LineOf(const YAML::Node& node) { return node.Mark().line + 1; }

// YAML's merge key: `<<: *base` (or a list of such mappings) gives a mapping the keys it does
// not set itself; of several merged mappings the first to set a key wins (YAML 1.1's rule).
// yaml-cpp 0.7 reads `<<` as a plain key, so items and defaults written with it are expanded here
// (a quoted '<<' stays a plain key), into a list of the document's own key and value nodes: an
// error about a value's form names the line it is written on. (Not into a new YAML::Node:
// inserting the document's nodes into one merges the whole document's node set into it, for
// every item.)
using Entries = std::vector<std::pair<YAML::Node, YAML::Node>>;
constexpr int kMaxMergeDepth = 16;  // merged mappings that merge others, and so on
// Keys an item's merges may copy: aliases make a short text name a mapping many times over
// (`<<: [*a, *a, ...]` where *a merges a list of *b, ...), a billion laughs through `<<`. The
// reader also holds a budget for the whole document (YamlItemReader::merge_budget_).
constexpr std::size_t kMaxMergedKeys = 1024;

// `<<` as a key, not quoted (a quoted '<<' is a plain key).
bool IsMergeKey(const YAML::Node& key) {
  return key.IsScalar() && key.Scalar() == "<<" && key.Tag() != "!";
}

// Appends `mapping`'s entries, merges expanded, to `out`. On a merge value that is no mapping,
// or past the depth or the budget, returns the node to blame.
std::optional<YAML::Node> ExpandMergeKeys(const YAML::Node& mapping, Entries& out,
                                          std::size_t& budget, int depth = 0) {
  const std::size_t first = out.size();
  auto taken = [&](const YAML::Node& key) {
    if (!key.IsScalar()) return false;
    for (std::size_t i = first; i < out.size(); ++i) {
      if (out[i].first.IsScalar() && out[i].first.Scalar() == key.Scalar()) return true;
    }
    return false;
  };
  std::vector<YAML::Node> merged;
  for (const auto& entry : mapping) {
    if (IsMergeKey(entry.first)) {
      const YAML::Node& value = entry.second;
      if (value.IsMap()) {
        merged.push_back(value);
      } else if (value.IsSequence()) {
        for (const YAML::Node& element : value) {
          if (!element.IsMap()) return element;
          merged.push_back(element);
        }
      } else {
        return value;
      }
      continue;
    }
    out.emplace_back(entry.first, entry.second);
  }
  for (const YAML::Node& source : merged) {
    if (depth >= kMaxMergeDepth || source.size() > budget) return source;
    budget -= source.size();
    Entries expanded;
    if (auto bad = ExpandMergeKeys(source, expanded, budget, depth + 1)) return bad;
    for (auto& entry : expanded) {
      if (!taken(entry.first)) out.push_back(std::move(entry));
    }
  }
  return std::nullopt;
}

// Bounds of one entry's expansion: a hand-written YAML file should not turn into millions of
// paid items by a slip of the keyboard (large batches belong in JSONL).
constexpr unsigned kMaxRepeat = 10000;
constexpr std::uint64_t kMaxExpandedItems = 100000;
// One mistake in a template repeats in every item it makes: a few are enough to show it.
constexpr std::size_t kMaxExpansionErrors = 10;

class YamlItemReader {
 public:
  // `text_bytes`: the document's size, which bounds what merge keys may copy in all.
  YamlItemReader(const std::string& path, util::InputErrors& errors, std::size_t text_bytes)
      : path_(path), errors_(errors), merge_budget_(4 * text_bytes + kMaxMergedKeys) {}

  void Fail(int line, std::string field, std::string message) {
    errors_.Add({path_, line, std::move(field), std::move(message)});
  }

  // `mapping`'s entries with its merge keys expanded, within the budgets; nullopt after an
  // error naming `field` (written at `line`).
  std::optional<Entries> ExpandMapping(const YAML::Node& mapping, int line,
                                       const std::string& field) {
    // A mapping without a merge key spends none of the budget.
    Entries entries;
    std::size_t budget = std::min(kMaxMergedKeys, merge_budget_);
    const std::size_t before = budget;
    const auto bad = ExpandMergeKeys(mapping, entries, budget);
    merge_budget_ -= before - budget;
    if (bad) {
      Fail(bad->IsMap() ? line : LineOf(*bad), field,
           bad->IsMap() ? "merges nested more than " + std::to_string(kMaxMergeDepth) +
                              " deep or copying more than " + std::to_string(kMaxMergedKeys) +
                              " keys (or, in the whole file, more than a few per byte of it)"
                        : "a merge key takes a mapping or a list of mappings, not " +
                              std::string(util::YamlKindName(*bad)));
      return std::nullopt;
    }
    return entries;
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
    const std::optional<Entries> entries = ExpandMapping(node, LineOf(node), "defaults.<<");
    if (!entries) return false;
    bool ok = true;
    for (const auto& entry : *entries) {
      const std::string key = entry.first.Scalar();
      const std::string field = "defaults." + key;
      std::string* target = key == "resolution"      ? &defaults.resolution
                            : key == "aspect_ratio"  ? &defaults.aspect_ratio
                            : key == "output_format" ? &defaults.output_format
                                                     : nullptr;
      if (target == nullptr) {
        static constexpr std::array<std::string_view, 3> kDefaultKeys = {
            "resolution", "aspect_ratio", "output_format"};
        Fail(LineOf(entry.first), field,
             "unknown key (allowed: resolution aspect_ratio output_format)" +
                 util::DidYouMeanSuffix(key, kDefaultKeys));
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

  // `meta:`: the item's own columns (MetaColumns).
  bool ReadMeta(const YAML::Node& node, MetaColumns& meta) {
    if (!node.IsMap()) {
      Fail(LineOf(node), "meta",
           "must be a mapping of columns, not " + std::string(util::YamlKindName(node)));
      return false;
    }
    bool ok = true;
    for (const auto& column : node) {
      const std::string name = column.first.IsScalar() ? column.first.Scalar() : "";
      const YAML::Node& value = column.second;
      std::optional<std::string> problem;
      if (!column.first.IsScalar()) {
        problem = "a column name must be a string";
      } else if (value.IsNull()) {
        problem = meta.AddNull(name);
      } else if (!value.IsScalar()) {
        problem = "must be a string, number, boolean or null, not " +
                  std::string(util::YamlKindName(value));
      } else {
        // yaml-cpp tags a quoted scalar "!" and a plain one "?".
        problem = meta.AddYamlScalar(name, value.Scalar(), value.Tag() == "!");
      }
      if (problem) {
        Fail(LineOf(column.first), "meta." + name, *problem);
        ok = false;
      }
    }
    return ok;
  }

  // `repeat: N`: N items from this one, ids suffixed .r1 .. .rN.
  std::optional<unsigned> ReadRepeat(const YAML::Node& value) {
    const std::optional<std::string> text = ReadScalar(value, "repeat");
    if (!text) return std::nullopt;
    unsigned count = 0;
    bool digits = !text->empty() && text->size() <= 6;
    for (char c : *text) digits = digits && c >= '0' && c <= '9';
    if (digits) count = static_cast<unsigned>(std::stoul(*text));
    if (!digits || count < 1 || count > kMaxRepeat) {
      Fail(LineOf(value), "repeat",
           "must be a whole number from 1 to " + std::to_string(kMaxRepeat) + ", not \"" + *text +
               "\"");
      return std::nullopt;
    }
    return count;
  }

  void ReadItem(const YAML::Node& written, const ItemDefaults& defaults, const ItemSink& sink,
                std::size_t& items) {
    const int line = LineOf(written);
    if (!written.IsMap()) {
      Fail(line, "-", "an item must be a mapping, not " + std::string(util::YamlKindName(written)));
      return;
    }
    // The item's keys and values: its own nodes, and those its merge keys bring in.
    const std::optional<Entries> expanded = ExpandMapping(written, line, "<<");
    if (!expanded) return;
    const Entries& entries = *expanded;
    RawItem raw;
    MetaColumns meta;
    std::optional<unsigned> repeat;
    // Absent unless the item has `matrix:` (a default YAML::Node is a defined null, and tested
    // true: every item was once read as a template, its prompt's braces as axes).
    std::optional<YAML::Node> matrix;
    int prompt_line = line;
    // Where each of the item's own values is written, for the errors ValidateItem finds in it (an
    // item's keys can span many lines; the item's own line is only where it starts). A value
    // merged in from elsewhere keeps the item's line: its own would name the anchor's item, the
    // same words for every item that merges it.
    std::set<int> own_keys;  // by their position in the text
    for (const auto& entry : written) own_keys.insert(entry.first.Mark().pos);
    ValueLines value_lines;
    auto note_line = [&](const YAML::Node& key_node, const std::string& field, int value_line) {
      if (own_keys.contains(key_node.Mark().pos)) value_lines[field] = value_line;
    };
    bool ok = true;
    for (const auto& entry : entries) {
      const int key_line = LineOf(entry.first);
      if (!entry.first.IsScalar()) {
        Fail(key_line, "-", "a key must be a string");
        ok = false;
        continue;
      }
      const std::string key = entry.first.Scalar();
      const bool expansion_key = key == "repeat" || key == "matrix";
      if (!IsItemKey(key) && !expansion_key) {
        static const std::vector<std::string_view> kKeys = [] {
          std::vector<std::string_view> keys(ItemKeyNames().begin(), ItemKeyNames().end());
          keys.insert(keys.end(), {"matrix", "repeat"});
          return keys;
        }();
        Fail(key_line, key,
             "unknown key (allowed: " + ItemKeysForMessage() + " matrix repeat)" +
                 util::DidYouMeanSuffix(key, kKeys));
        ok = false;
        continue;
      }
      const YAML::Node& value = entry.second;
      if (key == "repeat") {
        repeat = ReadRepeat(value);
        ok = ok && repeat.has_value();
        continue;
      }
      if (key == "matrix") {
        if (!value.IsMap() || value.size() == 0) {
          Fail(LineOf(value), key,
               "must be a mapping of axes to lists of values, not " +
                   std::string(util::YamlKindName(value)));
          ok = false;
        }
        matrix = value;
        continue;
      }
      if (key == "meta") {
        ok = ReadMeta(value, meta) && ok;
        continue;
      }
      if (key == "image_urls") {
        if (!value.IsSequence()) {
          Fail(LineOf(value), key,
               "must be a list of strings, not " + std::string(util::YamlKindName(value)));
          ok = false;
          continue;
        }
        std::vector<std::string> urls;
        for (std::size_t i = 0; i < value.size(); ++i) {
          const std::string field = key + "[" + std::to_string(i) + "]";
          note_line(entry.first, field, LineOf(value[i]));
          auto url = ReadScalar(value[i], field);
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
      if (key == "prompt") prompt_line = LineOf(value);
      note_line(entry.first, key, LineOf(value));
      std::optional<std::string>& target = key == "id"             ? raw.id
                                           : key == "prompt"       ? raw.prompt
                                           : key == "resolution"   ? raw.resolution
                                           : key == "aspect_ratio" ? raw.aspect_ratio
                                                                   : raw.output_format;
      target = std::move(text);
    }
    if (!ok) return;
    if (!matrix && !repeat) {
      raw.meta_json = meta.Take();
      if (auto item = ValidateNamingLines(std::move(raw), defaults, line, value_lines)) {
        ++items;
        sink(std::move(*item));
      }
      return;
    }
    Expand(std::move(raw), meta, matrix ? &*matrix : nullptr, repeat.value_or(0), line, prompt_line,
           value_lines, defaults, sink, items);
  }

 private:
  // Where an item's own values are written, by field ("resolution", "image_urls[1]").
  using ValueLines = std::map<std::string, int, std::less<>>;

  // ValidateItem, each error named by the line of the value it is about where the item wrote
  // that value, else by the item's line.
  std::optional<Item> ValidateNamingLines(RawItem&& raw, const ItemDefaults& defaults, int line,
                                          const ValueLines& value_lines) {
    util::InputErrors found;
    auto item = ValidateItem(std::move(raw), defaults, {path_, line}, found);
    for (util::InputError error : found.stored()) {
      if (auto at = value_lines.find(error.field); at != value_lines.end()) {
        error.line = at->second;
      }
      errors_.Add(std::move(error));
    }
    return item;
  }

  struct Axis {
    std::string name;
    std::optional<ItemKey> key;  // an axis named like an item key sets that key
    std::vector<std::string> values;
  };

  // The matrix's axes, checked: names, values, and that each is used (in the prompt, or as an
  // item key); nullopt after reporting every problem.
  std::optional<std::vector<Axis>> ReadAxes(const YAML::Node& matrix, const RawItem& raw,
                                            const MetaColumns& meta) {
    std::vector<Axis> axes;
    bool ok = true;
    for (const auto& entry : matrix) {
      const int axis_line = LineOf(entry.first);
      Axis axis;
      axis.name = entry.first.IsScalar() ? entry.first.Scalar() : "";
      const std::string field = "matrix." + axis.name;
      const int index = ItemKeyIndex(axis.name);
      if (index >= 0) {
        const auto key = static_cast<ItemKey>(index);
        const bool settable = key == ItemKey::kResolution || key == ItemKey::kAspectRatio ||
                              key == ItemKey::kOutputFormat;
        const bool also_set = (key == ItemKey::kResolution && raw.resolution) ||
                              (key == ItemKey::kAspectRatio && raw.aspect_ratio) ||
                              (key == ItemKey::kOutputFormat && raw.output_format);
        if (!settable) {
          Fail(axis_line, field,
               "an axis may set resolution, aspect_ratio or output_format, not " + axis.name);
          ok = false;
          continue;
        }
        if (also_set) {
          Fail(axis_line, field, "the item sets " + axis.name + " too; set it in one place");
          ok = false;
          continue;
        }
        axis.key = key;
      } else {
        // A placeholder axis also becomes a column of metadata.jsonl: its name must be one.
        MetaColumns probe = meta;
        if (auto problem = probe.AddString(axis.name, "")) {
          Fail(axis_line, field, "as a column: " + *problem);
          ok = false;
          continue;
        }
      }
      const YAML::Node& values = entry.second;
      if (!values.IsSequence() || values.size() == 0) {
        Fail(LineOf(values), field,
             "must be a non-empty list of values, not " +
                 std::string(values.IsSequence() ? "an empty list" : util::YamlKindName(values)));
        ok = false;
        continue;
      }
      for (std::size_t i = 0; i < values.size(); ++i) {
        const std::string value_field = field + "[" + std::to_string(i) + "]";
        auto value = ReadScalar(values[i], value_field);
        if (!value) {
          ok = false;
          continue;
        }
        std::optional<std::string> problem;
        if (axis.key == ItemKey::kResolution) problem = CheckResolution(*value);
        if (axis.key == ItemKey::kAspectRatio) problem = CheckAspectRatio(*value);
        if (axis.key == ItemKey::kOutputFormat) problem = CheckOutputFormat(*value);
        for (const std::string& earlier : axis.values) {
          if (earlier == *value) problem = "\"" + *value + "\" is listed twice";
        }
        if (problem) {
          Fail(LineOf(values[i]), value_field, *problem);
          ok = false;
          continue;
        }
        axis.values.push_back(std::move(*value));
      }
      axes.push_back(std::move(axis));
    }
    if (!ok) return std::nullopt;
    return axes;
  }

  // `matrix:` and/or `repeat:`: one item per combination of axis values (the last axis varying
  // fastest), each `repeat` times. Ids: the item's id (or the id derived from its template and
  // fixed parameters), then `.<value>` per axis, then `.r<k>`: stable whatever else the file
  // holds, and readable in file names.
  // `matrix` is null for an item with `repeat:` alone.
  void Expand(RawItem raw, const MetaColumns& meta, const YAML::Node* matrix, unsigned repeat,
              int line, int prompt_line, const ValueLines& value_lines,
              const ItemDefaults& defaults, const ItemSink& sink, std::size_t& items) {
    std::vector<Axis> axes;
    if (matrix != nullptr) {
      auto read = ReadAxes(*matrix, raw, meta);
      if (!read) return;
      axes = std::move(*read);
    }
    std::optional<PromptTemplate> prompt_template;
    if (matrix != nullptr) {
      if (!raw.prompt) {
        Fail(line, "prompt", "is required (the matrix's template)");
        return;
      }
      std::vector<std::string> names;
      names.reserve(axes.size());
      for (const Axis& axis : axes) names.push_back(axis.name);
      std::string problem;
      prompt_template = PromptTemplate::Parse(*raw.prompt, names, problem);
      if (!prompt_template) {
        Fail(prompt_line, "prompt", problem);
        return;
      }
      bool used = true;
      for (std::size_t a = 0; a < axes.size(); ++a) {
        if (!axes[a].key && !prompt_template->Uses(a)) {
          Fail(prompt_line, "prompt",
               "does not use the axis {" + axes[a].name +
                   "}: its items would be identical (use repeat: for variations)");
          used = false;
        }
      }
      if (!used) return;
    }
    std::uint64_t count = std::max(repeat, 1u);
    for (const Axis& axis : axes) {
      count *= axis.values.size();
      if (count > kMaxExpandedItems) {
        Fail(line, matrix != nullptr ? "matrix" : "repeat",
             "expands to more than " + std::to_string(kMaxExpandedItems) +
                 " items; split it, or use a JSONL manifest");
        return;
      }
    }
    // The entry as written, checked once: its own problems are reported once, not once per
    // expansion, each on its value's line. The base of every id is the entry's own id, or the one
    // derived from the entry as written.
    std::string base;
    {
      RawItem as_written = raw;
      as_written.meta_json.clear();
      util::InputErrors quiet;
      auto item = ValidateItem(std::move(as_written), defaults, {path_, line}, quiet);
      if (!item) {
        ValidateNamingLines(std::move(raw), defaults, line, value_lines);
        return;
      }
      base = item->id;
    }

    const std::size_t errors_before = errors_.total();
    std::vector<std::size_t> at(axes.size(), 0);
    std::vector<std::string_view> values(axes.size());
    while (true) {
      MetaColumns columns = meta;
      std::string id = base;
      RawItem expanded = raw;
      for (std::size_t a = 0; a < axes.size(); ++a) {
        const std::string& value = axes[a].values[at[a]];
        values[a] = value;
        id += '.';
        id += IdPart(value, axes[a].key == ItemKey::kAspectRatio);
        if (axes[a].key == ItemKey::kResolution) expanded.resolution = value;
        if (axes[a].key == ItemKey::kAspectRatio) expanded.aspect_ratio = value;
        if (axes[a].key == ItemKey::kOutputFormat) expanded.output_format = value;
        if (!axes[a].key) (void)columns.AddString(axes[a].name, value);  // checked in ReadAxes
      }
      if (prompt_template) expanded.prompt = prompt_template->Render(values);
      expanded.meta_json = columns.Take();
      for (unsigned k = 1; k <= std::max(repeat, 1u); ++k) {
        RawItem one = expanded;  // a copy each: hand-written YAML, small items
        one.id = repeat > 0 ? id + ".r" + std::to_string(k) : id;
        if (auto item = ValidateItem(std::move(one), defaults, {path_, line}, errors_)) {
          ++items;
          sink(std::move(*item));
        }
        if (errors_.total() - errors_before >= kMaxExpansionErrors) {
          Fail(line, matrix != nullptr ? "matrix" : "repeat",
               "stopped expanding this entry after " + std::to_string(kMaxExpansionErrors) +
                   " errors in its items");
          return;
        }
      }
      // The next combination: the last axis fastest.
      std::size_t a = axes.size();
      while (a > 0 && ++at[a - 1] == axes[a - 1].values.size()) at[--a] = 0;
      if (a == 0) return;
    }
  }

  // An axis value as part of an id: as written when it is a plain name of at most 32 of
  // [A-Za-z0-9_-]; otherwise its characters outside that set become '_' (':' in an aspect ratio
  // becomes 'x': 16x9), cut to 24, followed by 6 hex digits of its SHA-256 so that two values
  // never share a part.
  static std::string IdPart(const std::string& value, bool aspect_ratio) {
    auto plain = [](char c) {
      return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    };
    bool as_is = !value.empty() && value.size() <= 32;
    for (char c : value) as_is = as_is && plain(c);
    if (as_is) return value;
    if (aspect_ratio) {
      std::string part = value;
      for (char& c : part) c = c == ':' ? 'x' : c;  // valid ratios are digits and one ':'
      return part;
    }
    std::string part;
    for (char c : value) {
      if (part.size() >= 24) break;
      const char mapped = plain(c) ? c : '_';
      if (mapped == '_' && !part.empty() && part.back() == '_') continue;
      part += mapped;
    }
    return part + "_" + util::Sha256::HexOf(value).substr(0, 6);
  }

  const std::string& path_;
  util::InputErrors& errors_;
  std::size_t merge_budget_;
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
  if (!text.empty() && text.back() != '\n') ++stats.lines;  // a last line without its newline

  const std::optional<YAML::Node> document = util::LoadYamlDocument(path, text, errors);
  if (!document) return stats;
  YAML::Node root = *document;  // not const: a missing key reads as an undefined node, not a throw

  YamlItemReader reader(path, errors, text.size());
  ItemDefaults defaults = config_defaults;
  YAML::Node items;
  if (root.IsSequence()) {
    items = root;
  } else if (root.IsMap()) {
    for (const auto& entry : root) {
      // `x-NAME:` keys are the file's own (as in Docker Compose): a place for anchors that
      // items and defaults merge (`x-base: &base {...}`, then `<<: *base`).
      const std::string key = entry.first.Scalar();
      if (key != "defaults" && key != "items" && !key.starts_with("x-")) {
        static constexpr std::array<std::string_view, 2> kTopKeys = {"defaults", "items"};
        std::string hint = util::DidYouMeanSuffix(key, kTopKeys);
        if (key == "resolution" || key == "aspect_ratio" || key == "output_format") {
          hint = " (it belongs under defaults:, for every item)";
        } else if (hint.empty() && IsItemKey(key)) {
          hint = " (an item's key belongs in an item of items:)";
        }
        reader.Fail(
            LineOf(entry.first), key,
            "unknown top-level key (allowed: defaults, items, and x-NAME for anchors)" + hint);
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
    for (const auto& node : items) {
      ++stats.entries;
      reader.ReadItem(node, defaults, sink, stats.items);
    }
  } catch (const YAML::Exception& e) {
    errors.Add({path, e.mark.line + 1, "-", "invalid YAML: " + e.msg});
  }
  return stats;
}

}  // namespace nanobatch::manifest
