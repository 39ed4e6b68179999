#include "runner/util/yaml_document.h"

#include <yaml-cpp/depthguard.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nanobatch::util {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Whether `rest` (what follows a document marker on its line, or a whole line) holds YAML
// content: anything but blanks and a comment.
bool HoldsContent(std::string_view rest) {
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '#') return false;
    if (!IsSpace(rest[i])) return true;
  }
  return false;
}

// The 1-based line of the second document that holds anything, or 0 when there is none. A
// document boundary is a line starting with `---` or `...` followed by a blank or the end of the
// line: YAML forbids such a line inside any scalar, so it is one wherever it appears. Directives
// (`%YAML 1.2`) and comments are not content; an empty document (a trailing `---`) is allowed.
int SecondDocumentLine(std::string_view text) {
  int documents_with_content = 0;
  bool current_has_content = false;
  int current_start = 1;
  int line_number = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    const std::string_view line = text.substr(at, end - at);
    ++line_number;
    const bool marker = (line.starts_with("---") || line.starts_with("...")) &&
                        (line.size() == 3 || IsSpace(line[3]));
    std::string_view content = line;
    if (marker) {
      current_has_content = false;
      current_start = line_number;
      content = line.substr(3);
    } else if (line.starts_with("%")) {
      content = {};  // a directive, for the document that follows
    }
    if (!current_has_content && HoldsContent(content)) {
      current_has_content = true;
      if (++documents_with_content == 2) return current_start;
    }
    at = end + 1;
  }
  return 0;
}

// Every mapping's keys, by line; a key met twice is an error naming both lines, added to
// `errors` in the order of the file. The tree is walked with a budget of nodes: aliases make a
// tree larger than its text (a "billion laughs" file), and past the budget the rest is left
// unchecked (the readers give up on such a file). A node's place ("items[3].prompt") is spelled
// out only for an error: the walk keeps each node's parent and key.
void CheckDuplicateKeys(const YAML::Node& root, std::size_t budget, const std::string& path,
                        InputErrors& errors, bool& failed) {
  struct Place {
    std::size_t parent;      // index in `places`; the root is its own parent
    const std::string* key;  // in a mapping: the key (yaml-cpp keeps it); else nullptr
    std::size_t index;       // in a sequence: the position
  };
  std::vector<Place> places{{0, nullptr, 0}};
  auto spell = [&places](std::size_t at) {
    std::vector<const Place*> chain;
    for (; at != 0; at = places[at].parent) chain.push_back(&places[at]);
    std::string out;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      if ((*it)->key == nullptr) {
        out += "[" + std::to_string((*it)->index) + "]";
      } else {
        if (!out.empty()) out += ".";
        out += *(*it)->key;
      }
    }
    return out;
  };
  std::vector<InputError> found;
  std::vector<std::pair<YAML::Node, std::size_t>> pending{{root, 0}};
  while (!pending.empty() && budget > 0) {
    auto [node, at] = std::move(pending.back());
    pending.pop_back();
    --budget;
    if (node.IsSequence()) {
      for (std::size_t i = node.size(); i-- > 0;) {
        places.push_back({at, nullptr, i});
        pending.emplace_back(node[i], places.size() - 1);
      }
    } else if (node.IsMap()) {
      std::unordered_map<std::string_view, int> lines;
      std::vector<std::pair<YAML::Node, std::size_t>> children;
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          children.emplace_back(entry.second, at);
          continue;
        }
        const std::string& key = entry.first.Scalar();
        places.push_back({at, &key, 0});
        const int line = entry.first.Mark().line + 1;
        const auto [first, inserted] = lines.emplace(key, line);
        if (!inserted) {
          found.push_back({path, line, spell(places.size() - 1),
                           "appears twice in the same mapping (first on line " +
                               std::to_string(first->second) +
                               "); YAML keys must be unique, and only one of the two would be "
                               "read"});
        }
        children.emplace_back(entry.second, places.size() - 1);
      }
      // Walked in the order written (the last pushed is taken first). Nodes are only ever
      // constructed here, never assigned: assigning a YAML::Node writes into the tree it refers
      // to (std::reverse over them rewrote the document).
      for (auto it = children.rbegin(); it != children.rend(); ++it) pending.emplace_back(*it);
    }
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const InputError& a, const InputError& b) { return a.line < b.line; });
  for (InputError& error : found) errors.Add(std::move(error));
  failed = failed || !found.empty();
}

// The first line (from 1) whose indentation holds a tab, or 0.
int FirstTabIndentedLine(std::string_view text) {
  int line = 1;
  bool in_indentation = true;
  for (char c : text) {
    if (c == '\n') {
      ++line;
      in_indentation = true;
    } else if (in_indentation && c == '\t') {
      return line;
    } else if (c != ' ') {
      in_indentation = false;
    }
  }
  return 0;
}

// The four hex digits after text[at] == 'u' as a number, or -1.
int HexAfter(std::string_view text, std::size_t at) {
  if (at + 5 > text.size()) return -1;
  unsigned value = 0;
  const char* digits = text.data() + at + 1;
  const auto [end, problem] = std::from_chars(digits, digits + 4, value, 16);
  return problem == std::errc() && end == digits + 4 ? static_cast<int>(value) : -1;
}

// JSON writes a character beyond U+FFFF as a pair of \u escapes ("\uD83D\uDE00"); YAML has no
// such pairs, and yaml-cpp refuses each half. Says what to write instead, for the first such
// escape in `text` (a guess from the text, as the message only adds to yaml-cpp's own).
std::string SurrogateEscapeHint(std::string_view text) {
  for (std::size_t at = text.find("\\u"); at != std::string_view::npos;
       at = text.find("\\u", at + 1)) {
    // After an odd number of backslashes this one is escaped: "\\u" is a backslash, then u.
    std::size_t backslashes = 0;
    while (backslashes < at && text[at - 1 - backslashes] == '\\') ++backslashes;
    if (backslashes % 2 != 0) continue;
    const int high = HexAfter(text, at + 1);
    if (high < 0xD800 || high > 0xDFFF) continue;
    const int low = text.substr(at + 6, 2) == "\\u" ? HexAfter(text, at + 7) : -1;
    if (high > 0xDBFF || low < 0xDC00 || low > 0xDFFF) {
      return " (a \\u escape of half a surrogate pair is no character in YAML: write the "
             "character itself, or \\U and its eight hex digits)";
    }
    const unsigned code = 0x10000u + ((static_cast<unsigned>(high) - 0xD800u) << 10) +
                          (static_cast<unsigned>(low) - 0xDC00u);
    char escape[11];
    std::snprintf(escape, sizeof escape, "\\U%08X", code);
    return std::string(" (YAML has no surrogate pairs as JSON does: write ") +
           std::string(text.substr(at, 12)) + " as " + escape + ", or the character itself)";
  }
  return {};
}

}  // namespace

std::optional<YAML::Node> LoadYamlDocument(const std::string& path, const std::string& text,
                                           InputErrors& errors, YamlDocumentOptions options) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's message for this is "bad file", which says nothing of what to change.
    errors.Add({path, e.mark.line + 1, "-",
                "invalid YAML: lists and mappings nested more than " +
                    std::to_string(e.depth() - 1) + " levels deep"});
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    std::string message = "invalid YAML: " + e.msg;
    // yaml-cpp says "illegal map value" or the like for a tab in an indentation.
    const int tabbed = FirstTabIndentedLine(text);
    if (tabbed > 0 && tabbed <= e.mark.line + 1) {
      message += " (line " + std::to_string(tabbed) +
                 " is indented with a tab: YAML indents with spaces only)";
    }
    // yaml-cpp says "invalid unicode: 55357" for JSON's surrogate pair escapes.
    message += SurrogateEscapeHint(text);
    errors.Add({path, e.mark.line + 1, "-", std::move(message)});
    return std::nullopt;
  }
  if (const int second = SecondDocumentLine(text)) {
    errors.Add({path, second, "-",
                "a second YAML document starts here, and only the first would be read: put "
                "everything in one document (remove the `---` line)"});
    return std::nullopt;
  }
  if (options.unique_keys) {
    bool failed = false;
    CheckDuplicateKeys(root, 4 * text.size() + 1024, path, errors, failed);
    if (failed) return std::nullopt;
  }
  return root;
}

}  // namespace nanobatch::util
