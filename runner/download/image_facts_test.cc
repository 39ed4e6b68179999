#include "runner/download/image_facts.h"

#include <doctest/doctest.h>

#include <string>

#include "tools/fake_api/image_gen.h"

namespace nanobatch::download {
namespace {

// Feeds `bytes` in pieces of `piece` bytes (1: a byte at a time).
std::optional<PixelSize> SizeOf(const std::string& bytes, std::size_t piece) {
  ImageDimensions dimensions;
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    const std::size_t n = std::min(piece, bytes.size() - at);
    dimensions.Feed(reinterpret_cast<const unsigned char*>(bytes.data()) + at, n);
  }
  return dimensions.size();
}

void CheckSize(const std::string& bytes, std::uint32_t width, std::uint32_t height) {
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, bytes.size()}) {
    auto size = SizeOf(bytes, piece);
    INFO("piece " << piece);
    REQUIRE(size);
    CHECK(size->width == width);
    CHECK(size->height == height);
  }
}

TEST_CASE("image facts: PNG and JPEG sizes from real encoders, in any split of the bytes") {
  const fake_api::ImageSize size{40, 24};
  CheckSize(fake_api::MakePng(size, 1), 40, 24);
  const std::string jpeg = fake_api::MakeJpeg(size, 2);
  CheckSize(jpeg, 40, 24);
  // A JPEG whose frame header comes after a 60 KB APP1 segment (EXIF, ICC profiles do that).
  std::string app1 = "\xFF\xE1";
  const std::uint32_t length = 60000;
  app1 += static_cast<char>(length >> 8);
  app1 += static_cast<char>(length & 0xFF);
  app1 += std::string(length - 2, 'x');
  CheckSize(jpeg.substr(0, 2) + app1 + jpeg.substr(2), 40, 24);
}

TEST_CASE("image facts: WebP sizes from VP8X, VP8L and VP8 headers") {
  auto riff = [](const std::string& chunk, const std::string& payload) {
    std::string out = "RIFF";
    out += std::string("\x40\0\0\0", 4) + "WEBP" + chunk;
    out += std::string("\x20\0\0\0", 4) + payload;
    out.resize(64, '\0');
    return out;
  };
  // VP8X: flags, 3 reserved bytes, then width - 1 and height - 1 in 24 bits each.
  CheckSize(riff("VP8X", std::string("\0\0\0\0", 4) + std::string("\x3F\x01\0", 3) +
                             std::string("\xEF\0\0", 3)),
            320, 240);
  // VP8L: the signature 0x2F, then 14 bits of width - 1 and 14 of height - 1.
  const std::uint32_t bits = (100 - 1) | ((50 - 1) << 14);
  std::string vp8l = "\x2F";
  for (int i = 0; i < 4; ++i) vp8l += static_cast<char>((bits >> (8 * i)) & 0xFF);
  CheckSize(riff("VP8L", vp8l), 100, 50);
  // VP8: a 3-byte frame tag, the start code 9D 01 2A, then 14-bit width and height.
  CheckSize(riff("VP8 ", std::string("\0\0\0\x9D\x01\x2A\x80\x02\xE0\x01", 10)), 640, 480);
}

TEST_CASE("image facts: bodies without a usable header give no size") {
  CHECK_FALSE(SizeOf("not an image at all, just some text that is long enough", 5));
  CHECK_FALSE(SizeOf(std::string("\xFF\xD8\xFF\xDA\0\x02", 6), 1));  // scan before any frame
  CHECK_FALSE(SizeOf(std::string("\xFF\xD8\xFF\xE0\0\x01", 6), 1));  // a length below 2
  CHECK_FALSE(SizeOf(std::string("\x89PNG\r\n\x1a\n", 8), 8));       // cut before IHDR
}

TEST_CASE("image facts: mismatches of format and aspect ratio are described, rounding is not") {
  CHECK(DescribeMismatch("png", "auto", "png", 1024, 1024) == "");
  CHECK(DescribeMismatch("png", "16:9", "png", 1344, 768) == "");  // 1.75 for 1.78: rounding
  CHECK(DescribeMismatch("jpg", "4:3", "jpg", 1184, 864) == "");   // 2.8% off
  CHECK(DescribeMismatch("png", "16:9", "png", 1024, 1024) ==
        "asked 16:9, received 1024x1024 (1:1)");
  CHECK(DescribeMismatch("png", "1:1", "jpg", 1024, 1024) == "asked png, received jpg");
  CHECK(DescribeMismatch("jpg", "9:16", "png", 1344, 768) ==
        "asked jpg, received png; asked 9:16, received 1344x768 (7:4)");
  CHECK(DescribeMismatch("png", "16:9", "png", 0, 0) == "");  // size unknown: nothing to say
}

}  // namespace
}  // namespace nanobatch::download
