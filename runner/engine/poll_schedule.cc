#include "runner/engine/poll_schedule.h"

#include <algorithm>
#include <vector>

namespace nanobatch::engine {

PollSchedule::PollSchedule(Seconds first_poll, Seconds max_interval)
    : first_poll_(first_poll), max_interval_(max_interval) {}

Seconds PollSchedule::Median(const std::string& resolution) const {
  auto it = recent_.find(resolution);
  if (it == recent_.end() || it->second.empty()) return first_poll_;
  std::vector<double> sorted(it->second.begin(), it->second.end());
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  return Seconds(sorted[sorted.size() / 2]);
}

Seconds PollSchedule::FirstDelay(const std::string& resolution) const {
  // Never sooner than 50 ms (a fast simulator), never later than the cap.
  return std::clamp(Median(resolution), Seconds(0.05), max_interval_);
}

Seconds PollSchedule::NextDelay(Seconds previous) const {
  // Each miss waits half as long again as the last: few polls for slow tasks, bounded by the cap.
  return std::clamp(previous * 1.5, Seconds(0.05), max_interval_);
}

void PollSchedule::RecordCompletion(const std::string& resolution, Seconds took) {
  auto& window = recent_[resolution];
  window.push_back(took.count());
  if (window.size() > kWindow) window.pop_front();
}

}  // namespace nanobatch::engine
