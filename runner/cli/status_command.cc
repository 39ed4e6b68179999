// `nanobatch status`: a summary read from the journal, without its lock and without writing,
// so it is safe while a run is live.
#include <boost/json.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "runner/cli/commands.h"
#include "runner/engine/estimate.h"
#include "runner/journal/journal.h"
#include "runner/journal/status.h"
#include "runner/util/json_text.h"

namespace nanobatch::cli {
namespace {

// "12.5 items/min over the last 40 s": the window is the run's own when it is shorter than 5 min.
std::string RecentRate(const boost::json::object& status) {
  const double per_minute = status.at("images_per_minute_recent").to_number<double>();
  char text[96];
  std::snprintf(
      text, sizeof text, "%.*f items/min over the last %s", per_minute < 10 ? 1 : 0, per_minute,
      engine::HumanDuration(status.at("recent_window_seconds").to_number<double>()).c_str());
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
  const boost::json::object status = journal::StatusJson(*state);
  if (json_output) {
    std::cout << util::JsonText(status) << "\n";
    return kExitOk;
  }
  auto count = [&](const char* key) { return status.at(key).to_number<std::uint64_t>(); };
  const proto::RunStarted* run = state->last_run();
  const std::string shard =
      status.at("shard").is_string() ? std::string(status.at("shard").as_string()) : std::string();
  const std::uint64_t departed = count("departed_items");
  std::cout << "output:      " << out_dir << "\n"
            << "items:       " << count("total") << " in the manifest of the last run"
            << (shard.empty() ? "" : " (shard " + shard + ")")
            << (departed ? " (+" + std::to_string(departed) + " no longer in it)" : "") << "\n"
            << "done:        " << count("done") << " (" << count("images") << " images"
            << (count("flagged_images") ? ", " + std::to_string(count("flagged_images")) +
                                              " not as asked: see `mismatch` in metadata.jsonl"
                                        : std::string())
            << ")\n"
            << "failed:      " << count("failed") << "\n"
            << "in flight:   " << count("in_flight") << " (" << count("submitted") << " submitted, "
            << count("intents_open") << " intents without outcome)\n"
            << "downloading: " << count("completed_awaiting_download") << "\n"
            << "queued:      " << count("queued") << "\n"
            << "credits:     " << count("credits_spent") << " spent, " << count("credits_reserved")
            << " reserved";
  if (run && run->has_budget()) std::cout << ", budget " << run->budget_credits();
  std::cout << "\n"
            << "possible duplicate submissions: " << count("possible_duplicate_submissions") << "\n"
            << "failed tasks (retried):         " << count("failed_tasks") << "\n"
            << "activity:    " << status.at("first_activity").as_string().c_str() << " .. "
            << status.at("last_activity").as_string().c_str() << ", " << RecentRate(status) << "\n";
  for (const auto& [code, count] : state->FailuresByCode()) {
    std::cout << "  failed with " << code << ": " << count << "\n";
  }
  return kExitOk;
}

}  // namespace nanobatch::cli
