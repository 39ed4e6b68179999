#include "runner/engine/job_plan.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <set>

#include "runner/testing/temp_dir.h"

namespace nanobatch::engine {
namespace {

proto::Record Intent(const manifest::Item& item, const std::string& token = "") {
  proto::Record r;
  auto* intent = r.mutable_submit_intent();
  intent->set_item_id(item.id);
  intent->set_content_hash(manifest::ContentHash(item));
  intent->set_attempt(1);
  intent->set_credits(16);
  intent->set_callback_token(token);
  return r;
}

proto::Record Submitted(const std::string& id) {
  proto::Record r;
  r.mutable_submitted()->set_item_id(id);
  r.mutable_submitted()->set_task_id("task-" + id);
  return r;
}

// Plans `manifest` against `state`, with the output directory `out` (for the image checks).
struct Planned {
  JobPlan plan;
  util::InputErrors errors;
  std::vector<manifest::Item> items;
};

Planned Plan(const std::string& manifest_path, const journal::JournalState& state, int out_fd,
             PlanOptions options = {}) {
  Planned result;
  JobPlanner planner(state, out_fd, std::move(options));
  auto store = manifest::ItemStore::Open(
      manifest_path, {},
      [&](manifest::Item&& item, std::uint32_t index) {
        planner.Visit(item, index, result.errors);
        result.items.push_back(std::move(item));
      },
      result.errors);
  planner.Finish(*store, result.errors);
  result.plan = planner.Take();
  return result;
}

TEST_CASE("job plan: each item goes where the journal says, and nothing is written") {
  testing::TempDir dir;
  const std::string path = dir.Write("m.jsonl",
                                     "{\"id\":\"new\",\"prompt\":\"a\"}\n"
                                     "{\"id\":\"open\",\"prompt\":\"b\"}\n"
                                     "{\"id\":\"hooked\",\"prompt\":\"c\"}\n"
                                     "{\"id\":\"sub\",\"prompt\":\"d\"}\n"
                                     "{\"id\":\"gone\",\"prompt\":\"e\"}\n");
  // What the items are (to record their content hashes as an earlier run would have).
  Planned first = Plan(path, journal::JournalState(), -1);
  REQUIRE(first.errors.empty());
  REQUIRE(first.plan.fresh.size() == 5);
  journal::JournalState state;
  state.Apply(Intent(first.items[1]));
  state.Apply(Intent(first.items[2], std::string(32, 'a')));
  state.Apply(Intent(first.items[3]));
  state.Apply(Submitted("sub"));
  proto::Record gave_up;
  gave_up.mutable_gave_up()->set_item_id("gone");
  state.Apply(Intent(first.items[4]));
  state.Apply(gave_up);
  proto::Record earlier;  // an item of an earlier manifest
  earlier.mutable_submit_intent()->set_item_id("old");
  state.Apply(earlier);
  const auto records = state.records();

  Planned planned = Plan(path, state, -1, {.callbacks = true});
  REQUIRE(planned.errors.empty());
  CHECK(planned.plan.fresh == std::vector<std::uint32_t>{0, 1});  // new; open (abandoned)
  CHECK(planned.plan.abandon == std::vector<std::string>{"open"});
  CHECK(planned.plan.recover == std::vector<std::uint32_t>{2});  // has a callback token
  CHECK(planned.plan.resume == std::vector<std::uint32_t>{3});
  CHECK(planned.plan.departed == std::vector<std::string>{"old"});
  CHECK(state.records() == records);  // planning writes nothing
  // Without callbacks an open intent cannot learn its task: abandoned and submitted again.
  Planned plain = Plan(path, state, -1);
  CHECK(plain.plan.recover.empty());
  CHECK(plain.plan.abandon == std::vector<std::string>{"open", "hooked"});
  // Given up: submitted again only with --retry-failed.
  Planned retry = Plan(path, state, -1, {.retry_failed = true});
  CHECK(retry.plan.fresh.back() == 4u);
}

TEST_CASE("job plan: changed content and clashing names are errors naming the manifest line") {
  testing::TempDir dir;
  const std::string before = dir.Write("before.jsonl", "{\"id\":\"cat\",\"prompt\":\"a cat\"}\n");
  Planned first = Plan(before, journal::JournalState(), -1);
  journal::JournalState state;
  state.Apply(Intent(first.items[0]));
  // An earlier item "Dog" with an image on disk, no longer in the manifest.
  proto::Record dog;
  dog.mutable_submit_intent()->set_item_id("Dog");
  state.Apply(dog);
  proto::Record completed;
  completed.mutable_completed()->set_item_id("Dog");
  completed.mutable_completed()->add_urls("https://f/x.png");
  state.Apply(completed);
  proto::Record downloaded;
  downloaded.mutable_downloaded()->set_item_id("Dog");
  downloaded.mutable_downloaded()->set_file_name("Dog.png");
  state.Apply(downloaded);

  const std::string after = dir.Write("after.jsonl",
                                      "{\"id\":\"cat\",\"prompt\":\"a different cat\"}\n"
                                      "{\"id\":\"dog\",\"prompt\":\"a dog\"}\n");
  Planned planned = Plan(after, state, -1, {.manifest = "after.jsonl", .out = "out"});
  std::string text;
  for (const auto& error : planned.errors.stored()) text += error.Format() + "\n";
  CHECK(text.find("after.jsonl:1: id: \"cat\" was already generated from different content") !=
        std::string::npos);
  CHECK(text.find("after.jsonl:2: id: \"dog\" would overwrite the images of \"Dog\"") !=
        std::string::npos);
}

TEST_CASE("job plan: a finished item whose image is missing is fetched again, not paid again") {
  testing::TempDir dir;
  const std::string path = dir.Write("m.jsonl", "{\"id\":\"x\",\"prompt\":\"p\"}\n");
  Planned first = Plan(path, journal::JournalState(), -1);
  journal::JournalState state;
  state.Apply(Intent(first.items[0]));
  state.Apply(Submitted("x"));
  proto::Record completed;
  completed.mutable_completed()->set_item_id("x");
  completed.mutable_completed()->add_urls("https://f/x.png");
  state.Apply(completed);
  proto::Record downloaded;
  downloaded.mutable_downloaded()->set_item_id("x");
  downloaded.mutable_downloaded()->set_file_name("x.png");
  downloaded.mutable_downloaded()->set_bytes(3);
  state.Apply(downloaded);
  REQUIRE(state.Find("x")->phase() == proto::ItemSnapshot::DONE);
  const int out = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(out >= 0);
  dir.Write("x.png", "abc");
  CHECK(Plan(path, state, out).plan.refetch.empty());  // intact
  dir.Write("x.png", "abcd");                          // another size
  Planned changed = Plan(path, state, out);
  CHECK(changed.plan.refetch == std::vector<std::string>{"x"});
  CHECK(changed.plan.resume == std::vector<std::uint32_t>{0});
  CHECK(changed.plan.fresh.empty());
  ::close(out);
}

TEST_CASE("job plan: a shard plans only its own items, and counts only them") {
  testing::TempDir dir;
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text += "{\"id\":\"i" + std::to_string(i) + "\",\"prompt\":\"p\"}\n";
  }
  const std::string path = dir.Write("m.jsonl", text);
  std::set<std::uint32_t> seen;
  std::uint32_t items = 0;
  for (std::uint32_t k = 0; k < 4; ++k) {
    Planned planned = Plan(path, journal::JournalState(), -1, {.shard = {k, 4}});
    REQUIRE(planned.errors.empty());
    CHECK(planned.plan.items == planned.plan.fresh.size());
    items += planned.plan.items;
    for (std::uint32_t index : planned.plan.fresh) {
      CHECK(seen.insert(index).second);
      CHECK(manifest::ShardOf(planned.items[index].id, 4) == k);
    }
  }
  CHECK(items == 100);
  CHECK(seen.size() == 100);
}

}  // namespace
}  // namespace nanobatch::engine
