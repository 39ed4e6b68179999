#include "runner/api/spec.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace nanobatch::api {
namespace {

// Every text of up to `length` bytes over `alphabet`.
std::vector<std::string> AllTexts(const std::string& alphabet, std::size_t length) {
  std::vector<std::string> texts = {""};
  std::vector<std::string> last = {""};
  for (std::size_t size = 1; size <= length; ++size) {
    std::vector<std::string> next;
    for (const std::string& text : last) {
      for (char c : alphabet) next.push_back(text + c);
    }
    texts.insert(texts.end(), next.begin(), next.end());
    last = std::move(next);
  }
  return texts;
}

template <std::size_t N>
void CheckAgrees(const ShortSet& set, const std::array<std::string_view, N>& allowed,
                 const std::vector<std::string>& texts) {
  std::size_t members = 0;
  for (const std::string& text : texts) {
    const bool expected = IsOneOf(text, allowed);
    members += expected ? 1 : 0;
    const std::string quoted = '"' + text + '"';
    CHECK_MESSAGE(set.Contains(text) == expected, quoted);
  }
  CHECK(members == N);  // every member was among the texts tried
}

TEST_CASE("spec: the short-text sets answer exactly as the lists do") {
  // Every text of up to four bytes over the lists' own characters and their neighbours (a NUL,
  // capitals, the bytes around ':' and the digits): about 290,000 texts.
  const std::string alphabet = std::string("012345689:Kaoutjpgn") + std::string(1, '\0') + "k;/";
  const std::vector<std::string> texts = AllTexts(alphabet, 4);
  CheckAgrees(kResolutionSet, kResolutions, texts);
  CheckAgrees(kAspectRatioSet, kAspectRatios, texts);
  CheckAgrees(kOutputFormatSet, kOutputFormats, texts);
  // Longer texts that start with a member, and members with a byte more or less.
  for (const char* text :
       {"auto ", "autox", "16:9 ", "1K\n", "jpgx", "pngpngpng", "1:1:1", "aut", "16:", "1", "jp"}) {
    CHECK_FALSE_MESSAGE(kAspectRatioSet.Contains(text), text);
    CHECK_FALSE_MESSAGE(kResolutionSet.Contains(text), text);
    CHECK_FALSE_MESSAGE(kOutputFormatSet.Contains(text), text);
  }
  CHECK_FALSE(kAspectRatioSet.Contains(std::string("auto\0", 5)));
  CHECK_FALSE(kAspectRatioSet.Contains(std::string(100, 'a')));
}

TEST_CASE("spec: a short word holds the size, so texts that differ only by NULs differ") {
  CHECK(ShortWord("") == 0);
  CHECK(ShortWord("a") != ShortWord(std::string("a\0", 2)));
  CHECK(ShortWord("ab") != ShortWord("ba"));
}

TEST_CASE("spec: a resolution's position in the list") {
  CHECK(ResolutionIndex("1K") == 0);
  CHECK(ResolutionIndex("2K") == 1);
  CHECK(ResolutionIndex("4K") == 2);
  CHECK(ResolutionIndex("3K") == -1);
  CHECK(ResolutionIndex("1k") == -1);
  CHECK(ResolutionIndex("") == -1);
  CHECK(ResolutionIndex("1K ") == -1);
}

}  // namespace
}  // namespace nanobatch::api
