#include "runner/manifest/manifest.h"

#include <doctest/doctest.h>

#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include "runner/manifest/item_store.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::manifest {
namespace {

struct Outcome {
  std::vector<Item> items;
  util::InputErrors errors;
  ManifestStats stats;

  std::string ErrorText() const {
    std::string out;
    for (const auto& error : errors.stored()) out += error.Format() + "\n";
    return out;
  }
};

Outcome Read(const std::string& path, const ItemDefaults& defaults = {}) {
  Outcome outcome;
  outcome.stats = ReadManifest(
      path, defaults, [&](Item&& item) { outcome.items.push_back(std::move(item)); },
      outcome.errors);
  return outcome;
}

std::string Repeat(std::string_view unit, std::size_t times) {
  std::string out;
  for (std::size_t i = 0; i < times; ++i) out += unit;
  return out;
}

TEST_CASE("jsonl: good items, blank lines, CRLF and a BOM are read in order") {
  testing::TempDir dir;
  const std::string path =
      dir.Write("m.jsonl",
                "\xEF\xBB\xBF{\"id\":\"cat\",\"prompt\":\"a cat\",\"resolution\":\"2K\"}\r\n"
                "\n"
                "   \n"
                "{\"prompt\":\"\\u732b\\u6234\\u58a8\\u955c\",\"aspect_ratio\":\"16:9\",\"output_"
                "format\":\"png\","
                "\"image_urls\":[\"https://example.com/a.png\"]}\n"
                "{\"prompt\":\"no newline at the end\"}");
  Outcome outcome = Read(path);
  CHECK(outcome.ErrorText() == "");
  REQUIRE(outcome.items.size() == 3);
  CHECK(outcome.items[0].id == "cat");
  CHECK(outcome.items[0].resolution == "2K");
  CHECK(outcome.items[0].line == 1);
  CHECK(outcome.items[1].prompt == "猫戴墨镜");
  CHECK(outcome.items[1].image_urls.size() == 1);
  CHECK(outcome.items[1].line == 4);
  CHECK(outcome.items[1].id_derived);
  CHECK(outcome.items[2].line == 5);
  CHECK(outcome.stats.lines == 5);
  CHECK(outcome.stats.items == 3);
}

TEST_CASE("jsonl: every bad line is reported with its line and field, good lines still read") {
  testing::TempDir dir;
  const std::string path = dir.Write("m.jsonl",
                                     "{\"prompt\":\"ok\"}\n"
                                     "{\"prompt\":\"typo\",\"resolutoin\":\"2K\"}\n"
                                     "{\"prompt\": 42}\n"
                                     "not json at all\n"
                                     "[1,2]\n"
                                     "{\"prompt\":\"x\",\"image_urls\":\"https://a.b/c.png\"}\n"
                                     "{\"prompt\":\"x\",\"aspect_ratio\":\"17:9\"}\n"
                                     "{\"prompt\":\"x\"} {\"prompt\":\"y\"}\n"
                                     "{\"prompt\":\"dup\",\"prompt\":\"dup\"}\n"
                                     "{\"prompt\":\"ok too\"}\n");
  Outcome outcome = Read(path);
  CHECK(outcome.items.size() == 2);
  const std::string text = outcome.ErrorText();
  CHECK(text.find(path + ":2: resolutoin: unknown key") != std::string::npos);
  CHECK(text.find("(did you mean \"resolution\"?)") != std::string::npos);
  CHECK(text.find(path + ":3: prompt: must be a string, not a number") != std::string::npos);
  CHECK(text.find(path + ":4: -: invalid JSON") != std::string::npos);
  CHECK(text.find(path + ":5: -: the line is an array, not a JSON object") != std::string::npos);
  CHECK(text.find(path + ":6: image_urls: must be an array of strings") != std::string::npos);
  CHECK(text.find(path + ":7: aspect_ratio: \"17:9\" is not one of") != std::string::npos);
  CHECK(text.find(path + ":8: -: invalid JSON") != std::string::npos);  // two objects on one line
  CHECK(text.find(path + ":9: prompt: appears twice") != std::string::npos);
  CHECK(outcome.errors.total() == 8);
}

TEST_CASE("jsonl: a file whose lines end with CR alone gets an error that says so") {
  testing::TempDir dir;
  const std::string path =
      dir.Write("mac.jsonl", "{\"id\":\"a\",\"prompt\":\"x\"}\r{\"id\":\"b\",\"prompt\":\"y\"}\r");
  Outcome outcome = Read(path);
  CHECK(outcome.items.empty());
  REQUIRE(outcome.errors.total() == 1);
  CHECK(outcome.ErrorText().find(path + ":1: -: invalid JSON") != std::string::npos);
  CHECK(outcome.ErrorText().find("not CR alone; tr '\\r' '\\n' converts such a file") !=
        std::string::npos);
  // CRLF is read as it always was.
  CHECK(Read(dir.Write("dos.jsonl", "{\"id\":\"a\",\"prompt\":\"x\"}\r\n")).items.size() == 1);
}

TEST_CASE("jsonl: a string JSON refuses is named: its column, the escape and the rule") {
  testing::TempDir dir;
  const std::string path =
      dir.Write("strings.jsonl",
                "{\"id\":\"a\",\"prompt\":\"x\\ud800y\"}\n"  // a first half alone
                "{\"id\":\"b\",\"prompt\":\"猫\\udc00\"}\n"  // a second half alone, after CJK
                "{\"id\":\"c\",\"prompt\":\"ok\\u00\"}\n"    // too few digits
                "{\"id\":\"d\",\"prompt\":\"tab\there\"}\n"  // a raw tab
                "{\"id\":\"e\",\"prompt\":\"C:\\path\"}\n"   // \p is no escape
                "{\"id\":\"f\",\"prompt\":\"pair \\ud83d\\ude00 ok\"}\n"  // a whole pair: valid
                "{\"id\":\"g\",\"prompt\":\"\\ud83d\\u0041\"}\n");  // a first half, then no second
  Outcome outcome = Read(path);
  REQUIRE(outcome.items.size() == 1);
  CHECK(outcome.items[0].prompt == "pair \xF0\x9F\x98\x80 ok");
  const std::string text = outcome.ErrorText();
  INFO(text);
  CHECK(text.find(path +
                  ":1: -: invalid JSON: Problem while parsing a string (column 22: \\ud800 is "
                  "the first half of a UTF-16 surrogate pair") != std::string::npos);
  CHECK(text.find(path + ":2: -: invalid JSON: Problem while parsing a string (column 22: "
                         "\\udc00 is the second half") != std::string::npos);
  CHECK(text.find(path + ":3: -: invalid JSON: Problem while parsing a string (column 23: \\u "
                         "must be followed by 4 hex digits)") != std::string::npos);
  CHECK(text.find(path + ":4: -: invalid JSON: ") != std::string::npos);
  CHECK(text.find("(column 24: a raw control character, U+0009, inside a string") !=
        std::string::npos);
  CHECK(text.find(path + ":5: -: invalid JSON: ") != std::string::npos);
  CHECK(text.find("(column 23: \\p is no JSON escape") != std::string::npos);
  CHECK(text.find(path + ":7: -: invalid JSON: Problem while parsing a string (column 21: "
                         "\\ud83d is the first half") != std::string::npos);
  CHECK(outcome.errors.total() == 6);
}

TEST_CASE("jsonl: a file of another shape gets errors that say how to fix it") {
  testing::TempDir dir;
  auto errors_of = [&](const std::string& name, const std::string& content) {
    const std::string path = dir.Write(name, content);
    std::string text = Read(path).ErrorText();
    std::string::size_type at = 0;
    while ((at = text.find(path, at)) != std::string::npos) text.replace(at, path.size(), "F");
    return text;
  };
  const std::string array_hint = "jq -c '.[]' FILE converts an array)";
  const std::string spread_hint = "an object spread over several lines?";
  // A JSON array, one object a line with commas.
  std::string text =
      errors_of("array.json", "[\n  {\"prompt\": \"a\"},\n  {\"prompt\": \"b\"}\n]\n");
  CHECK(text.find("F:1: -: invalid JSON: ") != std::string::npos);
  CHECK(text.find(array_hint) != std::string::npos);
  CHECK(text.find("F:2: -: invalid JSON: ") != std::string::npos);
  CHECK(text.find("(a comma after the object: JSONL lines are not separated by commas)") !=
        std::string::npos);
  CHECK(text.find("F:4: -: invalid JSON: ") != std::string::npos);
  // The same array on one line is valid JSON, but not an object.
  text = errors_of("one_line.json", "[{\"prompt\": \"a\"}, {\"prompt\": \"b\"}]\n");
  CHECK(text ==
        "F:1: -: the line is an array, not a JSON object (a JSONL manifest holds one object a "
        "line; jq -c '.[]' FILE converts a JSON array)\n");
  // Pretty-printed objects: every line of them says so.
  text = errors_of(
      "pretty.jsonl",
      "{\n  \"prompt\": \"a\",\n  \"id\": \"x\"\n}\n{\"prompt\": \"b\",\n\"id\": \"y\"}\n");
  for (const char* line : {"F:1:", "F:2:", "F:3:", "F:4:", "F:5:"}) {
    const auto at = text.find(line);
    REQUIRE(at != std::string::npos);
    CHECK(text.substr(at, text.find('\n', at) - at).find(spread_hint) != std::string::npos);
  }
  // Two objects on one line; YAML in a .jsonl file.
  CHECK(errors_of("two.jsonl", "{\"prompt\":\"a\"} {\"prompt\":\"b\"}\n")
            .find("(two objects on one line? each item must be on a line of its own)") !=
        std::string::npos);
  text = errors_of("yaml.jsonl", "items:\n  - prompt: a cat\n");
  CHECK(text.find("F:1: -: invalid JSON") != std::string::npos);
  CHECK(text.find("F:2: -: invalid JSON") != std::string::npos);
  CHECK(text.find("(this looks like YAML: a YAML manifest must be named .yaml or .yml)") !=
        std::string::npos);
  // Plain bad JSON gets no guess.
  text = errors_of("plain.jsonl", "{\"prompt\": \"a\" \"id\": \"b\"}\n");
  CHECK(text.find("F:1: -: invalid JSON") != std::string::npos);
  for (const char* guess : {"jq", "looks like", "spread", "comma after", "two objects"}) {
    CHECK(text.find(guess) == std::string::npos);
  }
}

TEST_CASE("jsonl: a prompt that is not well-formed UTF-8, raw or escaped, is refused") {
  testing::TempDir dir;
  const std::string path = dir.Write("m.jsonl",
                                     "{\"prompt\":\"cat \xff\"}\n"           // a raw bad byte
                                     "{\"prompt\":\"cat \xC0\xAF\"}\n"       // overlong
                                     "{\"prompt\":\"cat \\udc00 alone\"}\n"  // a lone surrogate
                                     "{\"prompt\":\"cat \\ud800 alone\"}\n"
                                     "{\"prompt\":\"cat \\ud83d\\udc31\"}\n");  // a pair: fine
  Outcome outcome = Read(path);
  CHECK(outcome.items.size() == 1);
  CHECK(outcome.errors.total() == 4);
  for (const auto& error : outcome.errors.stored()) CHECK(error.line <= 4);
}

TEST_CASE("jsonl: a 20,000-character Chinese prompt written as \\u escapes is accepted") {
  testing::TempDir dir;
  const std::string ok = "{\"prompt\":\"" + Repeat("\\u732b", 20000) + "\"}\n";
  const std::string over = "{\"prompt\":\"" + Repeat("\\u732b", 20001) + "\"}\n";
  Outcome outcome = Read(dir.Write("m.jsonl", ok + over));
  REQUIRE(outcome.items.size() == 1);
  CHECK(outcome.items[0].prompt.size() == 60000);
  REQUIRE(outcome.errors.total() == 1);
  CHECK(outcome.errors.stored()[0].line == 2);
  CHECK(outcome.errors.stored()[0].field == "prompt");
}

TEST_CASE("manifest: duplicate explicit ids and identical anonymous items are errors") {
  testing::TempDir dir;
  Outcome outcome = Read(dir.Write("m.jsonl",
                                   "{\"id\":\"a\",\"prompt\":\"one\"}\n"
                                   "{\"id\":\"a\",\"prompt\":\"two\"}\n"
                                   "{\"prompt\":\"same\"}\n"
                                   "{\"prompt\":\"same\"}\n"
                                   "{\"prompt\":\"same\",\"resolution\":\"4K\"}\n"));
  CHECK(outcome.items.size() == 3);
  const std::string text = outcome.ErrorText();
  CHECK(text.find(":2: id: \"a\" is already used at line 1") != std::string::npos);
  CHECK(text.find(":4: id: item is identical to the one at line 3") != std::string::npos);
  CHECK(outcome.errors.total() == 2);
}

TEST_CASE("jsonl: errors come in line order though items reach the id check a line late") {
  // The reader hands an item on after it has parsed the next line; a taken id found then is
  // still listed before the next line's own errors, and the last line's item is not forgotten.
  testing::TempDir dir;
  const std::string path = dir.Write("m.jsonl",
                                     "{\"id\":\"a\",\"prompt\":\"one\"}\n"
                                     "{\"id\":\"a\",\"prompt\":\"two\"}\n"
                                     "{\"id\":\"b\",\"prompt\":\"\"}\n"
                                     "\n"
                                     "{\"id\":\"A\",\"prompt\":\"three\"}\n"
                                     "not json\n"
                                     "{\"id\":\"c\",\"prompt\":\"four\"}\n"
                                     "{\"id\":\"c\",\"prompt\":\"five\"}");
  Outcome outcome = Read(path);
  std::vector<int> lines;
  for (const auto& error : outcome.errors.stored()) lines.push_back(error.line);
  CHECK(lines == std::vector<int>{2, 3, 5, 6, 8});
  REQUIRE(outcome.items.size() == 2);
  CHECK(outcome.items[0].id == "a");
  CHECK(outcome.items[1].id == "c");
  CHECK(outcome.ErrorText().find(":8: id: \"c\" is already used at line 7") != std::string::npos);
  CHECK(outcome.stats.items == 2);
}

TEST_CASE("manifest: derived ids are the same from JSONL and YAML, whatever the key order") {
  testing::TempDir dir;
  Outcome jsonl = Read(dir.Write("m.jsonl", "{\"resolution\":\"2K\",\"prompt\":\"a dog\"}\n"));
  Outcome yaml = Read(dir.Write("m.yaml", "- prompt: a dog\n  resolution: 2K\n"));
  REQUIRE(jsonl.items.size() == 1);
  REQUIRE(yaml.items.size() == 1);
  CHECK(jsonl.items[0].id == yaml.items[0].id);
}

TEST_CASE("jsonl: a line longer than the limit is reported and the next line still read") {
  testing::TempDir dir;
  const std::string huge = "{\"prompt\":\"" + std::string(5 << 20, 'a') + "\"}\n";
  Outcome outcome =
      Read(dir.Write("m.jsonl", "{\"prompt\":\"first\"}\n" + huge + "{\"prompt\":\"after\"}\n"));
  REQUIRE(outcome.items.size() == 2);
  CHECK(outcome.items[1].prompt == "after");
  CHECK(outcome.items[1].line == 3);
  REQUIRE(outcome.errors.total() == 1);
  CHECK(outcome.errors.stored()[0].line == 2);
  CHECK(outcome.errors.stored()[0].message.find("longer than") != std::string::npos);
}

TEST_CASE("manifest: a missing file is one clear error") {
  Outcome outcome = Read("/nonexistent/m.jsonl");
  REQUIRE(outcome.errors.total() == 1);
  CHECK(outcome.ErrorText().find("/nonexistent/m.jsonl: -: cannot open: No such file") == 0);
  Outcome yaml = Read("/nonexistent/m.yaml");
  CHECK(yaml.errors.total() == 1);
}

TEST_CASE("manifest: an empty manifest has zero items and no error") {
  testing::TempDir dir;
  CHECK(Read(dir.Write("m.jsonl", "")).errors.empty());
  CHECK(Read(dir.Write("m.yaml", "")).errors.empty());
}

TEST_CASE("yaml: a plain list of items") {
  testing::TempDir dir;
  Outcome outcome = Read(dir.Write("m.yml",
                                   "# a comment\n"
                                   "- id: beach\n"
                                   "  prompt: a cat wearing sunglasses on a beach\n"
                                   "  aspect_ratio: 16:9\n"
                                   "- prompt: \"猫\"\n"
                                   "  image_urls:\n"
                                   "    - https://example.com/ref.png\n"));
  CHECK(outcome.ErrorText() == "");
  REQUIRE(outcome.items.size() == 2);
  CHECK(outcome.items[0].aspect_ratio == "16:9");
  CHECK(outcome.items[0].line == 2);
  CHECK(outcome.items[1].line == 5);
  CHECK(outcome.items[1].image_urls[0] == "https://example.com/ref.png");
}

TEST_CASE("yaml: x-NAME keys hold anchors; defaults merge them as items do") {
  testing::TempDir dir;
  Outcome outcome = Read(dir.Write("m.yaml",
                                   "x-sizes: &sizes {resolution: 2K, aspect_ratio: \"16:9\"}\n"
                                   "x-look: &look\n"
                                   "  output_format: png\n"
                                   "defaults:\n"
                                   "  <<: [*sizes, *look]\n"
                                   "  resolution: 4K\n"
                                   "items:\n"
                                   "  - {id: a, prompt: a cat}\n"
                                   "  - {<<: *look, id: b, prompt: a dog, output_format: jpg}\n"));
  INFO(outcome.ErrorText());
  REQUIRE(outcome.errors.empty());
  REQUIRE(outcome.items.size() == 2);
  CHECK(outcome.items[0].resolution == "4K");  // its own key wins over the merged one
  CHECK(outcome.items[0].aspect_ratio == "16:9");
  CHECK(outcome.items[0].output_format == "png");
  CHECK(outcome.items[1].output_format == "jpg");
  // What defaults merge is checked as if written there; other top-level keys are still errors.
  Outcome bad = Read(dir.Write("bad.yaml",
                               "x-base: &base {resolution: 8K, colour: red}\n"
                               "defs: &d {resolution: 1K}\n"
                               "defaults: {<<: *base}\n"
                               "items:\n"
                               "  - {prompt: a cat}\n"));
  const std::string text = bad.ErrorText();
  CHECK(
      text.find("bad.yaml:2: defs: unknown top-level key (allowed: defaults, items, and x-NAME") !=
      std::string::npos);
  CHECK(text.find("bad.yaml:1: defaults.resolution: \"8K\" is not one of") != std::string::npos);
  CHECK(text.find("bad.yaml:1: defaults.colour: unknown key") != std::string::npos);
  CHECK(bad.items.empty());
  Outcome scalar = Read(dir.Write("scalar.yaml", "defaults: {<<: 3}\nitems:\n  - {prompt: a}\n"));
  CHECK(scalar.ErrorText().find("scalar.yaml:1: defaults.<<: a merge key takes a mapping") !=
        std::string::npos);
}

TEST_CASE("yaml: merge keys give an item the keys it does not set, first merged mapping first") {
  testing::TempDir dir;
  Outcome outcome = Read(dir.Write("m.yaml",
                                   "items:\n"
                                   "  - &base\n"
                                   "    id: a\n"
                                   "    prompt: a cat\n"
                                   "    aspect_ratio: \"1:1\"\n"
                                   "  - <<: *base\n"
                                   "    id: b\n"
                                   "  - <<: [{prompt: first wins, output_format: png}, *base]\n"
                                   "    id: c\n"
                                   "  - <<: {<<: *base, prompt: nested}\n"
                                   "    id: d\n"));
  INFO(outcome.ErrorText());
  REQUIRE(outcome.errors.empty());
  REQUIRE(outcome.items.size() == 4);
  CHECK(outcome.items[1].id == "b");
  CHECK(outcome.items[1].prompt == "a cat");
  CHECK(outcome.items[1].aspect_ratio == "1:1");
  CHECK(outcome.items[2].prompt == "first wins");
  CHECK(outcome.items[2].output_format == "png");
  CHECK(outcome.items[2].aspect_ratio == "1:1");
  CHECK(outcome.items[3].id == "d");
  CHECK(outcome.items[3].prompt == "nested");
  CHECK(outcome.items[3].aspect_ratio == "1:1");
  // A merged value that is not valid fails the item that merged it too, named by that item's
  // line (the item that wrote it names the value's line); a merge of a scalar is an error; a
  // quoted '<<' is an ordinary (unknown) key.
  Outcome bad = Read(dir.Write("bad.yaml",
                               "items:\n"
                               "  - &base\n"
                               "    id: a\n"
                               "    prompt: a cat\n"
                               "    resolution: 8K\n"
                               "  - <<: *base\n"
                               "    id: b\n"
                               "  - <<: 3\n"
                               "    id: c\n"
                               "  - '<<': {prompt: x}\n"
                               "    id: d\n"));
  const std::string text = bad.ErrorText();
  CHECK(text.find("bad.yaml:5: resolution: \"8K\" is not one of") != std::string::npos);
  CHECK(text.find("bad.yaml:6: resolution: \"8K\" is not one of") != std::string::npos);
  CHECK(text.find("bad.yaml:8: <<: a merge key takes a mapping or a list of mappings") !=
        std::string::npos);
  CHECK(text.find("bad.yaml:10: <<: unknown key") != std::string::npos);
  CHECK(bad.items.empty());
  // A billion laughs through merge keys: ten mappings each merging the one before ten times
  // over would copy 10^9 keys; the item stops at the budget.
  std::string laughs = "defs:\n  - &m0 {prompt: a}\n";
  for (int i = 1; i < 10; ++i) {
    laughs += "  - &m" + std::to_string(i) + " {<<: [";
    for (int k = 0; k < 10; ++k) laughs += (k ? ", *m" : "*m") + std::to_string(i - 1);
    laughs += "], k" + std::to_string(i) + ": x}\n";
  }
  laughs += "items:\n  - {<<: *m9, id: z}\n";
  Outcome bomb = Read(dir.Write("bomb.yaml", laughs));
  CHECK(bomb.ErrorText().find("merges nested more than 16 deep or copying more than 1024 keys") !=
        std::string::npos);
  // Within each item's budget, but not the file's: short lines that each merge a mapping that
  // merges another 300 times (900 keys copied, all but three of them then shadowed).
  std::string wide = "items:\n  - &b {prompt: a, resolution: 1K, id: b}\n  - &m {<<: [*b";
  for (int k = 1; k < 300; ++k) wide += ", *b";
  wide += "], id: m}\n";
  for (int i = 0; i < 300; ++i) wide += "  - {<<: *m, id: i" + std::to_string(i) + "}\n";
  Outcome spread = Read(dir.Write("wide.yaml", wide));
  INFO(spread.ErrorText().substr(0, 500));
  CHECK(spread.items.size() > 10);  // the first ones fit the file's budget
  CHECK(spread.items.size() < 100);
  CHECK(spread.ErrorText().find("in the whole file, more than a few per byte of it") !=
        std::string::npos);
}

TEST_CASE("yaml: defaults apply under item values, over the config's") {
  testing::TempDir dir;
  ItemDefaults config_defaults;
  config_defaults.output_format = "png";
  Outcome outcome = Read(dir.Write("m.yaml",
                                   "defaults:\n"
                                   "  resolution: 4K\n"
                                   "items:\n"
                                   "  - prompt: one\n"
                                   "  - prompt: two\n"
                                   "    resolution: 1K\n"),
                         config_defaults);
  CHECK(outcome.ErrorText() == "");
  REQUIRE(outcome.items.size() == 2);
  CHECK(outcome.items[0].resolution == "4K");
  CHECK(outcome.items[0].output_format == "png");
  CHECK(outcome.items[1].resolution == "1K");
}

TEST_CASE("yaml: errors name the line of the offending key or value") {
  testing::TempDir dir;
  const std::string path = dir.Write("m.yaml",
                                     "defaults:\n"
                                     "  resolution: 5K\n"
                                     "  seed: 3\n"
                                     "  aspect-ratio: 1:1\n"
                                     "items:\n"
                                     "  - prompt: fine\n");
  Outcome outcome = Read(path);
  const std::string text = outcome.ErrorText();
  CHECK(text.find(path + ":2: defaults.resolution: \"5K\" is not one of") != std::string::npos);
  CHECK(text.find(path + ":3: defaults.seed: unknown key (allowed: resolution aspect_ratio "
                         "output_format)\n") != std::string::npos);
  CHECK(text.find(path + ":4: defaults.aspect-ratio: unknown key (allowed: resolution "
                         "aspect_ratio output_format) (did you mean \"aspect_ratio\"?)") !=
        std::string::npos);

  const std::string items = dir.Write("i.yaml",
                                      "- prompt: ok\n"
                                      "- prompt: [not, a, string]\n"
                                      "- prompt: x\n"
                                      "  colour: red\n"
                                      "- just a string\n"
                                      "- prompt: y\n"
                                      "  image_urls: https://a.b/c.png\n"
                                      "- prompt: z\n"
                                      "  output_format: gif\n"
                                      "- promt: typo\n"
                                      "  matirx: {a: [1]}\n");
  Outcome item_outcome = Read(items);
  const std::string item_text = item_outcome.ErrorText();
  CHECK(item_outcome.items.size() == 1);
  CHECK(item_text.find(items + ":2: prompt: must be a string, not a list") != std::string::npos);
  CHECK(item_text.find(items + ":4: colour: unknown key") != std::string::npos);
  CHECK(item_text.find(items + ":5: -: an item must be a mapping") != std::string::npos);
  CHECK(item_text.find(items + ":7: image_urls: must be a list of strings") != std::string::npos);
  CHECK(item_text.find(items + ":9: output_format: \"gif\" is not one of") != std::string::npos);
  CHECK(item_text.find(items + ":10: promt: unknown key") != std::string::npos);
  CHECK(item_text.find("(did you mean \"prompt\"?)") != std::string::npos);
  CHECK(item_text.find(items + ":11: matirx: unknown key") != std::string::npos);
  CHECK(item_text.find("(did you mean \"matrix\"?)") != std::string::npos);
}

TEST_CASE("yaml: an item without matrix: is no template; its errors name their values' lines") {
  testing::TempDir dir;
  // Braces in a plain prompt are text, as in JSONL (every item was once read as a template, and
  // "{red}" was "names no axis of the matrix").
  const std::string plain = dir.Write("plain.yaml",
                                      "- prompt: \"a sign reading {OPEN}\"\n"
                                      "- prompt: 'json {\"a\": 1}'\n"
                                      "  repeat: 2\n");
  Outcome outcome = Read(plain);
  CHECK(outcome.ErrorText() == "");
  REQUIRE(outcome.items.size() == 3);
  CHECK(outcome.items[0].prompt == "a sign reading {OPEN}");
  CHECK(outcome.items[1].prompt == "json {\"a\": 1}");
  CHECK(outcome.stats.lines == 3);
  CHECK(Read(dir.Write("no_newline.yaml", "- prompt: a")).stats.lines == 1);
  // A derived id is the same as JSONL's for the same item, and is marked derived: identical
  // items are told they are identical, not that an id the file never wrote is taken.
  const std::string jsonl = dir.Write("same.jsonl", "{\"prompt\":\"a sign reading {OPEN}\"}\n");
  CHECK(outcome.items[0].id == Read(jsonl).items.at(0).id);
  CHECK(outcome.items[0].id_derived);
  const std::string twice = dir.Write("twice.yaml", "- prompt: a cat\n- prompt: a cat\n");
  CHECK(Read(twice).ErrorText() == twice +
                                       ":2: id: item is identical to the one at line 1 (derived id "
                                       "item-4c5ad0d1a1a04837); give each an explicit id to "
                                       "generate it more than once\n");
  // A missing prompt is just that (it said "the matrix's template").
  const std::string no_prompt = dir.Write("no_prompt.yaml", "- id: x\n  resolution: 2K\n");
  CHECK(Read(no_prompt).ErrorText() == no_prompt + ":1: prompt: is required\n");
  // Each bad value is named where it is written.
  const std::string lines = dir.Write("lines.yaml",
                                      "- id: a\n"
                                      "  prompt: x\n"
                                      "  resolution: 2k\n"
                                      "  aspect_ratio: 7:5\n"
                                      "  image_urls:\n"
                                      "    - https://ok.example/a.png\n"
                                      "    - ftp://x\n");
  const std::string text = Read(lines).ErrorText();
  CHECK(text.find(lines + ":3: resolution: \"2k\"") != std::string::npos);
  CHECK(text.find(lines + ":4: aspect_ratio: \"7:5\"") != std::string::npos);
  CHECK(text.find(lines + ":7: image_urls[1]: \"ftp://x\" is not an http(s) URL") !=
        std::string::npos);
}

TEST_CASE("yaml: a template's own bad value is reported once, on its line, with an id or not") {
  testing::TempDir dir;
  for (const std::string id_line : {"  id: t\n", "  meta: {k: v}\n"}) {
    CAPTURE(id_line);
    const std::string path = dir.Write("t.yaml", "- prompt: \"a {x}\"\n" + id_line +
                                                     "  resolution: 3K\n"
                                                     "  matrix:\n"
                                                     "    x: [cat, dog, owl]\n");
    CHECK(Read(path).ErrorText() ==
          path + ":3: resolution: \"3K\" is not one of 1K 2K 4K\n");  // not three times, on 1
  }
}

TEST_CASE("yaml: syntax errors, unknown top-level keys and a missing items list") {
  testing::TempDir dir;
  const std::string broken = dir.Write("b.yaml", "- prompt: a\n- prompt: [unclosed\n");
  Outcome outcome = Read(broken);
  REQUIRE(outcome.errors.total() == 1);
  CHECK(outcome.ErrorText().find(broken + ":") == 0);
  CHECK(outcome.ErrorText().find("invalid YAML") != std::string::npos);

  const std::string mapping = dir.Write("t.yaml", "defaults: {}\nitmes:\n  - prompt: a\n");
  const std::string text = Read(mapping).ErrorText();
  CHECK(text.find(mapping + ":2: itmes: unknown top-level key") != std::string::npos);
  CHECK(text.find("(did you mean \"items\"?)") != std::string::npos);
  const std::string misplaced =
      dir.Write("m.yaml", "resolution: 2K\nprompt: a cat\nitems:\n  - prompt: a\n");
  const std::string misplaced_text = Read(misplaced).ErrorText();
  CHECK(misplaced_text.find(misplaced +
                            ":1: resolution: unknown top-level key (allowed: defaults, items, and "
                            "x-NAME for anchors) (it belongs under defaults:, for every item)") !=
        std::string::npos);
  CHECK(misplaced_text.find(misplaced + ":2: prompt: unknown top-level key (allowed: defaults, "
                                        "items, and x-NAME for anchors) (an item's key belongs "
                                        "in an item of items:)") != std::string::npos);
  CHECK(text.find("items: is required") != std::string::npos);

  CHECK_FALSE(Read(dir.Write("s.yaml", "just a scalar\n")).errors.empty());
}

TEST_CASE("yaml: a key twice or a second document is an error; nothing is dropped in silence") {
  // yaml-cpp keeps duplicate keys and Load reads only the first document: the second `items:`
  // list, an axis given twice and the items after `---` were dropped, the manifest valid.
  testing::TempDir dir;
  const std::string twice = dir.Write("t.yaml",
                                      "items:\n"
                                      "  - id: a\n"
                                      "    prompt: \"{x} cat\"\n"
                                      "    matrix:\n"
                                      "      x: [big, small]\n"
                                      "      x: [red]\n"
                                      "items:\n"
                                      "  - {id: b, prompt: dog, resolution: 1K, resolution: 4K}\n");
  Outcome outcome = Read(twice);
  CHECK(outcome.items.empty());
  const std::string text = outcome.ErrorText();
  CHECK(text.find(twice + ":6: items[0].matrix.x: appears twice") != std::string::npos);
  CHECK(text.find(twice + ":7: items: appears twice in the same mapping (first on line 1)") !=
        std::string::npos);
  CHECK(text.find(twice + ":8: items[0].resolution: appears twice") != std::string::npos);
  CHECK(outcome.errors.total() == 3);

  const std::string two = dir.Write("d.yaml",
                                    "- {id: a, prompt: a cat}\n"
                                    "---\n"
                                    "- {id: b, prompt: a dog}\n");
  Outcome documents = Read(two);
  CHECK(documents.items.empty());
  CHECK(documents.ErrorText().find(two + ":2: -: a second YAML document starts here") !=
        std::string::npos);
}

TEST_CASE("manifest: format is chosen by extension") {
  CHECK(FormatOf("a.yaml") == ManifestFormat::kYaml);
  CHECK(FormatOf("a.yml") == ManifestFormat::kYaml);
  CHECK(FormatOf("a.YAML") == ManifestFormat::kYaml);
  CHECK(FormatOf("a.Yml") == ManifestFormat::kYaml);
  CHECK(FormatOf("a.jsonl") == ManifestFormat::kJsonl);
  CHECK(FormatOf("a.json") == ManifestFormat::kJsonl);
  CHECK(FormatOf("yaml") == ManifestFormat::kJsonl);
}

TEST_CASE("manifest: devices, FIFOs and directories are refused at once with a clear error") {
  testing::TempDir dir;
  for (const std::string& path :
       {std::string("/dev/zero"), dir.File("x.yaml"), dir.File("y.jsonl")}) {
    if (path != "/dev/zero") std::filesystem::create_directories(path);
    Outcome outcome = Read(path);  // returns: never spins on an endless file
    INFO(outcome.ErrorText());
    REQUIRE(outcome.errors.total() == 1);
    CHECK((outcome.ErrorText().find("is a directory") != std::string::npos ||
           outcome.ErrorText().find("not a regular file") != std::string::npos));
  }
}

TEST_CASE("manifest: ids that would write the same file name are refused, naming both lines") {
  testing::TempDir dir;
  // "a" may get a second image a-1.png; "A" and "a" are one file on a case-insensitive disk.
  Outcome extra =
      Read(dir.Write("m.jsonl",
                     "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"a-1\",\"prompt\":\"y\"}\n"
                     "{\"id\":\"B-15\",\"prompt\":\"z\"}\n{\"id\":\"b\",\"prompt\":\"w\"}\n"
                     "{\"id\":\"Cat\",\"prompt\":\"v\"}\n{\"id\":\"cat\",\"prompt\":\"u\"}\n"));
  INFO(extra.ErrorText());
  CHECK(extra.errors.total() == 3);
  CHECK(extra.ErrorText().find("m.jsonl:2: id: \"a-1\" and \"a\" (line 1)") != std::string::npos);
  CHECK(extra.ErrorText().find("m.jsonl:4: id: \"b\" and \"B-15\" (line 3)") != std::string::npos);
  CHECK(extra.ErrorText().find("m.jsonl:6: id: \"cat\" and \"Cat\" (line 5)") != std::string::npos);
  // Names no image of another item can take are fine: -0, -16 and beyond, leading zeros.
  Outcome fine =
      Read(dir.Write("n.jsonl",
                     "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"a-0\",\"prompt\":\"y\"}\n"
                     "{\"id\":\"a-16\",\"prompt\":\"z\"}\n{\"id\":\"a-01\",\"prompt\":\"w\"}\n"
                     "{\"id\":\"img-1\",\"prompt\":\"v\"}\n{\"id\":\"img-2\",\"prompt\":\"u\"}\n"));
  INFO(fine.ErrorText());
  CHECK(fine.errors.empty());
  CHECK(fine.items.size() == 6);
}

}  // namespace
}  // namespace nanobatch::manifest

namespace nanobatch::manifest {
namespace {

TEST_CASE("item store: items are read again on demand, equal to what was validated") {
  testing::TempDir dir;
  const std::string path = dir.Write(
      "m.jsonl",
      "\xEF\xBB\xBF{\"id\":\"a\",\"prompt\":\"first\"}\r\n"
      "\n"
      "{\"prompt\":\"second, derived id\",\"resolution\":\"4K\"}\n"
      "{\"id\":\"c\",\"prompt\":\"last, no newline\",\"image_urls\":[\"https://x.org/i.png\"]}");
  std::vector<Item> visited;
  util::InputErrors errors;
  auto store = ItemStore::Open(
      path, {},
      [&](Item&& item, std::uint32_t index) {
        CHECK(index == visited.size());
        visited.push_back(std::move(item));
      },
      errors);
  REQUIRE(errors.empty());
  REQUIRE(store->size() == 3);
  for (std::uint32_t i = 0; i < 3; ++i) {
    std::string error;
    std::optional<Item> again = store->Load(i, error);
    REQUIRE(again.has_value());
    CHECK(again->id == visited[i].id);
    CHECK(again->prompt == visited[i].prompt);
    CHECK(again->line == visited[i].line);
    CHECK(ContentHash(*again) == ContentHash(visited[i]));
  }
  CHECK(store->Find("c") == 2u);
  CHECK_FALSE(store->Find("C").has_value());  // exact ids only
  CHECK(store->Clash("C") == 2u);             // ...but names clash ignoring case
  CHECK(store->Clash("a-3") == 0u);           // a's fourth image
  CHECK_FALSE(store->Clash("zz").has_value());
}

TEST_CASE("item store: a line edited after validation is an error, never a different item") {
  testing::TempDir dir;
  const std::string path = dir.Write("m.jsonl",
                                     "{\"id\":\"a\",\"prompt\":\"a cat\"}\n"
                                     "{\"id\":\"b\",\"prompt\":\"a dog\"}\n");
  util::InputErrors errors;
  auto store = ItemStore::Open(
      path, {}, [](Item&&, std::uint32_t) {}, errors);
  REQUIRE(errors.empty());
  // Same length, different bytes (rewritten in place, as an editor's save might).
  dir.Write("m.jsonl",
            "{\"id\":\"a\",\"prompt\":\"a cat\"}\n"
            "{\"id\":\"b\",\"prompt\":\"a fox\"}\n");
  std::string error;
  CHECK(store->Load(0, error).has_value());
  CHECK_FALSE(store->Load(1, error).has_value());
  CHECK(error.find("m.jsonl:2: the manifest changed since it was validated") != std::string::npos);
}

TEST_CASE("item store: YAML items are kept in memory and found the same way") {
  testing::TempDir dir;
  const std::string path = dir.Write("m.yaml", "- {id: x, prompt: one}\n- {id: y, prompt: two}\n");
  util::InputErrors errors;
  auto store = ItemStore::Open(
      path, {}, [](Item&&, std::uint32_t) {}, errors);
  REQUIRE(errors.empty());
  std::string error;
  auto y = store->Load(1, error);
  REQUIRE(y.has_value());
  CHECK(y->prompt == "two");
  CHECK(store->Find("y") == 1u);
}

TEST_CASE("name claims: a hash match is confirmed against the owner's real id") {
  // Claims hold hashes; every match is confirmed through id_of (the owner's real id), so a
  // report always names a real clash.
  std::vector<std::string> ids = {"Cat", "dog", "cat-2"};
  NameClaims claims([&](NameClaims::Owner owner) { return ids[owner]; });
  CHECK_FALSE(claims.Claim("Cat", 0).has_value());
  CHECK_FALSE(claims.Claim("dog", 1).has_value());
  CHECK(claims.Claim("cat-2", 2) == 0u);  // the second name of Cat's third image
  CHECK(claims.Check("CAT") == 0u);
  CHECK(claims.Check("dog-15") == 1u);
  CHECK_FALSE(claims.Check("dog-16").has_value());
  CHECK_FALSE(claims.Check("dog-01").has_value());
  CHECK(claims.Find("dog") == 1u);
  CHECK_FALSE(claims.Find("DOG").has_value());
}

TEST_CASE(
    "name hash index: equal hashes are candidates, the caller's check decides; growth keeps all") {
  using Kind = NameHashIndex::Kind;
  NameHashIndex index;
  // Hashes differ only in the low bit, which carries the kind: they are the same key.
  for (std::uint32_t owner = 0; owner < 1000; ++owner) {
    index.Insert((owner % 7) << 1 | (owner & 1), owner % 2 ? Kind::kExtraImagesOf : Kind::kName,
                 owner);
  }
  auto owner_is = [](std::uint32_t wanted) {
    return [wanted](std::uint32_t owner, Kind) { return owner == wanted; };
  };
  // Owners 3, 10, 17, ..., 997 share hash 3 << 1: the one the check accepts is returned.
  CHECK(index.Find(3 << 1, owner_is(997)) == 997u);
  CHECK(index.Find(3 << 1 | 1, owner_is(990)) == 990u);  // the kind bit is not part of the key
  CHECK(index
            .Find(3 << 1,
                  [](std::uint32_t owner, Kind kind) { return owner > 500 && kind == Kind::kName; })
            .has_value());
  // Each entry keeps its own kind: odd owners are extra-image entries.
  CHECK_FALSE(index
                  .Find(3 << 1,
                        [](std::uint32_t owner, Kind kind) {
                          return (owner % 2 == 1) != (kind == Kind::kExtraImagesOf);
                        })
                  .has_value());
  CHECK_FALSE(index.Find(3 << 1, owner_is(995)).has_value());
  CHECK_FALSE(index.Find(9 << 1, [](std::uint32_t, Kind) { return true; }).has_value());
  index.Clear();
  CHECK_FALSE(index.Find(3 << 1, [](std::uint32_t, Kind) { return true; }).has_value());
}

TEST_CASE("name claims: every letter folds the same at every position of a long id") {
  // Names are hashed eight bytes at a time; a letter must fold wherever it falls in a word.
  const std::string lower = "abcdefghijklmnopqrstuvwxyz0123456789._-abcdefghijklmnopqrstuvwxyz";
  std::vector<std::string> ids = {lower};
  NameClaims claims([&](NameClaims::Owner owner) { return ids[owner]; });
  REQUIRE_FALSE(claims.Claim(lower, 0).has_value());
  for (std::size_t length = 1; length <= lower.size(); ++length) {
    std::string upper = lower;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    // The whole id in capitals, and each single capital in place.
    CHECK(claims.Check(upper) == 0u);
    std::string one = lower;
    one[length - 1] = upper[length - 1];
    CHECK(claims.Check(one) == 0u);
  }
  // Bytes next to the letters ('@', '[', '`', '{') and non-ASCII bytes are not letters.
  for (const char* other : {"@", "[", "`", "{", "\xC1", "\xE1"}) {
    CHECK_FALSE(claims.Check(std::string(other) + lower.substr(1)).has_value());
  }
}

TEST_CASE("name claims: ids and the extra names of X-k share one index without confusion") {
  std::vector<std::string> ids = {"Sky-1", "sky-2", "sea", "SEA-3", "river-15", "River"};
  NameClaims claims([&](NameClaims::Owner owner) { return ids[owner]; });
  CHECK_FALSE(claims.Claim("Sky-1", 0).has_value());
  CHECK_FALSE(claims.Claim("sky-2", 1).has_value());  // siblings do not collide
  CHECK(claims.Check("SKY").has_value());             // sky's extra names are taken
  CHECK(claims.Check("sky-1") == 0u);
  CHECK_FALSE(claims.Claim("sea", 2).has_value());
  CHECK(claims.Claim("SEA-3", 3) == 2u);
  CHECK_FALSE(claims.Claim("river-15", 4).has_value());
  CHECK(claims.Claim("River", 5) == 4u);
  CHECK(claims.Find("sky-2") == 1u);
  CHECK_FALSE(claims.Find("sky").has_value());  // an extra-name entry is not an id
  CHECK_FALSE(claims.Check("sky-16").has_value());
}

TEST_CASE("name claims: ids of every length from 1 to 24 fold the same, wherever a capital is") {
  // Names are hashed eight bytes at a time and their last one to seven bytes as one more word:
  // each length takes a different path through that tail.
  const std::string letters = "abcdefghijklmnopqrstuvwx";
  for (std::size_t length = 1; length <= letters.size(); ++length) {
    const std::string lower = letters.substr(0, length);
    std::vector<std::string> ids = {lower};
    NameClaims claims([&](NameClaims::Owner owner) { return ids[owner]; });
    REQUIRE_FALSE(claims.Claim(lower, 0).has_value());
    for (std::size_t at = 0; at < length; ++at) {
      std::string one = lower;
      one[at] = static_cast<char>(std::toupper(static_cast<unsigned char>(one[at])));
      CHECK_MESSAGE(claims.Check(one) == 0u, one);
    }
    CHECK_FALSE(claims.Check(lower + "y").has_value());
    if (length > 1) CHECK_FALSE(claims.Check(lower.substr(0, length - 1)).has_value());
  }
}

// What an extra image's name "X-k" (k = 1..15, no leading zero) says of its owner X, written the
// plain way: the reference the index's own reading from the end must agree with.
std::string ReferenceExtraImageOwner(const std::string& id) {
  const auto dash = id.rfind('-');
  if (dash == std::string::npos || dash == 0) return "";
  const std::string k = id.substr(dash + 1);
  if (k.empty() || k.size() > 2 || k[0] == '0') return "";
  for (char c : k) {
    if (c < '0' || c > '9') return "";
  }
  const int value = std::stoi(k);
  return value >= 1 && value <= 15 ? id.substr(0, dash) : "";
}

TEST_CASE("name claims: which ids are extra names of another, against the plain reading") {
  std::vector<std::string> candidates;
  for (const char* prefix : {"a", "Ab", "a-b", "a-", "-a", "x_y.z", "img-7", "-"}) {
    for (int k = 0; k <= 20; ++k) {
      candidates.push_back(std::string(prefix) + "-" + std::to_string(k));
    }
    for (const char* tail : {"-01", "-05", "-015", "-1a", "-a1", "--1", "-", "1", "-115", "-1.",
                             "-:1", "-/1", "-10", "-15", "-16", "-9"}) {
      candidates.push_back(std::string(prefix) + tail);
    }
  }
  for (const char* id : {"-1", "--1", "1", "a1", "-15", "a", ""}) candidates.emplace_back(id);
  std::size_t extra = 0;
  for (const std::string& id : candidates) {
    const std::string owner = ReferenceExtraImageOwner(id);
    // The would-be owner: what precedes the last dash.
    const auto dash = id.rfind('-');
    const std::string claimed =
        !owner.empty() ? owner : (dash != std::string::npos && dash > 0 ? id.substr(0, dash) : "");
    if (claimed.empty()) continue;
    std::vector<std::string> ids = {claimed};
    NameClaims claims([&](NameClaims::Owner who) { return ids[who]; });
    REQUIRE_FALSE(claims.Claim(claimed, 0).has_value());
    if (!owner.empty()) {
      ++extra;
      CHECK_MESSAGE(claims.Check(id) == 0u, id);  // an extra name of `claimed`'s
    } else {
      CHECK_FALSE_MESSAGE(claims.Check(id).has_value(), id);
    }
  }
  CHECK(extra >= 8 * 15);  // the reference found the X-k among them
}

TEST_CASE("meta: extra columns from JSONL and YAML, never part of what is paid for") {
  testing::TempDir dir;
  Outcome jsonl = Read(dir.Write(
      "m.jsonl",
      "{\"prompt\":\"a cat\",\"meta\":{\"label\":\"cat\",\"split\":\"train\",\"score\":1}}\n"
      "{\"prompt\":\"a cat\",\"meta\":{\"label\":\"cat\",\"prompt\":\"x\",\"deep\":[1]}}\n"
      "{\"prompt\":\"a dog\",\"meta\":\"label\"}\n"));
  CHECK(jsonl.ErrorText() ==
        dir.path() +
            "/m.jsonl:2: meta.prompt: \"prompt\" is a column nanobatch writes itself; "
            "choose another name\n" +
            dir.path() +
            "/m.jsonl:2: meta.deep: must be a string, number, boolean or null, not an array\n" +
            dir.path() + "/m.jsonl:3: meta: must be an object of columns, not a string\n");
  REQUIRE(jsonl.items.size() == 1);
  CHECK(jsonl.items[0].meta_json == "{\"label\":\"cat\",\"split\":\"train\",\"score\":1}");

  Outcome yaml = Read(dir.Write("m.yaml",
                                "- prompt: a cat\n"
                                "  meta: {label: cat, split: train, score: 1, quoted: \"1\"}\n"
                                "- prompt: a dog\n"
                                "  meta:\n"
                                "    label: [dog]\n"));
  CHECK(yaml.ErrorText() ==
        dir.path() +
            "/m.yaml:5: meta.label: must be a string, number, boolean or null, not a "
            "list\n");
  REQUIRE(yaml.items.size() == 1);
  CHECK(yaml.items[0].meta_json ==
        "{\"label\":\"cat\",\"split\":\"train\",\"score\":1,\"quoted\":\"1\"}");
  // Same payload, same derived id and content hash: the columns are not sent.
  CHECK(yaml.items[0].id == jsonl.items[0].id);
  CHECK(ContentHash(yaml.items[0]) == ContentHash(jsonl.items[0]));
}

TEST_CASE("yaml: repeat makes N items with stable ids, with or without an id") {
  testing::TempDir dir;
  Outcome outcome = Read(dir.Write("m.yaml",
                                   "- {id: cat, prompt: a cat, repeat: 3}\n"
                                   "- {prompt: a dog, repeat: 2, meta: {label: dog}}\n"
                                   "- {prompt: a cow, repeat: 0}\n"
                                   "- {prompt: a cow, repeat: x}\n"));
  CHECK(outcome.ErrorText() ==
        dir.path() + "/m.yaml:3: repeat: must be a whole number from 1 to 10000, not \"0\"\n" +
            dir.path() + "/m.yaml:4: repeat: must be a whole number from 1 to 10000, not \"x\"\n");
  REQUIRE(outcome.items.size() == 5);
  CHECK(outcome.items[0].id == "cat.r1");
  CHECK(outcome.items[2].id == "cat.r3");
  CHECK(outcome.items[2].prompt == "a cat");
  Item dog;
  dog.prompt = "a dog";
  dog.resolution = "1K";
  dog.aspect_ratio = "auto";
  dog.output_format = "jpg";
  CHECK(outcome.items[3].id == DeriveId(dog) + ".r1");
  CHECK(outcome.items[4].id == DeriveId(dog) + ".r2");
  CHECK(outcome.items[4].meta_json == "{\"label\":\"dog\"}");
  CHECK(outcome.stats.items == 5);
}

TEST_CASE("yaml: a matrix expands its template over every axis, item-key axes set the key") {
  testing::TempDir dir;
  Outcome outcome = Read(dir.Write("m.yaml",
                                   "defaults: {resolution: 2K}\n"
                                   "items:\n"
                                   "  - id: pets\n"
                                   "    prompt: \"{subject} in the style of {style}\"\n"
                                   "    matrix:\n"
                                   "      subject: [cat, dog]\n"
                                   "      style: [watercolor, \"pixel art\"]\n"
                                   "      aspect_ratio: [\"1:1\", \"16:9\"]\n"
                                   "    meta: {split: train}\n"));
  CHECK(outcome.ErrorText() == "");
  REQUIRE(outcome.items.size() == 8);
  const Item& first = outcome.items[0];
  CHECK(first.id == "pets.cat.watercolor.1x1");
  CHECK(first.prompt == "cat in the style of watercolor");
  CHECK(first.aspect_ratio == "1:1");
  CHECK(first.resolution == "2K");
  CHECK(first.meta_json == "{\"split\":\"train\",\"subject\":\"cat\",\"style\":\"watercolor\"}");
  CHECK(outcome.items[1].id == "pets.cat.watercolor.16x9");
  CHECK(outcome.items[1].aspect_ratio == "16:9");
  const Item& pixel = outcome.items[2];
  CHECK(pixel.prompt == "cat in the style of pixel art");
  CHECK(pixel.id.rfind("pets.cat.pixel_art_", 0) == 0);
  CHECK(pixel.id.size() == std::string("pets.cat.pixel_art_123456.1x1").size());
  CHECK(outcome.items[7].id.rfind("pets.dog.pixel_art_", 0) == 0);

  // Stable: the same entry elsewhere in another file expands to the same ids.
  Outcome again = Read(dir.Write("n.yaml",
                                 "- {prompt: unrelated}\n"
                                 "- id: pets\n"
                                 "  resolution: 2K\n"
                                 "  prompt: \"{subject} in the style of {style}\"\n"
                                 "  matrix: {subject: [dog, cat], style: [\"pixel art\"],\n"
                                 "           aspect_ratio: [\"16:9\"]}\n"));
  REQUIRE(again.items.size() == 3);
  CHECK(again.items[2].id == outcome.items[3].id);  // cat, pixel art, 16:9
}

TEST_CASE("yaml: matrix mistakes are errors on their line, nothing expanded") {
  testing::TempDir dir;
  Outcome outcome = Read(dir.Write("m.yaml",
                                   "- prompt: \"{subject} in {stlye}\"\n"               // 1
                                   "  matrix: {subject: [a], style: [b]}\n"             // 2
                                   "- prompt: \"{subject}\"\n"                          // 3
                                   "  matrix:\n"                                        // 4
                                   "    subject: []\n"                                  // 5
                                   "    resolution: [1K, 3K]\n"                         // 6
                                   "    id: [x]\n"                                      // 7
                                   "- prompt: \"{subject}\"\n"                          // 8
                                   "  matrix: {subject: [a, b], style: [c]}\n"          // 9
                                   "- prompt: \"{a}{b}\"\n"                             // 10
                                   "  resolution: 2K\n"                                 // 11
                                   "  matrix: {a: [x], b: [y], resolution: [1K]}\n"));  // 12
  const std::string p = dir.path() + "/m.yaml:";
  CHECK(outcome.ErrorText() ==
        p + "1: prompt: {stlye} names no axis of the matrix (axes: subject style)\n" + p +
            "5: matrix.subject: must be a non-empty list of values, not an empty list\n" + p +
            "6: matrix.resolution[1]: \"3K\" is not one of 1K 2K 4K\n" + p +
            "7: matrix.id: an axis may set resolution, aspect_ratio or output_format, not id\n" +
            p +
            "8: prompt: does not use the axis {style}: its items would be identical (use "
            "repeat: for variations)\n" +
            p + "12: matrix.resolution: the item sets resolution too; set it in one place\n");
  CHECK(outcome.items.empty());
}

TEST_CASE("yaml: a matrix with repeat, without an id; validate counts every expanded item") {
  testing::TempDir dir;
  Outcome outcome = Read(dir.Write("m.yaml",
                                   "- prompt: \"a {animal}\"\n"
                                   "  matrix: {animal: [cat, dog, cow]}\n"
                                   "  repeat: 2\n"));
  CHECK(outcome.ErrorText() == "");
  REQUIRE(outcome.items.size() == 6);
  CHECK(outcome.stats.items == 6);
  CHECK(outcome.items[0].id.rfind("item-", 0) == 0);
  CHECK(outcome.items[0].id.substr(outcome.items[0].id.size() - 7) == ".cat.r1");
  CHECK(outcome.items[5].id.substr(outcome.items[5].id.size() - 7) == ".cow.r2");
  CHECK(outcome.items[5].prompt == "a cow");
  Outcome huge = Read(dir.Write("h.yaml",
                                "- prompt: \"{a}{b}\"\n"
                                "  repeat: 10000\n"
                                "  matrix: {a: [1, 2, 3], b: [4, 5, 6, 7]}\n"));
  CHECK(huge.ErrorText() ==
        dir.path() +
            "/h.yaml:1: matrix: expands to more than 100000 items; split it, or use a "
            "JSONL manifest\n");
}

}  // namespace
}  // namespace nanobatch::manifest
