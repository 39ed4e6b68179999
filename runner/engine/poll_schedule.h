#pragma once
// When to poll a task. The first poll is aimed at the completion time observed so far for the
// task's resolution (a running median of recent tasks; `first_poll` before any is known), later
// polls back off geometrically up to a cap. Few polls per task means the rate limit is spent on
// submissions, not on asking "done yet?". Pure arithmetic; jitter is supplied by the caller.
//
// Example:
//   PollSchedule schedule(8s, 30s);
//   auto first = schedule.FirstDelay("2K");
//   auto next = schedule.NextDelay(first_or_previous);
//   schedule.RecordCompletion("2K", 41s);

#include <chrono>
#include <deque>
#include <map>
#include <string>

namespace nanobatch::engine {

using Seconds = std::chrono::duration<double>;

class PollSchedule {
 public:
  PollSchedule(Seconds first_poll, Seconds max_interval);

  Seconds FirstDelay(const std::string& resolution) const;
  Seconds NextDelay(Seconds previous) const;
  void RecordCompletion(const std::string& resolution, Seconds took);
  // The median of the recent completions of `resolution`, or first_poll when none.
  Seconds Median(const std::string& resolution) const;

 private:
  static constexpr std::size_t kWindow = 101;
  Seconds first_poll_;
  Seconds max_interval_;
  std::map<std::string, std::deque<double>> recent_;
};

}  // namespace nanobatch::engine
