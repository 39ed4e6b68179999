#include "runner/output/output_files.h"

#include <doctest/doctest.h>

#include "runner/journal/journal.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::output {
namespace {

// An item through to done, with one image.
void Done(journal::Journal& journal, const std::string& id) {
  proto::Record intent;
  intent.mutable_submit_intent()->set_item_id(id);
  intent.mutable_submit_intent()->set_prompt("prompt " + id);
  intent.mutable_submit_intent()->set_credits(16);
  intent.mutable_submit_intent()->set_attempt(1);
  journal.Append(intent);
  proto::Record submitted;
  submitted.mutable_submitted()->set_item_id(id);
  submitted.mutable_submitted()->set_task_id("task-" + id);
  submitted.mutable_submitted()->set_credits(16);
  journal.Append(submitted);
  proto::Record completed;
  completed.mutable_completed()->set_item_id(id);
  completed.mutable_completed()->add_urls("https://f.example/" + id + ".png");
  journal.Append(completed);
  proto::Record downloaded;
  downloaded.mutable_downloaded()->set_item_id(id);
  downloaded.mutable_downloaded()->set_file_name(id + ".png");
  downloaded.mutable_downloaded()->set_bytes(10);
  journal.Append(downloaded);
}

TEST_CASE("output files: rewritten at the start, appended during the run, synced at the end") {
  testing::TempDir dir;
  std::string error;
  auto journal = journal::Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(journal, error);
  Done(*journal, "a");
  OutputFiles outputs(journal->dir());
  REQUIRE(outputs.Rewrite(journal->state(), error));
  CHECK(dir.Read("metadata.jsonl").find("\"file_name\":\"a.png\"") != std::string::npos);
  Done(*journal, "b");
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
  Done(*journal, "a");
  OutputFiles outputs(journal->dir());  // never rewritten: its appends went nowhere
  outputs.AppendImage(*journal->state().Find("a"), journal->state().Find("a")->images(0));
  REQUIRE(outputs.Finish(journal->state(), error));
  CHECK(dir.Read("metadata.jsonl").find("\"file_name\":\"a.png\"") != std::string::npos);
}

}  // namespace
}  // namespace nanobatch::output
