#include "runner/journal/status.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <ctime>
#include <deque>

#include "runner/util/log.h"

namespace nanobatch::journal {

std::string IsoTime(std::int64_t unix_time) {
  return unix_time == 0 ? "" : util::UtcTimestamp(static_cast<std::time_t>(unix_time));
}

boost::json::object StatusJson(const JournalState& state) {
  const Totals& totals = state.totals();
  const proto::RunStarted* run = state.last_run();
  const std::uint64_t manifest_items = run ? run->manifest_items() : totals.items;
  const std::uint64_t in_flight = totals.intent + totals.submitted;
  const std::uint64_t known_active = totals.done + totals.gave_up + in_flight + totals.completed;
  const std::uint64_t queued = manifest_items > known_active ? manifest_items - known_active : 0;

  // Items done a minute over the last 5 minutes of activity, by the journal's own clock; over less
  // when the last run started later, or when the journal keeps fewer finishing times than the
  // window held (a fast run): a rate over a window the run did not fill would read low.
  const std::deque<std::int64_t>& done_times = state.recent_done_times();
  std::int64_t window_start = totals.last_unix_time - 300;
  if (run && run->started_unix_time() > window_start) window_start = run->started_unix_time();
  if (done_times.size() >= JournalState::kRecentDoneTimes && done_times.front() > window_start)
    window_start = done_times.front();
  std::uint64_t recent = 0;
  for (std::int64_t t : done_times) recent += t >= window_start;
  // Whole seconds of the clock: a window under one second is one second.
  const std::int64_t window_s = std::max<std::int64_t>(1, totals.last_unix_time - window_start);

  boost::json::object failures;
  for (const auto& [code, count] : state.FailuresByCode()) failures[code] = count;
  // "K/N" when the last run took one shard of its manifest.
  const std::string shard =
      run && run->shard_count() > 1
          ? std::to_string(run->shard_index()) + "/" + std::to_string(run->shard_count())
          : "";
  return boost::json::object{
      {"total", manifest_items},
      {"done", totals.done},
      {"failed", totals.gave_up},
      {"in_flight", in_flight},
      {"queued", queued},
      {"submitted", totals.submitted},
      {"intents_open", totals.intent},
      {"completed_awaiting_download", totals.completed},
      {"images", totals.images},
      // Images whose format or aspect ratio is not what was asked (download.on_mismatch).
      {"flagged_images", totals.flagged_images},
      {"credits_spent", totals.credits_spent},
      {"credits_reserved", totals.credits_reserved},
      {"budget_credits", run && run->has_budget() ? boost::json::value(run->budget_credits())
                                                  : boost::json::value(nullptr)},
      {"possible_duplicate_submissions", totals.possible_duplicates},
      {"failed_tasks", totals.failed_tasks},
      {"departed_items", totals.departed},
      {"failures_by_code", std::move(failures)},
      {"first_activity", IsoTime(totals.first_unix_time)},
      {"last_activity", IsoTime(totals.last_unix_time)},
      {"images_per_minute_recent",
       // To a tenth: "63.2", not 63.1578947368421.
       totals.last_unix_time == 0
           ? 0.0
           : std::round(static_cast<double>(recent) * 600 / static_cast<double>(window_s)) / 10},
      {"recent_window_seconds", totals.last_unix_time == 0 ? 0 : window_s},
      {"journal_records", state.records()},
      {"shard", shard.empty() ? boost::json::value(nullptr) : boost::json::value(shard)},
  };
}

}  // namespace nanobatch::journal
