// `nanobatch status`: a summary read from the journal, without its lock and without writing,
// so it is safe while a run is live.
#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "runner/cli/commands.h"
#include "runner/engine/estimate.h"
#include "runner/journal/journal.h"
#include "runner/journal/status.h"
#include "runner/util/input_file.h"
#include "runner/util/json_text.h"
#include "runner/util/log.h"
#include "runner/util/server_text.h"

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

// How the last run ended, from <out>/report.json, when that report is the last run's (its start
// is the journal's): its exit code, and the stop's reason and detail when it stopped early. A run
// still going, or one killed, has no report of its own: nothing then (an older report would tell
// of another run). {exit_code, ended, stop_reason, stop_detail}; the file is the user's to edit,
// so every field is checked and the text made printable.
std::optional<boost::json::object> LastRunReport(const std::string& out_dir,
                                                 const proto::RunStarted* run) {
  if (run == nullptr || run->started_unix_time() == 0) return std::nullopt;
  // A regular file only (a FIFO planted there would hold `status` forever), and small.
  constexpr std::uint64_t kReportMaxBytes = std::uint64_t{64} << 10;  // report.json: ~600 bytes
  std::string text, unread;
  if (!util::ReadInputFile(out_dir + "/report.json", kReportMaxBytes, text, unread)) {
    return std::nullopt;
  }
  boost::system::error_code error;
  const boost::json::value report = boost::json::parse(text, error);
  if (error || !report.is_object()) return std::nullopt;
  const boost::json::object& fields = report.as_object();
  const boost::json::value* exit_code = fields.if_contains("exit_code");
  const boost::json::value* this_run = fields.if_contains("this_run");
  if (!exit_code || !exit_code->is_int64() || !this_run || !this_run->is_object()) {
    return std::nullopt;
  }
  const boost::json::value* started = this_run->as_object().if_contains("started_unix");
  const boost::json::value* duration = this_run->as_object().if_contains("duration_s");
  if (!started || !started->is_int64() || started->as_int64() != run->started_unix_time() ||
      !duration || !duration->is_number()) {
    return std::nullopt;
  }
  const double seconds = duration->to_number<double>();
  if (!(seconds >= 0 && seconds < 1e9)) return std::nullopt;
  boost::json::object last{
      {"exit_code", exit_code->as_int64()},
      {"ended",
       util::UtcTimestamp(static_cast<std::time_t>(started->as_int64() + std::llround(seconds)))}};
  for (const char* key : {"stop_reason", "stop_detail"}) {
    const boost::json::value* value = fields.if_contains(key);
    last[key] = value && value->is_string()
                    ? boost::json::value(util::PrintableText(value->as_string(), 1000))
                    : boost::json::value(nullptr);
  }
  return last;
}

}  // namespace

int StatusCommand(const std::string& out_dir, bool json_output) {
  std::string error;
  auto state = journal::Journal::OpenReadOnly(out_dir, error);
  if (!state) {
    std::cerr << "nanobatch: " << error << "\n";
    return kExitBadInput;
  }
  boost::json::object status = journal::StatusJson(*state);
  const proto::RunStarted* run = state->last_run();
  const std::optional<boost::json::object> last_run = LastRunReport(out_dir, run);
  if (json_output) {
    status["last_run"] = last_run ? boost::json::value(*last_run) : boost::json::value(nullptr);
    std::cout << util::JsonText(status) << "\n";
    return kExitOk;
  }
  auto count = [&](const char* key) { return status.at(key).to_number<std::uint64_t>(); };
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
  if (last_run) {
    std::cout << "last run:    ended " << last_run->at("ended").as_string().c_str() << ", exit "
              << last_run->at("exit_code").as_int64();
    if (const auto& reason = last_run->at("stop_reason"); reason.is_string()) {
      std::cout << ": " << reason.as_string().c_str();
    }
    if (const auto& detail = last_run->at("stop_detail"); detail.is_string()) {
      std::cout << " (" << detail.as_string().c_str() << ")";
    }
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace nanobatch::cli
