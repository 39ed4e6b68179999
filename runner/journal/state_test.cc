#include "runner/journal/state.h"

#include <doctest/doctest.h>

#include <deque>
#include <map>
#include <string>
#include <vector>

namespace nanobatch::journal {
namespace {

proto::Record Intent(const std::string& id, unsigned attempt = 1, unsigned credits = 16) {
  proto::Record r;
  auto* intent = r.mutable_submit_intent();
  intent->set_item_id(id);
  intent->set_attempt(attempt);
  intent->set_credits(credits);
  intent->set_prompt("p " + id);
  intent->set_resolution("1K");
  intent->set_content_hash("h");
  return r;
}

proto::Record Submitted(const std::string& id, const std::string& task, unsigned credits = 16) {
  proto::Record r;
  r.mutable_submitted()->set_item_id(id);
  r.mutable_submitted()->set_task_id(task);
  r.mutable_submitted()->set_credits(credits);
  return r;
}

proto::Record Completed(const std::string& id, int urls = 1) {
  proto::Record r;
  r.mutable_completed()->set_item_id(id);
  for (int k = 0; k < urls; ++k) r.mutable_completed()->add_urls("https://f/" + std::to_string(k));
  return r;
}

proto::Record Downloaded(const std::string& id, unsigned index) {
  proto::Record r;
  r.mutable_downloaded()->set_item_id(id);
  r.mutable_downloaded()->set_index(index);
  r.mutable_downloaded()->set_file_name(id + ".png");
  r.mutable_downloaded()->set_bytes(100);
  return r;
}

proto::Record TaskFailed(const std::string& id, const std::string& task, bool unknown = false) {
  proto::Record r;
  r.mutable_task_failed()->set_item_id(id);
  r.mutable_task_failed()->set_task_id(task);
  r.mutable_task_failed()->set_error_code(unknown ? "deadline_exceeded" : "upstream_error");
  r.mutable_task_failed()->set_credits_spent_unknown(unknown);
  return r;
}

// Two states to compare, whose loaders read snapshot records back from `frames`, kept by their
// made-up offsets.
struct TwoStates {
  TwoStates() {
    auto loader = [this](std::uint64_t offset, proto::ItemSnapshot& out) {
      const auto found = frames.find(offset);
      if (found == frames.end()) return false;
      out = found->second;
      return true;
    };
    a.SetLoader(loader);
    b.SetLoader(loader);
  }
  std::map<std::uint64_t, proto::ItemSnapshot> frames;
  JournalState a;
  JournalState b;
};

TEST_CASE("state: a record given up (Apply of an rvalue) leaves what a record kept leaves") {
  // Every kind whose text is taken rather than copied, with text long enough to be allocated.
  const std::string long_text(40, 'x');
  std::vector<proto::Record> records;
  records.push_back(Intent("a"));
  records.back().mutable_submit_intent()->set_prompt("a prompt longer than fifteen bytes");
  records.back().mutable_submit_intent()->add_image_urls("https://in.example/" + long_text);
  records.back().mutable_submit_intent()->set_callback_token(long_text);
  records.back().mutable_submit_intent()->set_meta_json("{\"k\":\"" + long_text + "\"}");
  records.push_back(Submitted("a", "task-" + long_text));
  records.push_back(Completed("a", 2));
  records.back().mutable_completed()->set_task_id("task-" + long_text);
  records.push_back(Downloaded("a", 1));
  records.back().mutable_downloaded()->set_sha256(long_text);
  records.push_back(Downloaded("a", 0));
  records.push_back(Downloaded("a", 1));  // again: replaces the first
  records.push_back(Intent("b"));
  records.push_back(Submitted("b", "t-b"));

  JournalState kept;
  JournalState taken;
  std::uint64_t offset = 0;
  for (const proto::Record& record : records) {
    kept.Apply(record, offset);
    proto::Record given = record;
    taken.Apply(std::move(given), offset);
    offset += 100;
  }
  CHECK(kept.totals() == taken.totals());
  REQUIRE(kept.size() == taken.size());
  for (const char* id : {"a", "b"}) {
    CAPTURE(id);
    REQUIRE(kept.Find(id) != nullptr);
    const std::string expected = kept.Find(id)->SerializeAsString();
    REQUIRE(taken.Find(id) != nullptr);
    CHECK(taken.Find(id)->SerializeAsString() == expected);
  }
  const proto::ItemSnapshot& a = *taken.Find("a");
  CHECK(a.prompt() == "a prompt longer than fifteen bytes");
  CHECK(a.task_id() == "task-" + long_text);
  CHECK(a.images_size() == 2);
  CHECK(a.phase() == proto::ItemSnapshot::DONE);
}

TEST_CASE("state: the happy lifecycle reserves, then spends, then is done") {
  JournalState state;
  state.Apply(Intent("a"));
  CHECK(state.totals().intent == 1);
  CHECK(state.totals().credits_reserved == 16);
  state.Apply(Submitted("a", "t1"));
  CHECK(state.totals().submitted == 1);
  CHECK(state.totals().credits_reserved == 16);
  state.Apply(Completed("a", 2));
  CHECK(state.totals().credits_reserved == 0);
  CHECK(state.totals().credits_spent == 16);
  CHECK(state.totals().completed == 1);
  state.Apply(Downloaded("a", 0));
  CHECK(state.totals().done == 0);  // one of two images
  state.Apply(Downloaded("a", 1));
  CHECK(state.totals().done == 1);
  CHECK(state.totals().completed == 0);
  CHECK(state.totals().images == 2);
  CHECK(state.Find("a")->task_id() == "t1");
  CHECK(state.Find("a")->prompt() == "p a");
}

TEST_CASE("state: a 'submitted' record without a task id changes nothing") {
  JournalState state;
  state.Apply(Intent("a"));
  proto::Record abandoned;
  abandoned.mutable_intent_abandoned()->set_item_id("a");
  state.Apply(abandoned);
  const Totals before = state.totals();
  state.Apply(Submitted("a", ""));  // what 0.1.0 wrote after a lost submit at a stop
  CHECK(state.totals().submitted == 0);
  CHECK(state.totals().credits_spent == before.credits_spent);
  CHECK(state.totals().credits_reserved == 0);
  CHECK(state.totals().possible_duplicates == 1);
  CHECK(state.Find("a")->phase() == proto::ItemSnapshot::QUEUED);
}

TEST_CASE("state: a failed task gives its credits back; a deadline keeps them spent") {
  JournalState state;
  state.Apply(Intent("a"));
  state.Apply(Submitted("a", "t1"));
  state.Apply(TaskFailed("a", "t1"));
  CHECK(state.totals().credits_reserved == 0);
  CHECK(state.totals().credits_spent == 0);
  CHECK(state.totals().queued == 1);
  CHECK(state.Find("a")->failed_tasks() == 1);

  state.Apply(Intent("a", 2));
  state.Apply(Submitted("a", "t2"));
  state.Apply(TaskFailed("a", "t2", /*unknown=*/true));
  CHECK(state.totals().credits_spent == 16);
  CHECK(state.Find("a")->failed_tasks() == 2);
}

TEST_CASE("state: an abandoned intent is a possible duplicate and its credits count as spent") {
  JournalState state;
  state.Apply(Intent("a"));
  proto::Record abandoned;
  abandoned.mutable_intent_abandoned()->set_item_id("a");
  abandoned.mutable_intent_abandoned()->set_reason("no response");
  state.Apply(abandoned);
  CHECK(state.totals().possible_duplicates == 1);
  CHECK(state.totals().credits_spent == 16);
  CHECK(state.totals().credits_reserved == 0);
  // An intent directly after an open intent is the same thing, implicitly.
  state.Apply(Intent("a", 2));
  state.Apply(Intent("a", 3));
  CHECK(state.totals().possible_duplicates == 2);
  CHECK(state.totals().credits_spent == 32);
  CHECK(state.totals().credits_reserved == 16);
}

TEST_CASE("state: gave-up items are counted by code and can be retried") {
  JournalState state;
  state.Apply(Intent("a"));
  state.Apply(TaskFailed("a", ""));  // the submit was refused: nothing charged
  proto::Record gave_up;
  gave_up.mutable_gave_up()->set_item_id("a");
  gave_up.mutable_gave_up()->set_error_code("invalid_request");
  state.Apply(gave_up);
  CHECK(state.totals().gave_up == 1);
  CHECK(state.FailuresByCode().at("invalid_request") == 1);
  CHECK(state.Find("a")->failed_tasks() == 0);
  state.Apply(Intent("a", 1));
  CHECK(state.totals().gave_up == 0);
  CHECK(state.FailuresByCode().empty());
}

TEST_CASE("state: a snapshot replays to the same totals and items") {
  JournalState state;
  state.Apply(Intent("a"));
  state.Apply(Submitted("a", "t1"));
  state.Apply(Completed("a"));
  state.Apply(Downloaded("a", 0));
  state.Apply(Intent("b", 1, 36));
  state.Apply(Intent("b", 2, 36));
  state.Apply(Submitted("b", "t2", 36));
  state.Apply(Intent("c"));
  proto::Record run;
  run.mutable_run_started()->set_manifest_items(5);
  state.Apply(run);

  JournalState replayed;
  state.ForEachSnapshotRecord(
      [&](const proto::Record& record, std::optional<std::uint32_t>) { replayed.Apply(record); });
  const Totals& a = state.totals();
  const Totals& b = replayed.totals();
  CHECK(a.items == b.items);
  CHECK(a.done == b.done);
  CHECK(a.submitted == b.submitted);
  CHECK(a.intent == b.intent);
  CHECK(a.credits_spent == b.credits_spent);
  CHECK(a.credits_reserved == b.credits_reserved);
  CHECK(a.possible_duplicates == b.possible_duplicates);
  CHECK(replayed.Find("b")->task_id() == "t2");
  REQUIRE(replayed.last_run());
  CHECK(replayed.last_run()->manifest_items() == 5);
}

TEST_CASE("state: a finished item's own snapshot applied in place leaves what its record leaves") {
  // "done" finishes with an image, "failed" is given up, "open" is still waiting.
  auto history = [](JournalState& state) {
    std::int64_t t = 1'000;
    auto at = [&t](proto::Record record) {
      record.set_unix_time(t++);
      return record;
    };
    state.Apply(at(Intent("done")));
    state.Apply(at(Submitted("done", "t1")));
    state.Apply(at(Completed("done")));
    state.Apply(at(Downloaded("done", 0)));
    state.Apply(at(Intent("failed")));
    proto::Record gave_up;
    gave_up.mutable_gave_up()->set_item_id("failed");
    gave_up.mutable_gave_up()->set_error_code("invalid_request");
    state.Apply(at(gave_up));
    state.Apply(at(Intent("open")));
  };
  TwoStates states;  // references, not a structured binding: lambdas below capture them
  auto& frames = states.frames;
  JournalState& by_record = states.a;
  JournalState& in_place = states.b;
  history(by_record);
  history(in_place);
  std::uint32_t index = 0;
  CHECK(in_place.FinishedInMemory("open", index) == nullptr);
  CHECK(in_place.FinishedInMemory("nobody", index) == nullptr);
  std::uint64_t offset = 5'000;
  for (const char* id : {"done", "failed"}) {
    const proto::ItemSnapshot* finished = in_place.FinishedInMemory(id, index);
    REQUIRE(finished != nullptr);
    CHECK(index == *in_place.IndexOf(id));
    frames[offset] = *finished;
    proto::Record record;
    *record.mutable_item_snapshot() = frames[offset];
    record.set_unix_time(2'000);
    by_record.Apply(record, offset);
    in_place.ApplyOwnSnapshot(index, 2'000, offset);
    CHECK(in_place.FinishedInMemory(id, index) == nullptr);  // compact now
    offset += 100;
  }
  in_place.ApplyOwnSnapshot(*in_place.IndexOf("open"), 3'000,
                            offset);  // not finished: nothing happens
  CHECK(in_place.totals() == by_record.totals());
  CHECK(in_place.records() == by_record.records());
  CHECK(in_place.compact_items() == 2);
  CHECK(by_record.compact_items() == 2);
  CHECK(in_place.recent_done_times() == by_record.recent_done_times());
  CHECK(in_place.totals().last_unix_time == 2'000);
  REQUIRE(in_place.Find("done") != nullptr);
  CHECK(in_place.Find("done")->images_size() == 1);
  CHECK(in_place.Find("failed")->last_error_code() == "invalid_request");
}

TEST_CASE("state: a finished snapshot applied from its counts leaves what Apply of it leaves") {
  // Three items, each met by its snapshot record in another state: "done" is in memory (its
  // whole history came first), "again" is compact already (its snapshot is met twice, as after a
  // compaction and a restart), "new" is met first by its snapshot (a compacted journal).
  TwoStates states;  // references, not a structured binding: lambdas below capture them
  auto& frames = states.frames;
  JournalState& by_record = states.a;
  JournalState& by_counts = states.b;
  std::vector<std::pair<proto::Record, std::uint64_t>> records;
  std::uint64_t offset = 100;
  auto add = [&](proto::Record record, std::int64_t t) {
    record.set_unix_time(t);
    if (record.has_item_snapshot()) frames[offset] = record.item_snapshot();
    records.emplace_back(std::move(record), offset);
    offset += 100;
  };
  add(Intent("done"), 1'000);
  add(Submitted("done", "t1"), 1'001);
  add(Completed("done", 2), 1'002);
  add(Downloaded("done", 0), 1'003);
  add(Downloaded("done", 1), 1'004);
  auto snapshot = [](const std::string& id, Phase phase, int images, std::int64_t last) {
    proto::Record record;
    proto::ItemSnapshot& item = *record.mutable_item_snapshot();
    item.set_item_id(id);
    item.set_phase(phase);
    item.set_credits_spent(16);
    item.set_failed_tasks(1);
    item.set_possible_duplicates(1);
    item.set_last_error_code(phase == proto::ItemSnapshot::GAVE_UP ? "invalid_request" : "");
    item.set_last_unix_time(last);
    for (int k = 0; k < images; ++k) {
      proto::Downloaded& image = *item.add_images();
      image.set_file_name(id + std::to_string(k) + ".png");
      if (k == 0) image.set_mismatch("ratio");
    }
    return record;
  };
  add(snapshot("done", proto::ItemSnapshot::DONE, 2, 1'005), 1'005);
  add(snapshot("again", proto::ItemSnapshot::DONE, 1, 900), 1'006);
  add(snapshot("again", proto::ItemSnapshot::DONE, 1, 900), 1'007);
  add(snapshot("new", proto::ItemSnapshot::GAVE_UP, 0, 1'008), 1'008);
  add(Intent("open"), 1'009);

  int by_counts_applied = 0;
  for (const auto& [record, at] : records) {
    by_record.Apply(record, at);
    const std::string payload = record.SerializeAsString();
    std::int64_t unix_time = 0;
    if (const auto finished = ReadFinishedSnapshotRecord(payload, unix_time)) {
      by_counts.ApplyFinishedSnapshot(*finished, unix_time, at);
      ++by_counts_applied;
    } else {
      by_counts.Apply(record, at);
    }
  }
  CHECK(by_counts_applied == 4);
  CHECK(by_counts.totals() == by_record.totals());
  CHECK(by_counts.totals().done == 2);
  CHECK(by_counts.totals().gave_up == 1);
  CHECK(by_counts.totals().flagged_images == 2);
  CHECK(by_counts.records() == by_record.records());
  CHECK(by_counts.compact_items() == 3);
  CHECK(by_record.compact_items() == 3);
  CHECK(by_counts.size() == 4);
  CHECK(by_counts.recent_done_times() == by_record.recent_done_times());
  CHECK(by_record.recent_done_times() == std::deque<std::int64_t>{1'004, 900});
  CHECK(by_counts.FailuresByCode() == by_record.FailuresByCode());
  // Applied without offsets (as a state rebuilt from compaction records is), nothing is
  // compact, and the same items were done when.
  JournalState no_offsets;
  for (const auto& [record, at] : records) no_offsets.Apply(record);
  CHECK(no_offsets.compact_items() == 0);
  CHECK(no_offsets.totals() == by_record.totals());
  CHECK(no_offsets.recent_done_times() == by_record.recent_done_times());
  for (const char* id : {"done", "again", "new", "open"}) {
    CAPTURE(id);
    REQUIRE(by_counts.IndexOf(id) == by_record.IndexOf(id));
    const proto::ItemSnapshot* counted = by_counts.Find(id);
    REQUIRE(counted != nullptr);
    const std::string counted_bytes = counted->SerializeAsString();
    const proto::ItemSnapshot* recorded = by_record.Find(id);
    REQUIRE(recorded != nullptr);
    CHECK(counted_bytes == recorded->SerializeAsString());
  }
}

}  // namespace
}  // namespace nanobatch::journal
