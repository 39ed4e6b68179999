#include "runner/download/image_check.h"

#include <doctest/doctest.h>

#include <string>

#include "tools/fake_api/image_gen.h"

namespace nanobatch::download {
namespace {

ImageVerdict CheckInPieces(const std::string& bytes, std::size_t piece) {
  ImageCheck check;
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    check.Feed(bytes.data() + at, std::min(piece, bytes.size() - at));
  }
  return check.Finish();
}

TEST_CASE("image check: magic bytes decide the type") {
  CHECK(DetectImageType(std::string("\x89PNG\r\n\x1a\n rest", 13)) == "png");
  CHECK(DetectImageType("\xFF\xD8\xFF\xE0 jfif") == "jpg");
  CHECK(DetectImageType(std::string_view("RIFF\x10\0\0\0WEBPVP8 ", 16)) == "webp");
  CHECK(DetectImageType("<html>error</html>") == "");
  CHECK(DetectImageType("") == "");
}

TEST_CASE("image check: real PNGs and JPEGs pass, however the stream is cut into pieces") {
  const std::string png = fake_api::MakePng({40, 24}, 7);
  const std::string jpeg = fake_api::MakeJpeg({40, 24}, 7);
  for (std::size_t piece : {1ul, 3ul, 7ul, 64ul, 100000ul}) {
    ImageVerdict p = CheckInPieces(png, piece);
    CHECK(p.kind == ImageVerdict::Kind::kComplete);
    CHECK(p.type == "png");
    ImageVerdict j = CheckInPieces(jpeg, piece);
    CHECK(j.kind == ImageVerdict::Kind::kComplete);
    CHECK(j.type == "jpg");
  }
}

TEST_CASE("image check: a PNG or JPEG cut short at any offset is incomplete, never complete") {
  const std::string png = fake_api::MakePng({16, 16}, 3);
  const std::string jpeg = fake_api::MakeJpeg({16, 16}, 3);
  for (std::size_t cut = 12; cut < png.size(); ++cut) {
    INFO("png cut at " << cut);
    CHECK(CheckInPieces(png.substr(0, cut), 5).kind == ImageVerdict::Kind::kIncomplete);
  }
  for (std::size_t cut = 12; cut < jpeg.size(); ++cut) {
    INFO("jpeg cut at " << cut);
    CHECK(CheckInPieces(jpeg.substr(0, cut), 5).kind != ImageVerdict::Kind::kComplete);
  }
  ImageVerdict short_png = CheckInPieces(png.substr(0, png.size() - 50), 64);
  CHECK(short_png.problem.find("IEND") != std::string::npos);
  CHECK(CheckInPieces(png + "trailing", 64).kind == ImageVerdict::Kind::kIncomplete);
}

TEST_CASE("image check: WebP size must match its RIFF header; non-images are named so") {
  std::string webp("RIFF\x0c\0\0\0WEBPVP8 \0\0\0\0", 20);  // declares 12 + 8 bytes
  CHECK(CheckInPieces(webp, 3).kind == ImageVerdict::Kind::kComplete);
  CHECK(CheckInPieces(webp.substr(0, 18), 3).kind == ImageVerdict::Kind::kIncomplete);
  CHECK(CheckInPieces("<html>502</html>", 4).kind == ImageVerdict::Kind::kNotAnImage);
}

}  // namespace
}  // namespace nanobatch::download
