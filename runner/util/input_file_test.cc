#include "runner/util/input_file.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>

#include "runner/testing/temp_dir.h"

namespace nanobatch::util {
namespace {

TEST_CASE("input file: a regular file within the cap is read whole") {
  testing::TempDir dir;
  const std::string path = dir.Write("a.txt", "hello");
  std::string text, error;
  REQUIRE(ReadInputFile(path, 100, text, error));
  CHECK(text == "hello");
}

TEST_CASE("input file: directories, devices, FIFOs, missing and oversized files are refused") {
  testing::TempDir dir;
  std::string text, error;
  CHECK_FALSE(ReadInputFile(dir.path(), 100, text, error));
  CHECK(error.find("is a directory") != std::string::npos);
  CHECK_FALSE(ReadInputFile("/dev/zero", 100, text, error));
  CHECK(error.find("not a regular file") != std::string::npos);
  const std::string fifo = dir.File("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_FALSE(ReadInputFile(fifo, 100, text, error));  // returns at once: no writer is awaited
  CHECK(error.find("not a regular file") != std::string::npos);
  CHECK(error.find("a pipe cannot be read again") != std::string::npos);
  CHECK_FALSE(ReadInputFile("-", 100, text, error));  // "-" is a file name, not standard input
  CHECK(error.find("standard input cannot be read as a file here") != std::string::npos);
  CHECK_FALSE(ReadInputFile("", 100, text, error));
  CHECK(error == "cannot open: the path is empty");
  CHECK_FALSE(ReadInputFile(dir.File("missing"), 100, text, error));
  CHECK(error.find("No such file") != std::string::npos);
  CHECK_FALSE(ReadInputFile(dir.Write("big", std::string(101, 'x')), 100, text, error));
  CHECK(error.find("larger than the 100 bytes") != std::string::npos);
}

}  // namespace
}  // namespace nanobatch::util
