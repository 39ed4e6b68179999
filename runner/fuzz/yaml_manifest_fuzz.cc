// A YAML manifest (a list of items, or defaults: and items:), read as `validate` reads one from
// a file. No input crashes yaml-cpp or the reader (deep nesting, anchors, aliases, tags, odd
// scalars); every item that comes out is valid; every error is printable and has a line.

#include <cstdint>
#include <string>

#include "runner/fuzz/fuzz_check.h"
#include "runner/fuzz/printable.h"
#include "runner/manifest/item.h"
#include "runner/manifest/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nanobatch;
  const std::string text(reinterpret_cast<const char*>(data), size);
  util::InputErrors errors;
  std::size_t sunk = 0;
  const manifest::ManifestStats stats = manifest::ReadYamlManifestText(
      "fuzz.yaml", text, manifest::ItemDefaults{},
      [&](manifest::Item&& item) {
        ++sunk;
        FUZZ_CHECK(!manifest::CheckPrompt(item.prompt));
        FUZZ_CHECK(!manifest::CheckResolution(item.resolution));
        FUZZ_CHECK(!manifest::CheckAspectRatio(item.aspect_ratio));
        FUZZ_CHECK(!manifest::CheckOutputFormat(item.output_format));
        FUZZ_CHECK(!manifest::CheckId(item.id));
      },
      errors);
  FUZZ_CHECK(stats.items == sunk);
  for (const util::InputError& error : errors.stored()) {
    FUZZ_CHECK(fuzz::IsPrintable(error.Format(), 4096));
  }
  return 0;
}
