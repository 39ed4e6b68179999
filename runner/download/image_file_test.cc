#include "runner/download/image_file.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>

#include "runner/testing/temp_dir.h"
#include "runner/util/sha256.h"
#include "tools/fake_api/image_gen.h"

namespace nanobatch::download {
namespace {

std::unique_ptr<fs::OutputDir> OpenOut(const testing::TempDir& dir) {
  std::string error;
  auto out = fs::OutputDir::Open(dir.File("out"), true, error);
  REQUIRE(out);
  return out;
}

bool TempIsEmpty(const testing::TempDir& dir) {
  return std::filesystem::is_empty(dir.File("out/.nanobatch/tmp"));
}

TEST_CASE("image file: streamed bytes are hashed and renamed by their real type") {
  testing::TempDir dir;
  auto out = OpenOut(dir);
  const std::string png = fake_api::MakePng({20, 20}, 1);
  std::string file_name, error;
  {
    ImageFile file(*out);
    REQUIRE(file.ok());
    CHECK(file.Write(png.data(), 5));
    CHECK(file.Write(png.data() + 5, png.size() - 5));
    REQUIRE(file.Check(error) == ImageFile::Committed::kOk);
    CHECK(::fsync(file.fd()) == 0);  // what disk::FileSyncs does for a file alone
    REQUIRE(file.Publish("cat", file_name, error) == ImageFile::Committed::kOk);
    CHECK(file.sha256() == util::Sha256::HexOf(png));
    CHECK(file.bytes() == png.size());
  }
  CHECK(file_name == "cat.png");
  CHECK(dir.Read("out/cat.png") == png);
  CHECK(FileSha256(out->fd(), "cat.png") == util::Sha256::HexOf(png));
  CHECK(TempIsEmpty(dir));
}

TEST_CASE("image file: a body that is not an image, or is cut short, never gets a final name") {
  testing::TempDir dir;
  auto out = OpenOut(dir);
  std::string file_name, error;
  {
    ImageFile file(*out);
    const std::string html = "<html>502 Bad Gateway</html>";
    file.Write(html.data(), html.size());
    CHECK(file.Check(error) == ImageFile::Committed::kNotAnImage);
  }
  {
    ImageFile file(*out);
    const std::string png = fake_api::MakePng({20, 20}, 2);
    file.Write(png.data(), png.size() - 50);
    CHECK(file.Check(error) == ImageFile::Committed::kIncomplete);
    CHECK(error.find("IEND") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(dir.File("out/dog.png")));
  CHECK(TempIsEmpty(dir));
}

TEST_CASE("image file: a link planted under the final name is replaced, its target untouched") {
  testing::TempDir dir;
  auto out = OpenOut(dir);
  const std::string victim = dir.Write("victim.txt", "precious");
  std::filesystem::create_symlink(victim, dir.File("out/cat.jpg"));
  const std::string jpeg = fake_api::MakeJpeg({20, 20}, 3);
  std::string file_name, error;
  ImageFile file(*out);
  file.Write(jpeg.data(), jpeg.size());
  REQUIRE(file.Check(error) == ImageFile::Committed::kOk);
  REQUIRE(file.Publish("cat", file_name, error) == ImageFile::Committed::kOk);
  CHECK_FALSE(std::filesystem::is_symlink(dir.File("out/cat.jpg")));
  CHECK(dir.Read("victim.txt") == "precious");
}

TEST_CASE("image file: an abandoned download leaves nothing behind") {
  testing::TempDir dir;
  auto out = OpenOut(dir);
  {
    ImageFile file(*out);
    file.Write("\x89PNG", 4);
  }
  CHECK(TempIsEmpty(dir));
}

}  // namespace
}  // namespace nanobatch::download
