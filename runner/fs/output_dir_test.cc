#include "runner/fs/output_dir.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

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
  // A reader given a directory that holds no run is told so, not "cannot open DIR/.nanobatch".
  stdfs::create_directories(dir.File("not_a_run"));
  CHECK_FALSE(OutputDir::Open(dir.File("not_a_run"), false, error, &problem));
  CHECK(error == dir.File("not_a_run") +
                     " holds no nanobatch run (no .nanobatch/ in it): give the --out of a run");
  CHECK_FALSE(stdfs::exists(dir.File("not_a_run/.nanobatch")));  // a reader creates nothing
}

TEST_CASE("output dir: ListNames gives a directory's names, without . and .., from its start") {
  testing::TempDir dir;
  stdfs::create_directories(dir.File("list"));
  dir.Write("list/a", "x");
  dir.Write("list/b", "y");
  const int fd = ::open(dir.File("list").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  for (int pass = 0; pass < 2; ++pass) {  // a second listing of the same descriptor is whole
    auto names = ListNames(fd);
    REQUIRE(names);
    std::sort(names->begin(), names->end());
    CHECK(*names == std::vector<std::string>{"a", "b"});
  }
  ::close(fd);
  const int file = ::open(dir.File("list/a").c_str(), O_RDONLY | O_CLOEXEC);
  CHECK_FALSE(ListNames(file));
  ::close(file);
}

TEST_CASE("output dir: missing parents are created (--out out/shard-0 in a fresh checkout)") {
  testing::TempDir dir;
  std::string error;
  auto out = OutputDir::Open(dir.File("runs/night/shard-0"), true, error);
  REQUIRE_MESSAGE(out, error);
  CHECK(stdfs::is_directory(dir.File("runs/night/shard-0/.nanobatch")));
  // A reader creates nothing, parents included.
  CHECK_FALSE(OutputDir::Open(dir.File("other/shard-1"), false, error));
  CHECK_FALSE(stdfs::exists(dir.File("other")));
  // A parent that is a file is an error, not a crash.
  dir.Write("plain", "x");
  OpenProblem problem = OpenProblem::kNone;
  CHECK_FALSE(OutputDir::Open(dir.File("plain/sub/out"), true, error, &problem));
  CHECK(error.find("Not a directory") != std::string::npos);
  CHECK(problem == OpenProblem::kNotADirectory);  // the user's to fix (exit 2), not the disk's
  problem = OpenProblem::kNone;
  CHECK_FALSE(OutputDir::Open(dir.File("plain/out"), true, error, &problem));
  CHECK(problem == OpenProblem::kNotADirectory);
  CHECK_FALSE(MakeParentDirectories(dir.File("plain/sub/out"), error));
  CHECK(error.find("cannot create " + dir.File("plain/sub")) != std::string::npos);
  CHECK(MakeParentDirectories("relative-without-parent", error));
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

TEST_CASE("output dir: published names are plain or in one numbered shard directory") {
  CHECK(IsPublishedName("cat.png"));
  CHECK(IsPublishedName("00042/cat.png"));
  CHECK_FALSE(IsPublishedName("../cat.png"));
  CHECK_FALSE(IsPublishedName("00042/../cat.png"));
  CHECK_FALSE(IsPublishedName("00042/sub/cat.png"));
  CHECK_FALSE(IsPublishedName("abc/cat.png"));
  CHECK_FALSE(IsPublishedName("/cat.png"));
  CHECK_FALSE(IsPublishedName("00042/"));
  auto parts = SplitPublishedName("00042/cat.png");
  REQUIRE(parts);
  CHECK(parts->shard == "00042");
  CHECK(parts->file == "cat.png");
  CHECK(ShardName(42) == "00042");
  CHECK(ShardName(123456) == "123456");
}

TEST_CASE("output dir: shard directories are made once, opened without following links") {
  testing::TempDir dir;
  std::string error;
  auto out = OutputDir::Open(dir.File("out"), /*create=*/true, error);
  REQUIRE_MESSAGE(out, error);
  bool created = false;
  const int shard = out->ShardFd(3, created, error);
  REQUIRE(shard >= 0);
  CHECK(created);
  CHECK(out->ShardFd(3, created, error) == shard);
  CHECK_FALSE(created);
  CHECK(stdfs::is_directory(dir.File("out/00003")));
  dir.Write("out/00003/a.png", "png bytes");
  struct stat info;
  CHECK(StatPublished(out->fd(), "00003/a.png", info));
  CHECK(info.st_size == 9);
  const int fd = OpenPublished(out->fd(), "00003/a.png");
  CHECK(fd >= 0);
  ::close(fd);

  // A shard directory planted as a link elsewhere is neither read nor written through.
  stdfs::create_directory(dir.File("elsewhere"));
  dir.Write("elsewhere/a.png", "secret");
  stdfs::create_directory_symlink(dir.File("elsewhere"), dir.File("out/00007"));
  CHECK(OpenPublished(out->fd(), "00007/a.png") < 0);
  CHECK_FALSE(StatPublished(out->fd(), "00007/a.png", info));
  CHECK(out->ShardFd(7, created, error) < 0);
  CHECK(error.find("a link there is refused") != std::string::npos);
  CHECK(OpenPublished(out->fd(), "../out/00003/a.png") < 0);
}

}  // namespace
}  // namespace nanobatch::fs
