#include "runner/manifest/item.h"

#include <doctest/doctest.h>

#include <string>

#include "runner/util/sha256.h"

namespace nanobatch::manifest {
namespace {

std::string Repeat(std::string_view unit, std::size_t times) {
  std::string out;
  out.reserve(unit.size() * times);
  for (std::size_t i = 0; i < times; ++i) out += unit;
  return out;
}

std::optional<Item> Validate(RawItem raw, util::InputErrors& errors) {
  return ValidateItem(std::move(raw), ItemDefaults{}, {"m.jsonl", 7}, errors);
}

TEST_CASE("item: a minimal item gets the defaults and a derived id") {
  util::InputErrors errors;
  RawItem raw;
  raw.prompt = "a cat wearing sunglasses";
  auto item = Validate(raw, errors);
  REQUIRE(item);
  CHECK(errors.empty());
  CHECK(item->resolution == "1K");
  CHECK(item->aspect_ratio == "auto");
  CHECK(item->output_format == "jpg");
  CHECK(item->id_derived);
  CHECK(item->id.rfind("item-", 0) == 0);
  CHECK(item->id.size() == 21);
  CHECK(item->line == 7);
}

TEST_CASE("item: Chinese prompt of exactly 20,000 code points is accepted, 20,001 is not") {
  util::InputErrors errors;
  RawItem at_limit;
  at_limit.prompt = Repeat("猫", 20000);  // 60,000 bytes
  CHECK(Validate(at_limit, errors));
  CHECK(errors.empty());

  RawItem over;
  over.prompt = Repeat("猫", 20001);
  CHECK_FALSE(Validate(over, errors));
  REQUIRE(errors.total() == 1);
  CHECK(errors.stored()[0].field == "prompt");
  CHECK(errors.stored()[0].message.find("20001") != std::string::npos);
}

TEST_CASE("item: empty, missing and non-UTF-8 prompts are errors") {
  util::InputErrors errors;
  CHECK_FALSE(Validate(RawItem{}, errors));
  RawItem empty;
  empty.prompt = "";
  CHECK_FALSE(Validate(empty, errors));
  RawItem bad_utf8;
  bad_utf8.prompt = "cat \xff";
  CHECK_FALSE(Validate(bad_utf8, errors));
  RawItem blank;
  blank.prompt = " \t\r\n ";
  CHECK_FALSE(Validate(blank, errors));
  REQUIRE(errors.total() == 4);
  CHECK(errors.stored()[0].Format() == "m.jsonl:7: prompt: is required");
  CHECK(errors.stored()[1].message == "is empty");
  CHECK(errors.stored()[2].message == "is not valid UTF-8");
  CHECK(errors.stored()[3].message == "is only whitespace");
  // Blanks around words are the prompt's own business.
  CHECK_FALSE(CheckPrompt(" a cat "));
  CHECK_FALSE(CheckPrompt("\u3000"));  // an ideographic space is a character the API may read
}

TEST_CASE("item: every allowed resolution, aspect ratio and format passes; others fail") {
  for (const char* value : {"1K", "2K", "4K"}) CHECK_FALSE(CheckResolution(value));
  for (const char* value : {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
                            "1:4", "4:1", "1:8", "8:1", "auto"}) {
    CHECK_FALSE(CheckAspectRatio(value));
  }
  for (const char* value : {"jpg", "png"}) CHECK_FALSE(CheckOutputFormat(value));
  CHECK(CheckResolution("1k"));
  CHECK(CheckResolution("8K"));
  CHECK(CheckAspectRatio("17:9"));
  CHECK(CheckAspectRatio("AUTO"));
  CHECK(CheckOutputFormat("jpeg"));
  CHECK(CheckOutputFormat("webp"));
}

TEST_CASE("item: a near miss stays an error and names the value it most likely meant") {
  CHECK(CheckResolution("2k") == "\"2k\" is not one of 1K 2K 4K (did you mean \"2K\"?)");
  CHECK(CheckAspectRatio("16x9")->ends_with("(did you mean \"16:9\"?)"));
  CHECK(CheckAspectRatio(" 9/16 ")->ends_with("(did you mean \"9:16\"?)"));
  CHECK(CheckAspectRatio("AUTO")->ends_with("(did you mean \"auto\"?)"));
  CHECK(CheckOutputFormat("JPEG")->ends_with("(did you mean \"jpg\"?)"));
  CHECK(CheckOutputFormat("PNG")->ends_with("(did you mean \"png\"?)"));
  // Nothing close: no guess.
  CHECK(CheckOutputFormat("webp") == "\"webp\" is not one of jpg png");
  CHECK(CheckResolution("8K")->find("did you mean") == std::string::npos);
  CHECK(CheckAspectRatio("17:9")->find("did you mean") == std::string::npos);
  CHECK(CheckResolution(" ")->find("did you mean") == std::string::npos);
}

TEST_CASE("item: all bad fields of one item are reported together") {
  util::InputErrors errors;
  RawItem raw;
  raw.prompt = "x";
  raw.resolution = "3K";
  raw.aspect_ratio = "7:5";
  raw.output_format = "gif";
  raw.id = ".hidden";
  CHECK_FALSE(Validate(raw, errors));
  CHECK(errors.total() == 4);
}

TEST_CASE("item: id syntax") {
  CHECK_FALSE(CheckId("cat-001"));
  CHECK_FALSE(CheckId("A.b_c-9"));
  CHECK_FALSE(CheckId(std::string(128, 'a')));
  CHECK(CheckId(""));
  CHECK(CheckId(std::string(129, 'a')));
  CHECK(CheckId(".dot"));
  CHECK(CheckId("a/b"));
  CHECK(CheckId("../etc"));
  CHECK(CheckId("has space"));
  CHECK(CheckId("猫"));
}

TEST_CASE("item: image_urls: at most 14, each an absolute http(s) URL") {
  util::InputErrors errors;
  RawItem ok;
  ok.prompt = "edit this";
  ok.image_urls = std::vector<std::string>(14, "https://example.com/a.png");
  CHECK(Validate(ok, errors));
  CHECK(errors.empty());

  RawItem too_many = ok;
  too_many.image_urls->push_back("http://example.com/b.png");
  CHECK_FALSE(Validate(too_many, errors));
  CHECK(errors.stored().back().message.find("15 URLs") != std::string::npos);

  for (const char* bad :
       {"ftp://example.com/a.png", "example.com/a.png", "file:///etc/passwd", "https://",
        "not a url", "https://example.com:99999/a.png", "https://example.com:0/a.png"}) {
    RawItem one;
    one.prompt = "edit";
    one.image_urls = std::vector<std::string>{bad};
    util::InputErrors these;
    CHECK_MESSAGE(!Validate(one, these), bad);
    REQUIRE(these.total() == 1);
    CHECK(these.stored()[0].field == "image_urls[0]");
  }
}

TEST_CASE("item: derived ids are stable and follow every field sent to the API") {
  Item item;
  item.prompt = "a cat";
  item.resolution = "1K";
  item.aspect_ratio = "auto";
  item.output_format = "jpg";
  // Pinned: a derived id must never change between releases, or a resumed run would pay again.
  CHECK(DeriveId(item) == DeriveId(item));
  const std::string pinned = DeriveId(item);
  CHECK(pinned == "item-" + ContentHash(item).substr(0, 16));
  // The literal, computed independently (Python's hashlib over the canonical encoding) and by
  // the release before the encoder was rewritten: it must not move.
  CHECK(pinned == "item-4c5ad0d1a1a04837");

  Item other = item;
  other.resolution = "2K";
  CHECK(DeriveId(other) != pinned);
  other = item;
  other.image_urls.push_back("https://example.com/a.png");
  CHECK(DeriveId(other) == "item-257e1136c6ed8882");
  other = item;
  other.prompt = "a cat ";
  CHECK(DeriveId(other) != pinned);
  // The id itself and the line are not content.
  other = item;
  other.line = 99;
  other.id = "named";
  CHECK(DeriveId(other) == pinned);
}

TEST_CASE("item: the canonical encoding is pinned across releases") {
  Item item;
  item.prompt = "a cat wearing sunglasses on a beach, digital art";
  item.resolution = "1K";
  item.aspect_ratio = "16:9";
  item.output_format = "png";
  // Computed once from the documented encoding; changing it would re-pay every derived item.
  CHECK(ContentHash(item) ==
        util::Sha256::HexOf("nanobatch-item-v1\n"
                            "prompt=48:a cat wearing sunglasses on a beach, digital art\n"
                            "resolution=2:1K\naspect_ratio=4:16:9\noutput_format=3:png\n"));
}

}  // namespace
}  // namespace nanobatch::manifest
