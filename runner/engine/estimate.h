#pragma once
// Estimate: what a run would cost and take, before anything is paid (`nanobatch estimate`,
// `run --dry-run`). Pure: the caller counts the manifest against the output directory's journal
// (JobPlanner decides what is to submit, exactly as a run would) and passes the counts; this
// prices them from the config's table, checks them against the budget, and times them against
// the configured rate, the in-flight limit and the task latency seen in this directory (or an
// assumed one).
//
// Example:
//   EstimateInput input{.to_submit = {{"1K", 120}}, .items = 150, .done = 30};
//   Estimate estimate = MakeEstimate(input, config);
//   std::cout << FormatEstimate(estimate);

#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "runner/config/config.h"

namespace nanobatch::engine {

// The latency assumed when the directory has no finished task to learn from: Nano Banana 2
// typically takes 10 to 30 s a task.
inline constexpr double kAssumedLatencyS = 20.0;
// Polls per task assumed without an earlier run's report: the learned schedule aims its first
// poll at the latency seen, so most tasks take one or two.
inline constexpr double kAssumedPollsPerTask = 1.5;

struct EstimateInput {
  std::map<std::string, std::uint64_t> to_submit;  // items to pay for, by resolution
  std::uint64_t items = 0;                         // the manifest's items (in this shard)
  std::uint64_t done = 0;                          // already finished in the output directory
  std::uint64_t failed = 0;         // given up on (not submitted again without --retry-failed)
  std::uint64_t resume = 0;         // paid tasks to settle or images to fetch: no new payment
  std::uint64_t credits_spent = 0;  // by the directory so far
  std::uint64_t credits_reserved = 0;
  std::optional<double> latency_s;       // median seen in this directory
  std::optional<double> polls_per_task;  // from the last run's report
};

struct Estimate {
  EstimateInput input;
  std::uint64_t tasks = 0;    // to submit
  std::uint64_t credits = 0;  // of those
  double usd = 0;
  // What limits.budget_credits must allow for the run to finish: it counts everything the
  // directory spent, so this is spent + reserved + credits.
  std::uint64_t budget_needed = 0;
  std::optional<std::uint64_t> budget;  // limits.budget_credits
  double latency_s = kAssumedLatencyS;
  bool latency_learned = false;
  double polls_per_task = kAssumedPollsPerTask;
  double tasks_per_s = 0;
  std::string bound_by;  // "limits.rate" or "limits.max_in_flight"
  double seconds = 0;    // to submit and settle everything, downloads aside
};

Estimate MakeEstimate(const EstimateInput& input, const config::Config& config);
// Lines for a terminal.
std::string FormatEstimate(const Estimate& estimate, const config::Config& config);
boost::json::object EstimateJson(const Estimate& estimate);
// "42 s", "12 min", "3.5 h".
std::string HumanDuration(double seconds);

}  // namespace nanobatch::engine
