// Replays a fuzz target's corpus (its seeds and every input that once crashed it) with the
// regular build: the suite proves each regression stays fixed without needing clang.

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

TEST_CASE("fuzz corpus: every seed and regression input runs through the target") {
  const std::filesystem::path corpus = NANOBATCH_FUZZ_CORPUS;
  REQUIRE(std::filesystem::is_directory(corpus));
  int inputs = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(corpus)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CAPTURE(entry.path().string());
    // A target aborts (failing the test) when an invariant breaks; it returns 0 otherwise.
    CHECK(LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                 bytes.size()) == 0);
    ++inputs;
  }
  CHECK(inputs >= 3);  // a corpus of a handful of seeds at least
  MESSAGE(inputs << " inputs replayed from " << corpus.string());
}

}  // namespace
