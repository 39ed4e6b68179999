// A whole JSONL manifest, read as `validate` reads one from a file, must mean exactly what its
// lines mean parsed one by one (jsonl_reference.h): the reader parses whole chunks of lines in
// one pass, and any line a stream of JSON would read differently (two objects on a line, one
// across lines, bytes that fail the pass) must still read as it reads alone.

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "runner/fuzz/fuzz_check.h"
#include "runner/manifest/jsonl_reference.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nanobatch;
  // One in-memory file for every input: the reader opens it by name, as it opens a manifest.
  static const int file = ::memfd_create("fuzz.jsonl", MFD_CLOEXEC);
  FUZZ_CHECK(file >= 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(file);
  FUZZ_CHECK(::ftruncate(file, 0) == 0);
  FUZZ_CHECK(::pwrite(file, data, size, 0) == static_cast<ssize_t>(size));

  const std::string_view content(reinterpret_cast<const char*>(data), size);
  const manifest::ItemDefaults defaults;
  const std::string difference =
      manifest::DescribeDifference(manifest::ReadJsonlLineByLine(path, content, defaults),
                                   manifest::ReadJsonlWhole(path, defaults));
  if (!difference.empty()) std::fprintf(stderr, "%s\n", difference.c_str());
  FUZZ_CHECK(difference.empty());
  return 0;
}
