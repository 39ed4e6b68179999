#include "runner/output/output_files.h"

#include <doctest/doctest.h>

#include "runner/journal/journal.h"
#include "runner/journal/test_records.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::output {
namespace {

TEST_CASE("output files: rewritten at the start, appended during the run, synced at the end") {
  testing::TempDir dir;
  std::string error;
  auto journal = journal::Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(journal, error);
  journal::AppendFinishedItem(*journal, "a");
  OutputFiles outputs(journal->dir());
  REQUIRE(outputs.Rewrite(journal->state(), error));
  CHECK(dir.Read("metadata.jsonl").find("\"file_name\":\"a.png\"") != std::string::npos);
  journal::AppendFinishedItem(*journal, "b");
  outputs.AppendImage(*journal->state().Find("b"), journal->state().Find("b")->images(0));
  REQUIRE(outputs.Finish(journal->state(), error));
  const std::string metadata = dir.Read("metadata.jsonl");
  CHECK(metadata.find("\"file_name\":\"a.png\"") < metadata.find("\"file_name\":\"b.png\""));
  CHECK(dir.Read("failed.jsonl").empty());
}

TEST_CASE("output files: the end of a run without working appends rewrites them whole") {
  testing::TempDir dir;
  std::string error;
  auto journal = journal::Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(journal, error);
  journal::AppendFinishedItem(*journal, "a");
  OutputFiles outputs(journal->dir());  // never rewritten: its appends went nowhere
  outputs.AppendImage(*journal->state().Find("a"), journal->state().Find("a")->images(0));
  REQUIRE(outputs.Finish(journal->state(), error));
  CHECK(dir.Read("metadata.jsonl").find("\"file_name\":\"a.png\"") != std::string::npos);
}

}  // namespace
}  // namespace nanobatch::output
