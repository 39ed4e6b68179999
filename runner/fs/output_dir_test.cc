#include "runner/fs/output_dir.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "runner/testing/temp_dir.h"

namespace nanobatch::fs {
namespace {

namespace stdfs = std::filesystem;

TEST_CASE("output dir: created with its state directories; a file as --out is a usage error") {
  testing::TempDir dir;
  std::string error;
  auto out = OutputDir::Open(dir.File("out"), true, error);
  REQUIRE(out);
  CHECK(stdfs::is_directory(dir.File("out/.nanobatch/tmp")));
  // The state (journal, unfinished downloads) is the owner's alone.
  for (const char* state : {"out/.nanobatch", "out/.nanobatch/tmp"}) {
    CAPTURE(state);
    CHECK((stdfs::status(dir.File(state)).permissions() & stdfs::perms::all) ==
          stdfs::perms::owner_all);
  }
  OpenProblem problem;
  CHECK_FALSE(OutputDir::Open(dir.Write("file", "x"), true, error, &problem));
  CHECK(problem == OpenProblem::kNotADirectory);
  CHECK(error.find("is not a directory") != std::string::npos);
  CHECK_FALSE(OutputDir::Open(dir.File("missing"), false, error, &problem));
  CHECK(problem == OpenProblem::kIo);
}

TEST_CASE(
    "output dir: a link planted as .nanobatch/tmp is refused, and nothing outside is touched") {
  testing::TempDir dir;
  stdfs::create_directories(dir.File("victim"));
  const std::string victim = dir.Write("victim/keep.txt", "precious");
  stdfs::create_directories(dir.File("out/.nanobatch"));
  stdfs::create_directory_symlink(dir.File("victim"), dir.File("out/.nanobatch/tmp"));
  std::string error;
  OpenProblem problem;
  CHECK_FALSE(OutputDir::Open(dir.File("out"), true, error, &problem));
  CHECK(problem == OpenProblem::kNotADirectory);
  CHECK(error.find("symbolic link") != std::string::npos);
  CHECK(stdfs::exists(victim));
}

TEST_CASE("output dir: clearing tmp removes planted links, never their targets") {
  testing::TempDir dir;
  const std::string victim = dir.Write("victim.txt", "precious");
  std::string error;
  auto out = OutputDir::Open(dir.File("out"), true, error);
  REQUIRE(out);
  stdfs::create_symlink(victim, dir.File("out/.nanobatch/tmp/x.part"));
  dir.Write("out/.nanobatch/tmp/y.part", "leftover");
  REQUIRE(out->ClearTemporary(error));
  CHECK(stdfs::is_empty(dir.File("out/.nanobatch/tmp")));
  CHECK(dir.Read("victim.txt") == "precious");
}

TEST_CASE("output dir: files are written through links, never: the link is replaced") {
  testing::TempDir dir;
  const std::string victim = dir.Write("victim.txt", "precious");
  std::string error;
  auto out = OutputDir::Open(dir.File("out"), true, error);
  REQUIRE(out);
  stdfs::create_symlink(victim, dir.File("out/metadata.jsonl"));
  stdfs::create_symlink(victim, dir.File("out/failed.jsonl.tmp"));
  REQUIRE(WriteFileAtomically(out->fd(), "metadata.jsonl", "new\n", kPublishedFileMode, error));
  CHECK_FALSE(stdfs::is_symlink(dir.File("out/metadata.jsonl")));
  CHECK(dir.Read("out/metadata.jsonl") == "new\n");
  // A link with the temporary's name makes the write fail rather than follow it.
  CHECK_FALSE(WriteFileAtomically(out->fd(), "failed.jsonl", "x", kPublishedFileMode, error));
  CHECK(dir.Read("victim.txt") == "precious");
  CHECK(OpenFileAt(out->fd(), "../escape", O_WRONLY | O_CREAT) < 0);
  CHECK_FALSE(IsPlainName(".."));
  CHECK_FALSE(IsPlainName("a/b"));
  CHECK(IsPlainName("a.png"));
}

}  // namespace
}  // namespace nanobatch::fs
