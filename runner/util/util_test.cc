#include <doctest/doctest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runner/util/did_you_mean.h"
#include "runner/util/huge_pages.h"
#include "runner/util/input_error.h"
#include "runner/util/json_arena.h"
#include "runner/util/random_token.h"
#include "runner/util/sha256.h"
#include "runner/util/utf8.h"

namespace nanobatch::util {
namespace {

TEST_CASE("json arena: values parsed into it are whole, also past its buffer") {
  JsonArena<256> arena;
  const std::string big(10'000, 'x');  // spills past the buffer to the heap
  boost::json::error_code error;
  const boost::json::value value = boost::json::parse(
      R"({"small":"cat","big":")" + big + R"(","list":[1,2,3]})", error, arena.storage());
  REQUIRE_FALSE(error);
  CHECK(value.storage().get() == arena.storage().get());
  CHECK(value.at("small").as_string() == "cat");
  CHECK(value.at("big").as_string() == big);
  CHECK(value.at("list").as_array().size() == 3);
}

TEST_CASE("utf8: counts code points, not bytes") {
  CHECK(CountCodePoints("") == 0u);
  CHECK(CountCodePoints("cat") == 3u);
  CHECK(CountCodePoints("猫戴墨镜") == 4u);          // 3 bytes each
  CHECK(CountCodePoints("é") == 1u);                 // 2 bytes
  CHECK(CountCodePoints("\xF0\x9F\x90\xB1") == 1u);  // U+1F431, 4 bytes
}

TEST_CASE("utf8: long texts are counted eight bytes at a time, exactly") {
  // Past 255 words (2,040 bytes) the per-lane tallies are summed and restarted.
  std::string text;
  std::size_t expected = 0;
  for (int i = 0; i < 1500; ++i) {
    text += (i % 3 == 0) ? "猫" : (i % 3 == 1) ? "é" : "a";
    ++expected;
  }
  text += "\xF0\x9F\x90\xB1";
  ++expected;
  CHECK(CountCodePoints(text) == expected);
  CHECK(CountCodePoints(std::string_view(text).substr(0, text.size() - 4)) == expected - 1);
  for (std::size_t cut = text.size() - 3; cut < text.size(); ++cut) {
    CHECK_FALSE(CountCodePoints(std::string_view(text).substr(0, cut)).has_value());  // cut short
  }
  CHECK(CountCodePoints(std::string(5000, 'x')) == 5000u);
  CHECK_FALSE(CountCodePoints(std::string(3000, 'x') + "\xC0\xAF").has_value());  // overlong
}

TEST_CASE("utf8: malformed input is rejected") {
  CHECK_FALSE(CountCodePoints("\xff").has_value());
  CHECK_FALSE(CountCodePoints("\x80").has_value());              // lone continuation
  CHECK_FALSE(CountCodePoints("\xE7\x8C").has_value());          // truncated
  CHECK_FALSE(CountCodePoints("\xC0\xAF").has_value());          // overlong '/'
  CHECK_FALSE(CountCodePoints("\xED\xA0\x80").has_value());      // surrogate U+D800
  CHECK_FALSE(CountCodePoints("\xF4\x90\x80\x80").has_value());  // above U+10FFFF
}

TEST_CASE("sha256: known vectors, one-shot and incremental agree") {
  CHECK(Sha256::HexOf("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(Sha256::HexOf("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 incremental;
  incremental.Update("a");
  incremental.Update("bc");
  CHECK(incremental.FinishHex() == Sha256::HexOf("abc"));
}

TEST_CASE("sha256: the one-shot context is reset between calls; AppendHex formats a prefix") {
  // A long input first, then a short one: state left over from the first would change the second.
  const std::string million_a(1000000, 'a');
  CHECK(Sha256::HexOf(million_a) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  CHECK(Sha256::HexOf("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 unfinished;  // an incremental hash in progress does not share the one-shot context
  unfinished.Update("a");
  CHECK(Sha256::HexOf("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  unfinished.Update("bc");
  CHECK(unfinished.FinishHex() == Sha256::HexOf("abc"));

  std::string id = "item-";
  Sha256::AppendHex(Sha256::Of("abc"), 8, id);
  CHECK(id == "item-ba7816bf8f01cfea");
}

TEST_CASE("huge pages: large blocks are aligned, zeroed and whole; small ones are ordinary") {
  // Large: one huge page and a bit, so the rounding up to whole pages is used too.
  const std::size_t large = kHugePageBytes + 4096;
  void* block = AllocateHugePages(large);
  REQUIRE(block != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(block) % kHugePageBytes == 0);
  auto* bytes = static_cast<unsigned char*>(block);
  CHECK(std::all_of(bytes, bytes + large, [](unsigned char b) { return b == 0; }));
  std::memset(bytes, 0xAB, large);  // every byte writable: a fault here fails the test
  CHECK(bytes[large - 1] == 0xAB);
  FreeHugePages(block, large);

  // A vector growing through small and large sizes keeps its contents.
  std::vector<std::uint64_t, HugePageAllocator<std::uint64_t>> values;
  for (std::uint64_t i = 0; i < 600'000; ++i) values.push_back(i * 7);  // 4.8 MB at the end
  bool all_kept = true;
  for (std::uint64_t i = 0; i < values.size(); ++i) all_kept &= values[i] == i * 7;
  CHECK(all_kept);
  values.clear();
  values.shrink_to_fit();

  HugePageBuffer small(100);
  std::memset(small.data(), 1, small.size());
  CHECK(small.size() == 100);
  HugePageBuffer window((4 << 20) + 64);
  CHECK(reinterpret_cast<std::uintptr_t>(window.data()) % kHugePageBytes == 0);
  window.data()[window.size() - 1] = 'x';
  CHECK(window.data()[window.size() - 1] == 'x');
}

TEST_CASE("did you mean: the one close name, ignoring case; nothing when none or two are close") {
  CHECK(EditDistance("resolutoin", "resolution") == 1);  // two neighbours swapped: one edit
  CHECK(EditDistance("PROMPT", "prompt") == 0);
  CHECK(EditDistance("", "id") == 2);
  CHECK(EditDistance("kitten", "sitting") == 3);
  CHECK(EditDistance(std::string(65, 'a'), "a") == 65);  // no key is that long

  const std::vector<std::string_view> keys = {
      "id", "prompt", "resolution", "aspect_ratio", "output_format", "image_urls", "meta"};
  CHECK(DidYouMean("resolutoin", keys) == "resolution");
  CHECK(DidYouMean("promt", keys) == "prompt");
  CHECK(DidYouMean("Prompt", keys) == "prompt");
  CHECK(DidYouMean("aspectratio", keys) == "aspect_ratio");
  CHECK(DidYouMean("image_url", keys) == "image_urls");
  CHECK(DidYouMean("ID", keys) == "id");
  CHECK_FALSE(DidYouMean("colour", keys).has_value());  // nothing close
  CHECK_FALSE(DidYouMean("size", keys).has_value());
  CHECK_FALSE(DidYouMean("", keys).has_value());
  CHECK_FALSE(DidYouMean("ab", std::vector<std::string_view>{"ac", "ad"}).has_value());  // a tie
  CHECK(DidYouMeanSuffix("promt", keys) == " (did you mean \"prompt\"?)");
  CHECK(DidYouMeanSuffix("colour", keys).empty());
}

// The plain definition, for checking the bounded search against: optimal string alignment
// distance ignoring ASCII case, over the whole table.
std::size_t ReferenceDistance(std::string_view a, std::string_view b) {
  auto fold = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = fold(a[i - 1]) == fold(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) && fold(a[i - 2]) == fold(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

TEST_CASE("did you mean: the bounded search picks what the plain definition picks") {
  const std::vector<std::string_view> keys = {"limits.rate",
                                              "limits.burst",
                                              "limits.max_in_flight",
                                              "limits",
                                              "retry",
                                              "retry.base_delay_s",
                                              "retry.max_delay_s",
                                              "polling",
                                              "prompt",
                                              "id",
                                              "ab",
                                              "ba",
                                              "abc"};
  std::mt19937 random(7);
  int suggested = 0;
  for (int round = 0; round < 3000; ++round) {
    // A key with a few random edits, or random letters.
    std::string typed(keys[random() % keys.size()]);
    const int edits = static_cast<int>(random() % 5);
    for (int e = 0; e < edits && !typed.empty(); ++e) {
      const std::size_t at = random() % typed.size();
      switch (random() % 4) {
        case 0:
          typed.erase(at, 1);
          break;
        case 1:
          typed.insert(at, 1, static_cast<char>('a' + random() % 26));
          break;
        case 2:
          typed[at] = static_cast<char>('a' + random() % 26);
          break;
        default:
          if (at + 1 < typed.size()) std::swap(typed[at], typed[at + 1]);
      }
    }
    CAPTURE(typed);
    std::optional<std::string_view> expected;
    if (!typed.empty()) {
      const std::size_t allowed = std::clamp<std::size_t>(typed.size() / 5, 1, 3);
      std::size_t best = allowed + 1;
      int at_best = 0;
      for (std::string_view key : keys) {
        const std::size_t distance = ReferenceDistance(typed, key);
        CHECK(EditDistance(typed, key) == distance);
        if (distance < best) {
          best = distance;
          at_best = 1;
          expected = key;
        } else if (distance == best) {
          ++at_best;
        }
      }
      if (at_best != 1) expected.reset();
    }
    CHECK(DidYouMean(typed, keys) == expected);
    suggested += expected.has_value();
  }
  CHECK(suggested > 1000);  // the test exercises suggestions, not only refusals
}

TEST_CASE("input errors: format is FILE:LINE: field: message, and the cap counts the rest") {
  CHECK(InputError{"m.jsonl", 3, "prompt", "is empty"}.Format() == "m.jsonl:3: prompt: is empty");
  CHECK(InputError{"config.yaml", 0, "", "cannot open"}.Format() == "config.yaml: -: cannot open");
  InputErrors errors(2);
  for (int i = 1; i <= 5; ++i) errors.Add({"f", i, "id", "bad"});
  CHECK(errors.total() == 5);
  CHECK(errors.stored().size() == 2);
  std::ostringstream out;
  errors.Print(out);
  CHECK(out.str() == "f:1: id: bad\nf:2: id: bad\n... and 3 more errors\n");
}

TEST_CASE("random tokens: 128 bits as 32 hex digits, never repeated") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string token = RandomToken();
    CHECK(token.size() == 32);
    CHECK(token.find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(token);
  }
  CHECK(seen.size() == 1000);
}

}  // namespace
}  // namespace nanobatch::util
