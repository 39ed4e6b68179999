#include "runner/download/image_file.h"

#include <doctest/doctest.h>

#include <filesystem>

#include "runner/testing/temp_dir.h"
#include "runner/util/sha256.h"

namespace nanobatch::download {
namespace {

const std::string kPng("\x89PNG\r\n\x1a\n rest of a png", 22);

TEST_CASE("image file: magic bytes decide the type") {
  CHECK(DetectImageType(kPng) == "png");
  CHECK(DetectImageType("\xFF\xD8\xFF\xE0 jfif") == "jpg");
  CHECK(DetectImageType(std::string_view("RIFF\x10\0\0\0WEBPVP8 ", 16)) == "webp");
  CHECK(DetectImageType("<html>error</html>") == "");
  CHECK(DetectImageType("") == "");
}

TEST_CASE("image file: streamed bytes are hashed and renamed by their real type") {
  testing::TempDir dir;
  std::string file_name, error;
  {
    ImageFile file(dir.File("x.part"));
    REQUIRE(file.ok());
    CHECK(file.Write(kPng.data(), 5));
    CHECK(file.Write(kPng.data() + 5, kPng.size() - 5));
    REQUIRE(file.Commit(dir.path(), "cat", file_name, error));
    CHECK(file.sha256() == util::Sha256::HexOf(kPng));
    CHECK(file.bytes() == kPng.size());
  }
  CHECK(file_name == "cat.png");
  CHECK(dir.Read("cat.png") == kPng);
  CHECK_FALSE(std::filesystem::exists(dir.File("x.part")));
}

TEST_CASE("image file: a body that is not an image never gets a final name") {
  testing::TempDir dir;
  std::string file_name, error;
  {
    ImageFile file(dir.File("y.part"));
    const std::string html = "<html>502 Bad Gateway</html>";
    file.Write(html.data(), html.size());
    CHECK_FALSE(file.Commit(dir.path(), "dog", file_name, error));
    CHECK(error.find("not a PNG, JPEG or WebP") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(dir.File("y.part")));  // cleaned up
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("image file: an abandoned download leaves nothing behind") {
  testing::TempDir dir;
  {
    ImageFile file(dir.File("z.part"));
    file.Write(kPng.data(), 4);
  }
  CHECK(std::filesystem::is_empty(dir.path()));
}

}  // namespace
}  // namespace nanobatch::download
