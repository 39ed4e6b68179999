// Whatever a manifest file holds, reading it reports errors and never crashes: seeded mutations
// of valid JSONL and YAML manifests (bounded in count) go through the readers.
#include <doctest/doctest.h>

#include <random>
#include <string>

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

}  // namespace
}  // namespace nanobatch::manifest
