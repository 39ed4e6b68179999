#pragma once
// LoadYamlDocument: a YAML file's one document, refusing what yaml-cpp lets through without a
// word. The config and the YAML manifest are read through it.
//   - A mapping with a key twice. YAML requires keys to be unique; yaml-cpp keeps both, and a
//     reader then takes one of them: a manifest with two `items:` lists ran only the first.
//   - A second document after `---`. YAML::Load reads the first and drops the rest: a manifest's
//     items after it were never validated nor run. (An empty document, such as a trailing
//     `---`, holds nothing and is allowed.)
// The document is parsed once. Documents are told apart in the text (a line starting with
// `---` or `...` is a boundary wherever it appears: YAML forbids one inside a scalar); keys are
// checked on the tree, within a budget of nodes (aliases can make a tree far larger than its
// text: past the budget the rest is left unchecked, as readers give up on such a file).
//
// Example:
//   auto root = LoadYamlDocument("nb.yaml", text, errors);
//   if (!root) return false;  // errors name the line: "nb.yaml:7: limits.rate: appears twice
//                             // in the same mapping (first on line 5)"

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

#include "runner/util/input_error.h"

namespace nanobatch::util {

struct YamlDocumentOptions {
  // Whether a key given twice in one mapping is an error. The config turns it off: its sections
  // merge and a later key wins, as a later flag does (a base config and its overrides can be
  // concatenated), so nothing in it is dropped unseen.
  bool unique_keys = true;
};

// The document of `text` (a null node when it is empty), or nullopt with every problem added to
// `errors` under `path` (invalid YAML, duplicate keys, a second document).
std::optional<YAML::Node> LoadYamlDocument(const std::string& path, const std::string& text,
                                           InputErrors& errors, YamlDocumentOptions options = {});

}  // namespace nanobatch::util
