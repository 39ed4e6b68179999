// `nanobatch estimate` and `run --dry-run`: the manifest validated and planned against the output
// directory exactly as `run` would (what is done, what is paid and to finish, what is to pay),
// then priced and timed (engine::Estimate). Nothing is sent, nothing is written: the journal is
// read as `status` reads it, without its lock, and a missing output directory is simply new.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "runner/cli/commands.h"
#include "runner/engine/estimate.h"
#include "runner/engine/job_plan.h"
#include "runner/journal/journal.h"
#include "runner/manifest/item_store.h"
#include "runner/util/input_file.h"
#include "runner/util/json_text.h"

namespace nanobatch::cli {
namespace {

// Tasks sampled for the latency seen in a directory: the median of a few thousand is plenty.
constexpr std::size_t kLatencySamples = 5000;

// polls_per_task of the last run's report.json, if there is one.
std::optional<double> LastPollsPerTask(const std::string& out) {
  std::ifstream file(out + "/report.json");
  if (!file) return std::nullopt;
  std::stringstream text;
  text << file.rdbuf();
  boost::system::error_code error;
  boost::json::value report = boost::json::parse(text.str(), error);
  if (error || !report.is_object()) return std::nullopt;
  const auto* run = report.as_object().if_contains("this_run");
  if (!run || !run->is_object()) return std::nullopt;
  const auto* polls = run->as_object().if_contains("polls_per_task");
  if (!polls || !polls->is_number()) return std::nullopt;
  return polls->to_number<double>();
}

}  // namespace

int EstimateCommand(const config::Config& config, const RunOptions& options) {
  // The directory as it is: none yet, or one whose journal is read without its lock.
  std::unique_ptr<journal::JournalState> state;
  struct stat info {};
  if (::stat(config.out.c_str(), &info) == 0) {
    std::string error;
    state = journal::Journal::OpenReadOnly(config.out, error);
    if (!state) {
      std::cerr << "nanobatch: " << error << "\n";
      return kExitBadInput;
    }
  } else {
    state = std::make_unique<journal::JournalState>();
  }
  util::UniqueFd out_fd(::open(config.out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));

  util::InputErrors errors;
  engine::JobPlanner planner(*state, out_fd.get(),
                             {.manifest = config.manifest,
                              .out = config.out,
                              .callbacks = !config.callbacks.public_url.empty(),
                              .retry_failed = options.retry_failed,
                              .verify_images = false,
                              .shard = options.shard,
                              .redo = {options.redo.begin(), options.redo.end()}});
  engine::EstimateInput input;
  std::vector<double> latencies;
  auto store = manifest::ItemStore::Open(
      config.manifest, config.defaults,
      [&](manifest::Item&& item, std::uint32_t index) {
        const std::size_t fresh = planner.plan().fresh.size();
        planner.Visit(item, index, errors);
        if (planner.plan().fresh.size() > fresh) {
          ++input.to_submit[item.resolution];
          return;
        }
        // The plan counts what is done and failed; a sample of finished items tells the latency
        // (only these are read back from the journal a second time).
        if (latencies.size() >= kLatencySamples || !manifest::InShard(options.shard, item.id)) {
          return;
        }
        const proto::ItemSnapshot* snapshot = state->Find(item.id);
        if (snapshot == nullptr || snapshot->phase() != proto::ItemSnapshot::DONE) return;
        const auto took = snapshot->last_unix_time() - snapshot->first_unix_time();
        // One attempt, one sitting: the time from its intent to its images.
        if (snapshot->attempt() == 1 && took > 0) latencies.push_back(static_cast<double>(took));
      },
      errors);
  if (errors.empty()) planner.Finish(*store, errors);
  if (!errors.empty()) {
    errors.Print(std::cerr);
    std::cerr << "nanobatch: " << errors.total() << " error" << (errors.total() == 1 ? "" : "s")
              << "; nothing was submitted\n";
    return kExitBadInput;
  }
  const engine::JobPlan& plan = planner.plan();
  input.items = plan.items;
  input.done = plan.done;
  input.failed = plan.failed;
  input.resume = plan.resume.size() + plan.recover.size() - plan.refetch.size();
  input.credits_spent = state->totals().credits_spent;
  input.credits_reserved = state->totals().credits_reserved;
  if (!latencies.empty()) {
    std::nth_element(latencies.begin(), latencies.begin() + latencies.size() / 2, latencies.end());
    input.latency_s = latencies[latencies.size() / 2];
  }
  input.polls_per_task = LastPollsPerTask(config.out);

  const engine::Estimate estimate = engine::MakeEstimate(input, config);
  if (options.json) {
    std::cout << util::JsonText(engine::EstimateJson(estimate)) << "\n";
  } else {
    if (options.dry_run) std::cout << "dry run: validated, nothing sent\n";
    std::cout << config.manifest << ":\n" << engine::FormatEstimate(estimate, config);
  }
  return kExitOk;
}

}  // namespace nanobatch::cli
