#include "runner/journal/status.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

namespace nanobatch::journal {
namespace {

proto::Record At(std::int64_t unix_time, proto::Record record) {
  record.set_unix_time(unix_time);
  return record;
}

proto::Record RunStarted(std::uint64_t items) {
  proto::Record r;
  r.mutable_run_started()->set_manifest_items(items);
  return r;
}

// An item taken from intent to its one image, every record at `unix_time`.
void FinishItem(JournalState& state, const std::string& id, std::int64_t unix_time) {
  proto::Record intent;
  intent.mutable_submit_intent()->set_item_id(id);
  intent.mutable_submit_intent()->set_attempt(1);
  intent.mutable_submit_intent()->set_credits(16);
  intent.mutable_submit_intent()->set_prompt("p " + id);
  state.Apply(At(unix_time, intent));
  proto::Record submitted;
  submitted.mutable_submitted()->set_item_id(id);
  submitted.mutable_submitted()->set_task_id("t-" + id);
  submitted.mutable_submitted()->set_credits(16);
  state.Apply(At(unix_time, submitted));
  proto::Record completed;
  completed.mutable_completed()->set_item_id(id);
  completed.mutable_completed()->add_urls("https://f/" + id);
  state.Apply(At(unix_time, completed));
  proto::Record downloaded;
  downloaded.mutable_downloaded()->set_item_id(id);
  downloaded.mutable_downloaded()->set_file_name(id + ".png");
  downloaded.mutable_downloaded()->set_bytes(100);
  state.Apply(At(unix_time, downloaded));
}

double Rate(const boost::json::object& status) {
  return status.at("images_per_minute_recent").to_number<double>();
}
std::int64_t Window(const boost::json::object& status) {
  return status.at("recent_window_seconds").to_number<std::int64_t>();
}

TEST_CASE("status: the recent rate is over the last 5 min, or over the run when it is shorter") {
  const std::int64_t t0 = 1'775'383'900;
  SUBCASE("an empty journal has no rate") {
    JournalState state;
    const auto status = StatusJson(state);
    CHECK(Rate(status) == 0);
    CHECK(Window(status) == 0);
    CHECK(status.at("first_activity") == "");
  }
  SUBCASE("20 items in the 20 s since the run started: 60 a minute, not 4") {
    JournalState state;
    state.Apply(At(t0, RunStarted(20)));
    for (int i = 0; i < 20; ++i) FinishItem(state, "i" + std::to_string(i), t0 + 1 + i);
    const auto status = StatusJson(state);
    CHECK(Window(status) == 20);
    CHECK(Rate(status) == doctest::Approx(60));
    CHECK(status.at("first_activity") == "2026-04-05T10:11:40Z");
    CHECK(status.at("last_activity") == "2026-04-05T10:12:00Z");
  }
  SUBCASE("a long run: the last 5 minutes only") {
    JournalState state;
    state.Apply(At(t0, RunStarted(700)));
    for (int i = 0; i < 700; ++i) FinishItem(state, "i" + std::to_string(i), t0 + i);
    const auto status = StatusJson(state);
    CHECK(Window(status) == 300);
    CHECK(Rate(status) == doctest::Approx(301.0 / 5));  // t0+399 .. t0+699, both ends in
  }
  SUBCASE("items done by an earlier run do not count toward this one's rate") {
    JournalState state;
    state.Apply(At(t0, RunStarted(20)));
    for (int i = 0; i < 10; ++i) FinishItem(state, "a" + std::to_string(i), t0 + i);
    state.Apply(At(t0 + 100, RunStarted(20)));
    for (int i = 0; i < 10; ++i) FinishItem(state, "b" + std::to_string(i), t0 + 101 + i);
    const auto status = StatusJson(state);
    CHECK(Window(status) == 10);
    CHECK(Rate(status) == doctest::Approx(60));
  }
  SUBCASE("more items in the window than the journal keeps times for: the kept ones' span") {
    JournalState state;
    state.Apply(At(t0, RunStarted(5000)));
    // 5,000 items over 250 s: 20 a second, 1,200 a minute.
    for (int i = 0; i < 5000; ++i) FinishItem(state, "i" + std::to_string(i), t0 + 1 + i / 20);
    const auto status = StatusJson(state);
    CHECK(Window(status) < 250);
    CHECK(Rate(status) == doctest::Approx(1200).epsilon(0.01));
  }
  SUBCASE("the run's start survives compaction, which re-dates its record") {
    JournalState state;
    state.Apply(At(t0, RunStarted(20)));
    for (int i = 0; i < 20; ++i) FinishItem(state, "i" + std::to_string(i), t0 + 1 + i);
    JournalState replayed;
    state.ForEachSnapshotRecord(
        [&](const proto::Record& record, std::optional<std::uint32_t>) { replayed.Apply(record); });
    const auto status = StatusJson(replayed);
    CHECK(Window(status) == 20);
    CHECK(Rate(status) == doctest::Approx(60));
  }
}

}  // namespace
}  // namespace nanobatch::journal
