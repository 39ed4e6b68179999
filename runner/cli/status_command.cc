// `nanobatch status`: a summary read from the journal, without its lock and without writing,
// so it is safe while a run is live.
#include <boost/json.hpp>
#include <chrono>
#include <ctime>
#include <iostream>

#include "runner/cli/commands.h"
#include "runner/journal/journal.h"

namespace nanobatch::cli {
namespace {

std::string IsoTime(std::int64_t unix_time) {
  if (unix_time == 0) return "";
  const std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

}  // namespace

int StatusCommand(const std::string& out_dir, bool json_output) {
  std::string error;
  auto state = journal::Journal::OpenReadOnly(out_dir, error);
  if (!state) {
    std::cerr << "nanobatch: " << error << "\n";
    return kExitBadInput;
  }
  const journal::Totals& totals = state->totals();
  const proto::RunStarted* run = state->last_run();
  const std::uint64_t manifest_items = run ? run->manifest_items() : totals.items;
  const std::uint64_t in_flight = totals.intent + totals.submitted;
  const std::uint64_t known_active = totals.done + totals.gave_up + in_flight + totals.completed;
  const std::uint64_t departed = totals.departed;
  const std::uint64_t queued = manifest_items > known_active ? manifest_items - known_active : 0;

  // Images completed in the last 5 minutes, by the journal's own clock.
  std::uint64_t recent = 0;
  for (std::int64_t t : state->recent_done_times()) recent += t >= totals.last_unix_time - 300;
  const double per_minute = recent / 5.0;

  boost::json::object failures;
  for (const auto& [code, count] : state->FailuresByCode()) failures[code] = count;
  // "K/N" when the last run took one shard of its manifest.
  const std::string shard =
      run && run->shard_count() > 1
          ? std::to_string(run->shard_index()) + "/" + std::to_string(run->shard_count())
          : "";

  if (json_output) {
    boost::json::object out{
        {"total", manifest_items},
        {"done", totals.done},
        {"failed", totals.gave_up},
        {"in_flight", in_flight},
        {"queued", queued},
        {"submitted", totals.submitted},
        {"intents_open", totals.intent},
        {"completed_awaiting_download", totals.completed},
        {"images", totals.images},
        {"credits_spent", totals.credits_spent},
        {"credits_reserved", totals.credits_reserved},
        {"budget_credits", run && run->has_budget() ? boost::json::value(run->budget_credits())
                                                    : boost::json::value(nullptr)},
        {"possible_duplicate_submissions", totals.possible_duplicates},
        {"failed_tasks", totals.failed_tasks},
        {"departed_items", departed},
        {"failures_by_code", std::move(failures)},
        {"first_activity", IsoTime(totals.first_unix_time)},
        {"last_activity", IsoTime(totals.last_unix_time)},
        {"images_per_minute_recent", per_minute},
        {"journal_records", state->records()},
        {"shard", shard.empty() ? boost::json::value(nullptr) : boost::json::value(shard)},
    };
    std::cout << boost::json::serialize(out) << "\n";
    return kExitOk;
  }
  std::cout << "output:      " << out_dir << "\n"
            << "items:       " << manifest_items << " in the manifest of the last run"
            << (shard.empty() ? "" : " (shard " + shard + ")")
            << (departed ? " (+" + std::to_string(departed) + " no longer in it)" : "") << "\n"
            << "done:        " << totals.done << " (" << totals.images << " images)\n"
            << "failed:      " << totals.gave_up << "\n"
            << "in flight:   " << in_flight << " (" << totals.submitted << " submitted, "
            << totals.intent << " intents without outcome)\n"
            << "downloading: " << totals.completed << "\n"
            << "queued:      " << queued << "\n"
            << "credits:     " << totals.credits_spent << " spent, " << totals.credits_reserved
            << " reserved";
  if (run && run->has_budget()) std::cout << ", budget " << run->budget_credits();
  std::cout << "\n"
            << "possible duplicate submissions: " << totals.possible_duplicates << "\n"
            << "failed tasks (retried):         " << totals.failed_tasks << "\n"
            << "activity:    " << IsoTime(totals.first_unix_time) << " .. "
            << IsoTime(totals.last_unix_time) << ", " << per_minute
            << " images/min over the last 5 min\n";
  for (const auto& [code, count] : state->FailuresByCode()) {
    std::cout << "  failed with " << code << ": " << count << "\n";
  }
  return kExitOk;
}

}  // namespace nanobatch::cli
