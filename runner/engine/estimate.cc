#include "runner/engine/estimate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace nanobatch::engine {

std::string HumanDuration(double seconds) {
  char text[32];
  if (seconds < 90) {
    std::snprintf(text, sizeof text, "%.0f s", std::ceil(seconds));
  } else if (seconds < 90 * 60) {
    std::snprintf(text, sizeof text, "%.0f min", std::ceil(seconds / 60));
  } else {
    std::snprintf(text, sizeof text, "%.1f h", seconds / 3600);
  }
  return text;
}

Estimate MakeEstimate(const EstimateInput& input, const config::Config& config) {
  Estimate estimate;
  estimate.input = input;
  for (const auto& [resolution, count] : input.to_submit) {
    estimate.tasks += count;
    estimate.credits += count * config::PriceOf(config, resolution);
  }
  estimate.usd = static_cast<double>(estimate.credits) * config.api.usd_per_credit;
  estimate.budget_needed = input.credits_spent + input.credits_reserved + estimate.credits;
  estimate.budget = config.limits.budget_credits;
  if (input.latency_s && *input.latency_s > 0) {
    estimate.latency_s = *input.latency_s;
    estimate.latency_learned = true;
  }
  if (input.polls_per_task && *input.polls_per_task >= 0) {
    estimate.polls_per_task = *input.polls_per_task;
  }
  // Every task is one submit and its polls through the rate limiter; at most max_in_flight are
  // out at once, each for about the latency. The slower of the two sets the pace.
  const double by_rate = config.limits.rate / (1 + estimate.polls_per_task);
  const double by_in_flight = config.limits.max_in_flight / estimate.latency_s;
  estimate.tasks_per_s = std::min(by_rate, by_in_flight);
  estimate.bound_by = by_rate <= by_in_flight ? "limits.rate" : "limits.max_in_flight";
  const std::uint64_t work = estimate.tasks + input.resume;
  if (work > 0 && estimate.tasks_per_s > 0) {
    // The last tasks still take their latency after the last submit.
    estimate.seconds = static_cast<double>(work) / estimate.tasks_per_s + estimate.latency_s;
  }
  return estimate;
}

std::string FormatEstimate(const Estimate& estimate, const config::Config& config) {
  const EstimateInput& in = estimate.input;
  char line[256];
  std::string out;
  // The fixed buffer holds figures only; paths and lists are appended whole.
  std::snprintf(line, sizeof line,
                "items:    %llu in the manifest; %llu done, %llu failed, %llu paid and to finish "
                "in ",
                static_cast<unsigned long long>(in.items), static_cast<unsigned long long>(in.done),
                static_cast<unsigned long long>(in.failed),
                static_cast<unsigned long long>(in.resume));
  out += line + config.out + "\n";
  std::string by_resolution;
  for (const auto& [resolution, count] : in.to_submit) {
    if (count == 0) continue;
    by_resolution += (by_resolution.empty() ? "" : ", ") + std::to_string(count) + " x " +
                     resolution + " at " + std::to_string(config::PriceOf(config, resolution));
  }
  std::snprintf(line, sizeof line, "to pay:   %llu tasks, %llu credits ($%.2f at $%g a credit)",
                static_cast<unsigned long long>(estimate.tasks),
                static_cast<unsigned long long>(estimate.credits), estimate.usd,
                config.api.usd_per_credit);
  out += line + (by_resolution.empty() ? "" : " (" + by_resolution + ")") + "\n";
  std::snprintf(line, sizeof line,
                "budget:   this directory needs %llu credits in all (%llu spent, %llu reserved, "
                "%llu to pay); ",
                static_cast<unsigned long long>(estimate.budget_needed),
                static_cast<unsigned long long>(in.credits_spent),
                static_cast<unsigned long long>(in.credits_reserved),
                static_cast<unsigned long long>(estimate.credits));
  out += line;
  if (!estimate.budget) {
    out += "no limits.budget_credits is set\n";
  } else if (*estimate.budget >= estimate.budget_needed) {
    out += "limits.budget_credits " + std::to_string(*estimate.budget) + " is enough\n";
  } else {
    out += "limits.budget_credits " + std::to_string(*estimate.budget) + " is short by " +
           std::to_string(estimate.budget_needed - *estimate.budget) +
           ": the run would stop there (exit 3); --budget-credits " +
           std::to_string(estimate.budget_needed) + " lets it finish\n";
  }
  if (estimate.tasks + in.resume == 0) {
    out += "time:     nothing to do\n";
    return out;
  }
  std::snprintf(line, sizeof line,
                "time:     about %s at %.3g tasks/s, bound by %s (rate %g/s, %g polls a task, %u "
                "in flight, %.0f s a task%s)\n",
                HumanDuration(estimate.seconds).c_str(), estimate.tasks_per_s,
                estimate.bound_by.c_str(), config.limits.rate, estimate.polls_per_task,
                config.limits.max_in_flight, estimate.latency_s,
                estimate.latency_learned ? ", as seen in this directory" : ", assumed");
  out += line;
  return out;
}

boost::json::object EstimateJson(const Estimate& estimate) {
  const EstimateInput& in = estimate.input;
  boost::json::object to_submit;
  for (const auto& [resolution, count] : in.to_submit) to_submit[resolution] = count;
  boost::json::object json{
      {"items", in.items},
      {"done", in.done},
      {"failed", in.failed},
      {"to_resume", in.resume},
      {"to_submit", estimate.tasks},
      {"to_submit_by_resolution", std::move(to_submit)},
      {"credits", estimate.credits},
      {"usd", estimate.usd},
      {"credits_spent", in.credits_spent},
      {"credits_reserved", in.credits_reserved},
      {"budget_needed", estimate.budget_needed},
      {"latency_s", estimate.latency_s},
      {"latency_learned", estimate.latency_learned},
      {"polls_per_task", estimate.polls_per_task},
      {"tasks_per_s", estimate.tasks_per_s},
      {"bound_by", estimate.bound_by},
      {"seconds", estimate.seconds},
  };
  if (estimate.budget) {
    json["budget_credits"] = *estimate.budget;
  } else {
    json["budget_credits"] = nullptr;
  }
  json["budget_enough"] = !estimate.budget || *estimate.budget >= estimate.budget_needed;
  return json;
}

}  // namespace nanobatch::engine
