#include "runner/output/output_files.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <memory>
#include <random>
#include <string>

#include "runner/journal/journal.h"
#include "runner/journal/test_records.h"
#include "runner/testing/temp_dir.h"
#include "runner/util/json_text.h"

namespace nanobatch::output {
namespace {

std::unique_ptr<journal::Journal> OpenJournal(const testing::TempDir& dir) {
  std::string error;
  auto journal = journal::Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(journal, error);
  return journal;
}

// An output directory with its journal and its output files (not rewritten yet).
struct Outputs {
  // Records item `id` as finished with its image ID.png, and queues the image's line.
  void Done(const std::string& id) {
    journal::AppendFinishedItem(*journal, id);
    files.AppendImage(*journal->state().Find(id), journal->state().Find(id)->images(0));
  }
  bool Rewrite() { return files.Rewrite(journal->state(), error); }
  bool Finish() { return files.Finish(journal->state(), error); }

  testing::TempDir dir;
  std::string error;
  std::unique_ptr<journal::Journal> journal = OpenJournal(dir);
  OutputFiles files{journal->dir()};
};

// How many times `needle` occurs in `text`.
std::size_t Count(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST_CASE("output files: rewritten at the start, appended during the run, synced at the end") {
  Outputs outputs;
  journal::AppendFinishedItem(*outputs.journal, "a");
  REQUIRE(outputs.Rewrite());
  CHECK(outputs.dir.Read("metadata.jsonl").find("\"file_name\":\"a.png\"") != std::string::npos);
  outputs.Done("b");
  REQUIRE(outputs.Finish());
  const std::string metadata = outputs.dir.Read("metadata.jsonl");
  CHECK(metadata.find("\"file_name\":\"a.png\"") < metadata.find("\"file_name\":\"b.png\""));
  CHECK(outputs.dir.Read("failed.jsonl").empty());
}

TEST_CASE("output files: lines wait in a queue until Flush, which writes them in order") {
  Outputs outputs;
  journal::AppendFinishedItem(*outputs.journal, "a");
  REQUIRE(outputs.Rewrite());
  const std::string rewritten = outputs.dir.Read("metadata.jsonl");
  outputs.Done("b");
  outputs.Done("c");
  proto::ItemSnapshot failed;
  failed.set_item_id("d");
  failed.set_phase(proto::ItemSnapshot::GAVE_UP);
  failed.set_last_error_code("invalid_request");
  outputs.files.AppendFailure(failed);
  CHECK(outputs.dir.Read("metadata.jsonl") == rewritten);  // nothing written yet
  CHECK(outputs.dir.Read("failed.jsonl").empty());
  outputs.files.Flush();
  const std::string metadata = outputs.dir.Read("metadata.jsonl");
  CHECK(metadata.find("\"file_name\":\"a.png\"") < metadata.find("\"file_name\":\"b.png\""));
  CHECK(metadata.find("\"file_name\":\"b.png\"") < metadata.find("\"file_name\":\"c.png\""));
  CHECK(Count(outputs.dir.Read("failed.jsonl"), "\"id\":\"d\"") == 1);
  outputs.files.Flush();  // nothing queued: nothing written again
  REQUIRE(outputs.Finish());
  CHECK(Count(outputs.dir.Read("metadata.jsonl"), "\"file_name\":\"b.png\"") == 1);
}

TEST_CASE("output files: a long queue goes out by itself; a rewrite drops what it holds") {
  Outputs outputs;
  REQUIRE(outputs.Rewrite());
  // 400 lines of a few hundred bytes: more than the queue holds before it writes itself.
  for (int i = 0; i < 400; ++i) outputs.Done("item" + std::to_string(i));
  CHECK_FALSE(outputs.dir.Read("metadata.jsonl").empty());
  CHECK(Count(outputs.dir.Read("metadata.jsonl"), "\"file_name\"") < 400);  // the rest queued
  // A rewrite writes every item of the state, the queued ones included: not twice after it.
  REQUIRE(outputs.Rewrite());
  REQUIRE(outputs.Finish());
  const std::string metadata = outputs.dir.Read("metadata.jsonl");
  CHECK(Count(metadata, "\"file_name\"") == 400);
  CHECK(Count(metadata, "\"file_name\":\"item399.png\"") == 1);
}

TEST_CASE("output files: the end of a run without working appends rewrites them whole") {
  Outputs outputs;
  outputs.Done("a");  // never rewritten: its appends go nowhere
  REQUIRE(outputs.Finish());
  CHECK(outputs.dir.Read("metadata.jsonl").find("\"file_name\":\"a.png\"") != std::string::npos);
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
  CHECK(line.find("\"image_index\":0,\"label\":\"cat\",\"score\":0.5}") != std::string::npos);
  CHECK(OutputFiles::FailureLine(item).find("\"label\":\"cat\"") != std::string::npos);
  // A column an earlier version wrote as Boost.JSON does ("7.5E0") is written as people read it.
  item.set_meta_json("{\"cfg\":7.5E0}");
  CHECK(OutputFiles::MetadataLine(item, image).find("\"cfg\":7.5}") != std::string::npos);
  item.set_meta_json("[not an object");
  CHECK(OutputFiles::MetadataLine(item, image).find("not an object") == std::string::npos);
}

// The item's own columns after `line`'s, as boost::json merged them; the line serialized.
std::string WithBoostMeta(const proto::ItemSnapshot& item, boost::json::object line) {
  namespace json = boost::json;
  boost::system::error_code error;
  json::value meta = json::parse(item.meta_json(), error);
  if (!error && meta.is_object()) {
    for (auto& [name, value] : meta.as_object()) {
      if (!line.contains(name)) line.emplace(name, std::move(value));
    }
  }
  return util::JsonText(line) + "\n";  // doubles as people read them (util/json_text.h)
}

// The lines as boost::json wrote them before JsonObjectWriter did: the same columns, in the same
// order, in a json::object, serialized.
std::string BoostMetadataLine(const proto::ItemSnapshot& item, const proto::Downloaded& image) {
  namespace json = boost::json;
  json::object line({{"file_name", image.file_name()},
                     {"id", item.item_id()},
                     {"prompt", item.prompt()},
                     {"task_id", item.task_id()},
                     {"resolution", item.resolution()},
                     {"aspect_ratio", item.aspect_ratio()},
                     {"output_format", item.output_format()},
                     {"sha256", image.sha256()},
                     {"bytes", image.bytes()},
                     {"credits", item.credits()},
                     {"image_index", image.index()}});
  if (image.width() > 0 && image.height() > 0) {
    line["width"] = image.width();
    line["height"] = image.height();
  }
  if (!image.mismatch().empty()) line["mismatch"] = image.mismatch();
  if (item.image_urls_size() > 0) {
    json::array urls;
    for (const auto& url : item.image_urls()) urls.emplace_back(url);
    line["image_urls"] = std::move(urls);
  }
  return WithBoostMeta(item, std::move(line));
}

std::string BoostFailureLine(const proto::ItemSnapshot& item) {
  namespace json = boost::json;
  json::object line({{"id", item.item_id()},
                     {"error_code", item.last_error_code()},
                     {"message", item.last_error_message()},
                     {"attempts", item.attempt()},
                     {"failed_tasks", item.failed_tasks()},
                     {"task_id", item.task_id()},
                     {"prompt", item.prompt()}});
  return WithBoostMeta(item, std::move(line));
}

TEST_CASE("output files: lines are byte for byte what boost::json wrote for the same columns") {
  std::mt19937 random(11);
  const std::string pieces[] = {"cat", "猫", "\"", "\\", "\n", std::string("\x01\x7f", 2),
                                " ",   "é"};
  auto text = [&] {
    std::string out;
    for (int i = static_cast<int>(random() % 6); i > 0; --i) out += pieces[random() % 8];
    return out;
  };
  const std::string metas[] = {"",
                               "{\"label\":\"cat\",\"score\":0.5,\"prompt\":\"forged\"}",
                               std::string("{\"width\":1,\"height\":2,\"mismatch\":\"m\",") +
                                   "\"image_urls\":[],\"n\":{\"a\":[1,2.5e3,null,true]}}",
                               "{\"x\":1,\"x\":2,\"k\\n\":\"\\u0001\"}",
                               "[not an object",
                               "{\"big\":18446744073709551615,\"neg\":-3,\"tiny\":1e-300}"};
  for (int round = 0; round < 300; ++round) {
    proto::ItemSnapshot item;
    item.set_item_id(text());
    item.set_prompt(text());
    item.set_task_id(text());
    item.set_resolution(text());
    item.set_aspect_ratio(text());
    item.set_output_format(text());
    item.set_credits(static_cast<std::uint32_t>(random()));
    item.set_attempt(static_cast<std::uint32_t>(random() % 5));
    item.set_failed_tasks(static_cast<std::uint32_t>(random() % 3));
    item.set_last_error_code(text());
    item.set_last_error_message(text());
    for (int i = static_cast<int>(random() % 3); i > 0; --i) item.add_image_urls(text());
    item.set_meta_json(metas[random() % 6]);
    proto::Downloaded image;
    image.set_file_name(text());
    image.set_sha256(text());
    image.set_bytes(random() % 2 ? random() : 18446744073709551615ull);
    image.set_index(static_cast<std::uint32_t>(random() % 4));
    if (random() % 2) {
      image.set_width(static_cast<std::uint32_t>(random() % 3));
      image.set_height(static_cast<std::uint32_t>(random() % 3));
    }
    if (random() % 2) image.set_mismatch(text());
    REQUIRE(OutputFiles::MetadataLine(item, image) == BoostMetadataLine(item, image));
    REQUIRE(OutputFiles::FailureLine(item) == BoostFailureLine(item));
  }
}

}  // namespace
}  // namespace nanobatch::output
