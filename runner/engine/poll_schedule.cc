#include "runner/engine/poll_schedule.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace nanobatch::engine {
namespace {

// Never sooner than this between two polls of one task (a simulator's tasks finish in
// milliseconds; a real API's in seconds).
constexpr Seconds kMinGap{0.05};
// With fewer durations than this, a quantile is a guess: the slowest seen is taken instead.
constexpr std::size_t kFewSamples = 10;

}  // namespace

PollSchedule::PollSchedule(Seconds first_poll, Seconds max_interval)
    : first_poll_(first_poll), max_interval_(max_interval) {}

Seconds PollSchedule::Clamp(Seconds delay) const {
  return std::clamp(delay, kMinGap, std::max(kMinGap, max_interval_));
}

std::size_t PollSchedule::samples(const std::string& resolution) const {
  auto it = by_resolution_.find(resolution);
  return it == by_resolution_.end() ? 0 : it->second.recent.size();
}

bool PollSchedule::Knows(const std::string& resolution) const { return samples(resolution) > 0; }

std::optional<Seconds> PollSchedule::Quantile(const std::string& resolution, double q) const {
  auto it = by_resolution_.find(resolution);
  if (it == by_resolution_.end() || it->second.recent.empty()) return std::nullopt;
  const std::vector<double>& sorted = it->second.sorted;
  if (sorted.size() < kFewSamples) return Seconds(sorted.back());
  // Linear interpolation between the closest ranks.
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
  const std::size_t below = static_cast<std::size_t>(std::floor(rank));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  return Seconds(sorted[below] + (sorted[above] - sorted[below]) * (rank - below));
}

Seconds PollSchedule::FirstPoll(const std::string& resolution) const {
  auto quantile = Quantile(resolution, kFirstQuantile);
  return Clamp(quantile ? *quantile : first_poll_);
}

Seconds PollSchedule::ProbeFirst() const { return Clamp(std::min(Seconds(1), first_poll_)); }

Seconds PollSchedule::NextPoll(const std::string& resolution, Seconds elapsed) const {
  // The next landmark of the distribution that is still ahead, if any: most tasks that missed
  // the 90th percentile are done by the 99th, nearly all by the slowest seen.
  for (double q : {kFirstQuantile, 0.99, 1.0}) {
    auto at = Quantile(resolution, q);
    if (at && *at - elapsed >= kMinGap) return Clamp(*at - elapsed);
  }
  // Slower than anything seen (or nothing seen): each miss waits half as long again as the task
  // has taken so far, so a slow task costs few polls.
  return Clamp(std::max(elapsed * 0.5, kMinGap));
}

bool PollSchedule::StartProbe(const std::string& resolution) {
  Durations& durations = by_resolution_[resolution];
  if (!durations.recent.empty() || durations.probes >= kProbes) return false;
  ++durations.probes;
  return true;
}

void PollSchedule::Learn(const std::string& resolution, Seconds took) {
  if (!(took.count() >= 0)) return;  // NaN or negative: no lesson
  Durations& durations = by_resolution_[resolution];
  durations.recent.push_back(took.count());
  auto& sorted = durations.sorted;
  sorted.insert(std::upper_bound(sorted.begin(), sorted.end(), took.count()), took.count());
  if (durations.recent.size() > kWindow) {
    sorted.erase(std::lower_bound(sorted.begin(), sorted.end(), durations.recent.front()));
    durations.recent.pop_front();
  }
}

}  // namespace nanobatch::engine
