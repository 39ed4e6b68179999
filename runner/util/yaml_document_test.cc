#include "runner/util/yaml_document.h"

#include <doctest/doctest.h>

#include <string>

namespace nanobatch::util {
namespace {

std::string Errors(const std::string& text) {
  InputErrors errors;
  const auto root = LoadYamlDocument("f.yaml", text, errors);
  CHECK(root.has_value() == errors.empty());
  std::string out;
  for (const InputError& error : errors.stored()) out += error.Format() + "\n";
  return out;
}

TEST_CASE("yaml document: one document with unique keys loads as YAML::Load reads it") {
  InputErrors errors;
  const auto root = LoadYamlDocument(
      "f.yaml", "---\nlimits: {rate: 3, burst: 4}\nitems:\n  - {id: a, prompt: x}\n", errors);
  REQUIRE(root);
  CHECK(errors.empty());
  CHECK((*root)["limits"]["rate"].as<int>() == 3);
  CHECK((*root)["items"][0]["prompt"].as<std::string>() == "x");
  // The same key in different mappings, and the same text as a key and as a value, are fine.
  CHECK(Errors("a: {x: 1}\nb: {x: 1}\nx: x\nl:\n  - {x: 1}\n  - {x: 2}\n") == "");
  // Empty, a trailing `---`, an explicit end: nothing is lost.
  CHECK(Errors("") == "");
  CHECK(Errors("a: 1\n---\n") == "");
  CHECK(Errors("a: 1\n...\n") == "");
  InputErrors none;
  const auto empty = LoadYamlDocument("f.yaml", "", none);
  REQUIRE(empty);
  CHECK(empty->IsNull());
}

TEST_CASE("yaml document: a key twice in one mapping is an error naming both lines") {
  CHECK(Errors("limits:\n  rate: 3\n  burst: 4\n  rate: 300\n") ==
        "f.yaml:4: limits.rate: appears twice in the same mapping (first on line 2); YAML keys "
        "must be unique, and only one of the two would be read\n");
  // A section twice, a key twice inside a list's entry, in flow style, and through an alias
  // (the key is the same text whatever it came from).
  CHECK(
      Errors("items:\n  - {id: a}\nitems:\n  - {id: b}\n").find("f.yaml:3: items: appears twice") !=
      std::string::npos);
  CHECK(Errors("items:\n  - id: a\n    prompt: x\n  - id: b\n    prompt: y\n    prompt: z\n")
            .find("f.yaml:6: items[1].prompt: appears twice in the same mapping (first on line "
                  "5)") != std::string::npos);
  CHECK(Errors("m: {k: 1, k: 2}\n").find("f.yaml:1: m.k: appears twice") != std::string::npos);
  // An alias as a key is its anchor's text (yaml-cpp gives it the anchor's line).
  CHECK(Errors("a: &name k\nm:\n  k: 1\n  *name : 2\n").find("m.k: appears twice") !=
        std::string::npos);
  // Every duplicate is listed, not only the first.
  CHECK(Errors("a: 1\na: 2\nb: 1\nb: 2\n").find("f.yaml:4: b: appears twice") != std::string::npos);
}

TEST_CASE("yaml document: with unique_keys off, keys given twice are the reader's to merge") {
  InputErrors errors;
  const auto root = LoadYamlDocument("f.yaml", "limits: {rate: 3}\nlimits: {burst: 4}\n", errors,
                                     {.unique_keys = false});
  REQUIRE(root);
  CHECK(errors.empty());
  CHECK(root->size() == 2);  // both sections, in order
  // A second document is refused all the same.
  CHECK_FALSE(LoadYamlDocument("f.yaml", "a: 1\n---\nb: 2\n", errors, {.unique_keys = false}));
}

TEST_CASE("yaml document: a second document is an error, not dropped") {
  CHECK(Errors("- id: a\n  prompt: x\n---\n- id: b\n  prompt: y\n") ==
        "f.yaml:3: -: a second YAML document starts here, and only the first would be read: put "
        "everything in one document (remove the `---` line)\n");
  // The empty document between the two `---` is allowed; the one after the second is not.
  CHECK(Errors("a: 1\n---\n---\nb: 2\n").find("f.yaml:3: -: a second YAML document") !=
        std::string::npos);
}

TEST_CASE("yaml document: invalid YAML is named with its line") {
  CHECK(Errors("a: [1, 2\nb: 3\n").find("f.yaml:") == 0);
  CHECK(Errors("a: [1, 2\nb: 3\n").find("invalid YAML") != std::string::npos);
  // Nesting past yaml-cpp's depth guard says so (yaml-cpp's own message is "bad file").
  const std::string deep = "a:\n  b: " + std::string(100000, '[') + std::string(100000, ']');
  CHECK(Errors(deep).find("f.yaml:2: -: invalid YAML: lists and mappings nested more than") == 0);
  CHECK(Errors(deep).find("bad file") == std::string::npos);
  // Aliases are events, not copies: a billion-laughs file costs what its text costs.
  std::string laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) laughs += (k ? ", *a" : "*a") + std::to_string(i - 1);
    laughs += "]\n";
  }
  CHECK(Errors(laughs) == "");
  // yaml-cpp's parser hands out empty documents at the same place for ever on this (found by
  // fuzzing, when documents were counted with it).
  const std::string stuck(",n: \"\na\0\0\0\0\x14\0\xe4\xb8\x80", 16);
  InputErrors errors;
  CHECK(LoadYamlDocument("f.yaml", stuck, errors));  // returns, as YAML::Load reads it
}

TEST_CASE("yaml document: a tab in an indentation is named as the likely cause") {
  CHECK(Errors("limits:\n\trate: 5\n") ==
        "f.yaml:2: -: invalid YAML: illegal map value (line 2 is indented with a tab: YAML "
        "indents with spaces only)\n");
  // A tab inside a value is no indentation; an error before the tab is not blamed on it.
  CHECK(Errors("a: [1, 2\nb: \"x\ty\"\n").find("tab") == std::string::npos);
  CHECK(Errors("a: [1\nb:\n\t- 2\n").find("tab") == std::string::npos);
  CHECK(Errors("a: \"x\ty\"\n") == "");
}

TEST_CASE("yaml document: JSON's surrogate pair escapes are named, with what YAML takes") {
  CHECK(Errors("a: \"smile \\uD83D\\uDE00\"\n") ==
        "f.yaml:1: -: invalid YAML: invalid unicode: 55357 (YAML has no surrogate pairs as JSON "
        "does: write \\uD83D\\uDE00 as \\U0001F600, or the character itself)\n");
  CHECK(Errors("a: \"x \\ud800 alone\"\n").find("half a surrogate pair") != std::string::npos);
  // An escaped backslash before "u" is no escape: the lone half after it is the problem.
  CHECK(Errors("a: \"\\\\ud83d\\ude00\"\n").find("half a surrogate pair") != std::string::npos);
  // What YAML does take.
  CHECK(Errors("a: \"smile \\U0001F600 \\u00e9\"\n") == "");
}

TEST_CASE("yaml document: boundaries are lines starting with --- or ..., anywhere") {
  // Directives and comments before the first `---`; a `---` inside a quoted string or after
  // other text is no boundary; content on the marker's own line counts.
  CHECK(Errors("%YAML 1.2\n# a comment\n---\na: 1\n") == "");
  CHECK(Errors("a: \"x --- y\"\nb: |\n  ---\n  text\n") == "");
  CHECK(Errors("a: 1\n--- {b: 2}\n").find("f.yaml:2: -: a second YAML document") !=
        std::string::npos);
  // After an end marker, what follows is another document (or not YAML at all).
  const std::string after_end = Errors("a: 1\n...\nb: 2\n");
  CHECK_FALSE(after_end.empty());
  CHECK(Errors("a: 1\n---   # only a comment\n\n") == "");
}

}  // namespace
}  // namespace nanobatch::util
