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

TEST_CASE("output files: an item's own columns follow nanobatch's, never replacing one") {
  proto::ItemSnapshot item;
  item.set_item_id("cat");
  item.set_prompt("a cat");
  item.set_meta_json("{\"label\":\"cat\",\"score\":0.5,\"prompt\":\"forged\"}");
  proto::Downloaded image;
  image.set_file_name("cat.png");
  const std::string line = OutputFiles::MetadataLine(item, image);
  CHECK(line.find("\"prompt\":\"a cat\"") != std::string::npos);
  CHECK(line.find("forged") == std::string::npos);
  CHECK(line.find("\"image_index\":0,\"label\":\"cat\",\"score\":5E-1}") != std::string::npos);
  CHECK(OutputFiles::FailureLine(item).find("\"label\":\"cat\"") != std::string::npos);
  item.set_meta_json("[not an object");
  CHECK(OutputFiles::MetadataLine(item, image).find("not an object") == std::string::npos);
}

}  // namespace
}  // namespace nanobatch::output
