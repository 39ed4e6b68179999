// Whatever a manifest file holds, reading it reports errors and never crashes: seeded mutations
// of valid JSONL and YAML manifests (bounded in count) go through the readers. And a JSONL file
// reads exactly as its lines read one by one, whatever they hold.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "runner/manifest/jsonl_reference.h"
#include "runner/manifest/manifest.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::manifest {
namespace {

std::string Mutate(std::string text, std::mt19937_64& random) {
  const int edits = 1 + static_cast<int>(random() % 6);
  for (int i = 0; i < edits && !text.empty(); ++i) {
    const std::size_t at = random() % text.size();
    switch (random() % 4) {
      case 0:
        text[at] = static_cast<char>(random());
        break;
      case 1:
        text.erase(at, 1 + random() % 10);
        break;
      case 2:
        text.insert(at, 1, "{}[]\",:-\n &*!|>"[random() % 16]);
        break;
      case 3:
        text.insert(at, text.substr(random() % text.size(), 1 + random() % 20));
        break;
    }
  }
  return text;
}

TEST_CASE("manifest robustness: 3,000 mutated manifests are read without crashing") {
  const std::string jsonl =
      "{\"id\":\"a\",\"prompt\":\"a "
      "cat\",\"resolution\":\"2K\",\"image_urls\":[\"https://x.y/z.png\"]}\n"
      "{\"prompt\":\"\\u732b\",\"aspect_ratio\":\"16:9\",\"output_format\":\"png\"}\n";
  const std::string yaml =
      "defaults:\n  resolution: 1K\nitems:\n  - id: a\n    prompt: a cat\n"
      "    image_urls: [https://x.y/z.png]\n  - prompt: &p \"猫\"\n    aspect_ratio: \"16:9\"\n";
  testing::TempDir dir;
  std::mt19937_64 random(7);
  std::size_t items = 0, errors_seen = 0;
  for (int i = 0; i < 3000; ++i) {
    const bool as_yaml = i % 2 == 1;
    const std::string path =
        dir.Write(as_yaml ? "m.yaml" : "m.jsonl", Mutate(as_yaml ? yaml : jsonl, random));
    util::InputErrors errors;
    CHECK_NOTHROW(ReadManifest(
        path, {}, [&](Item&&) { ++items; }, errors));
    errors_seen += errors.total();
  }
  CHECK(items > 0);
  CHECK(errors_seen > 0);
}

// ReadJsonlManifest against the line-by-line reference, for a file of `content`.
std::string DifferenceFromLineByLine(testing::TempDir& dir, const std::string& content) {
  const std::string path = dir.Write("m.jsonl", content);
  return DescribeDifference(ReadJsonlLineByLine(path, content, {}), ReadJsonlWhole(path, {}));
}

TEST_CASE("jsonl: a file reads exactly as its lines read alone, where a stream of JSON would not") {
  // Each would read differently as a stream of JSON documents than as lines: two objects on one
  // line, one across lines, a string left open, bytes that fail the whole pass (bad UTF-8, a
  // control character), scalars and arrays, stray brackets, blank lines of every kind.
  const std::string good = "{\"id\":\"g1\",\"prompt\":\"a cat\"}\n";
  const std::string last = "{\"id\":\"g2\",\"prompt\":\"a dog\",\"resolution\":\"2K\"}\n";
  const std::vector<std::string> middles = {
      "{\"prompt\":\"a\"} {\"prompt\":\"b\"}\n",
      "{\"prompt\":\"a\"}{\"prompt\":\"b\"}\n",
      "{\"prompt\":\"a\"}\r{\"prompt\":\"b\"}\r\n",
      "{\"prompt\":\n\"across two lines\"}\n",
      "{\"prompt\":\"across\"\n}\n",
      "{\n\"prompt\":\"x\"}\n",
      "{\"prompt\":\"left open}\n",
      "\"a string\n",
      "{\"prompt\":\"bad \xff\xfe utf-8\"}\n",
      "{\"prompt\":\"a tab\there\"}\n",
      "{\"prompt\":\"a\\u0000b\"}\n",
      "42\n",
      "\"text\"\n",
      "true\n",
      "null\n",
      "[{\"prompt\":\"in an array\"}]\n",
      "}\n",
      "]\n",
      "{\"prompt\":\"a\"} ]\n",
      "{\"prompt\":\"a\"} x\n",
      "{}\n",
      "{\"prompt\":\"\"}\n",
      "  \t {\"prompt\":\"leading blanks\"} \t \r\n",
      "\r{\"prompt\":\"a leading CR\"}\n",
      "\n\n   \n\t\r\n",
      "\r \r\n",
      " \r\r\n",
      "{\"prompt\":\"x\"}\r\r\n",
      "{\"prompt\":\"p\",\"meta\":{\"a\":[1]}}\n",
      "{\"prompt\":\"p\",\"prompt\":\"q\"}\n",
      "{\"id\":7,\"prompt\":\"p\"}\n",
      std::string(600, '[') + std::string(600, ']') + "\n",
      "{\"prompt\":" + std::string(1100, '[') + std::string(1100, ']') + "}\n",
      "{\"prompt\":\"\\ud800\"}\n",
      "{\"prompt\":\"unicode \\u732b \xe7\x8c\xab\"}\n",
      "{\"prompt\":\"a\"}\n{\"prompt\":\"a\"}\n",
  };
  testing::TempDir dir;
  for (const std::string& middle : middles) {
    for (const std::string& content :
         {middle, good + middle + last, good + middle + good + middle + last,
          "\xEF\xBB\xBF" + middle + last, good + middle.substr(0, middle.size() - 1)}) {
      const std::string difference = DifferenceFromLineByLine(dir, content);
      const std::string message = content + ": " + difference;
      CHECK_MESSAGE(difference.empty(), message);
    }
  }
}

TEST_CASE("jsonl: 1,500 mutated many-line files read exactly as their lines read alone") {
  const std::string base =
      "{\"id\":\"a\",\"prompt\":\"a cat\",\"resolution\":\"2K\"}\n"
      "\n"
      "{\"prompt\":\"\\u732b on a mat\",\"aspect_ratio\":\"16:9\"}\r\n"
      "  {\"id\":\"b\",\"prompt\":\"a dog\",\"image_urls\":[\"https://x.y/z.png\"]}  \n"
      "{\"id\":\"c\",\"prompt\":\"猫\",\"meta\":{\"split\":\"train\",\"score\":0.5}}\n"
      "{\"id\":\"d\",\"prompt\":\"a bird\",\"output_format\":\"png\"}\n"
      "{\"prompt\":\"a fish\"}";
  testing::TempDir dir;
  std::mt19937_64 random(11);
  int differences = 0;
  for (int i = 0; i < 1500; ++i) {
    const std::string content = Mutate(base, random);
    const std::string difference = DifferenceFromLineByLine(dir, content);
    const std::string message = content + ": " + difference;
    if (!difference.empty() && ++differences <= 5) FAIL_CHECK(message);
  }
  CHECK(differences == 0);
}

TEST_CASE("jsonl: a file of many chunks reads exactly as its lines read alone") {
  // Over 4 MB, so the reader fills its buffer more than once; bad lines fall on either side of
  // its chunk boundaries, wherever those are.
  std::string content;
  std::mt19937_64 random(3);
  for (int i = 0; content.size() < (9u << 20); ++i) {
    switch (random() % 40) {
      case 0:
        content += "{\"prompt\":\"broken\"\n";
        break;
      case 1:
        content += "{\"prompt\":\"one\"} {\"prompt\":\"two\"}\n";
        break;
      case 2:
        content += "\n";
        break;
      case 3:
        content += "{\"prompt\":\"\xc3\x28\"}\n";
        break;
      default:
        content += "{\"id\":\"item-" + std::to_string(i) + "\",\"prompt\":\"" +
                   std::string(random() % 700, 'x') + "\"}\n";
    }
  }
  testing::TempDir dir;
  const std::string difference = DifferenceFromLineByLine(dir, content);
  CHECK_MESSAGE(difference.empty(), difference);
}

}  // namespace
}  // namespace nanobatch::manifest

namespace nanobatch::manifest {
namespace {

struct ReadBack {
  std::vector<Item> items;
  std::string errors;
};

ReadBack ReadFile(const std::string& path) {
  ReadBack read;
  util::InputErrors errors;
  ReadManifest(
      path, {}, [&](Item&& item) { read.items.push_back(std::move(item)); }, errors);
  for (const auto& error : errors.stored()) read.errors += error.Format() + "\n";
  return read;
}

// YAML is a superset of JSON: an item written as a JSON object is a YAML flow mapping, and must
// read as the same item either way (the same id, so the same file names and journal records).
// Tricky prompts (escapes, YAML's indicators, words YAML would type) and every field.
TEST_CASE("yaml and jsonl: an item written as JSON reads the same in either format") {
  const std::vector<std::string> prompts = {"a cat",
                                            "caf\\u00e9 \\ud83d\\ude00 smile",
                                            "caf\xc3\xa9 \xf0\x9f\x98\x80 raw",
                                            "a\\/b",
                                            "back\\\\slash",
                                            "tab\\there",
                                            "two\\nlines",
                                            "  spaces around  ",
                                            "# not a comment",
                                            "key: value",
                                            "- not a list",
                                            "{braces} and [brackets]",
                                            "&anchor *alias !tag %pct @at `tick`",
                                            "'single' \\\"double\\\"",
                                            "null",
                                            "true",
                                            "123",
                                            "1e3",
                                            "~",
                                            "\xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab",
                                            "a\\u0000b",
                                            "ends with colon:",
                                            "--- three dashes",
                                            "... three dots",
                                            "\\u2028 line sep",
                                            "",
                                            "   ",
                                            "\\ud800 lone",
                                            "x\\u001fy"};
  const std::vector<std::string> extras = {
      "",
      ", \"resolution\": \"2K\"",
      ", \"aspect_ratio\": \"16:9\", \"output_format\": \"png\"",
      ", \"image_urls\": [\"https://a.example/x.png\"]",
      ", \"id\": \"fixed-1\"",
      ", \"meta\": {\"label\": \"cat\", \"n\": 3, \"score\": 0.5, \"ok\": true, \"none\": null}",
      ", \"resolution\": \"8K\""};
  testing::TempDir dir;
  int compared = 0;
  for (const std::string& prompt : prompts) {
    for (const std::string& extra : extras) {
      const std::string object = "{\"prompt\": \"" + prompt + "\"" + extra + "}";
      CAPTURE(object);
      const ReadBack jsonl = ReadFile(dir.Write("m.jsonl", object + "\n"));
      const ReadBack yaml = ReadFile(dir.Write("m.yaml", "- " + object + "\n"));
      if (prompt.find("\\ud83d\\ude00") != std::string::npos) {
        // The one difference: YAML has no surrogate pairs, and says what to write instead.
        CHECK(jsonl.items.size() == (extra.find("8K") == std::string::npos ? 1u : 0u));
        CHECK(yaml.errors.find("write \\ud83d\\ude00 as \\U0001F600") != std::string::npos);
        continue;
      }
      CHECK(jsonl.items.size() == yaml.items.size());
      CHECK(jsonl.errors.empty() == yaml.errors.empty());
      if (jsonl.items.size() != 1 || yaml.items.size() != 1) continue;
      const Item& a = jsonl.items[0];
      const Item& b = yaml.items[0];
      CHECK(a.prompt == b.prompt);
      CHECK(a.id == b.id);
      CHECK(a.id_derived == b.id_derived);
      CHECK(a.resolution == b.resolution);
      CHECK(a.aspect_ratio == b.aspect_ratio);
      CHECK(a.output_format == b.output_format);
      CHECK(a.image_urls == b.image_urls);
      CHECK(a.meta_json == b.meta_json);
      ++compared;
    }
  }
  CHECK(compared > 100);
}

}  // namespace
}  // namespace nanobatch::manifest
