#pragma once
// When to poll a task, learned from what the API itself says. Every completed task reports how
// long it took (completed_at - created_at, whole seconds: an unbiased estimate when the submit's
// fraction of a second is random); per resolution, a window of recent durations is kept. The
// first poll of a task is aimed at a high quantile (the 90th) of that distribution, counted from
// the submit's answer, so most tasks are polled once; a task not done by then is polled at the
// 99th percentile, then at the slowest seen, then on a geometric backoff up to the cap. Few polls
// per task means the rate limit goes to submissions.
//
// Before a resolution has any duration, a few "probe" tasks poll early (1 s, then half as long
// again each time) so that the rest learn within seconds; the others wait for first_poll or the
// first lesson, whichever comes first (TaskWatcher re-aims them when one arrives).
//
// Pure arithmetic: no clock, no I/O; jitter is the caller's.
//
// Example:
//   PollSchedule schedule(Seconds(8), Seconds(30));
//   schedule.Learn("2K", Seconds(41));            // from a completed task's timestamps
//   Seconds first = schedule.FirstPoll("2K");     // after the submit's answer
//   Seconds wait = schedule.NextPoll("2K", elapsed);  // after a poll found it unfinished

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nanobatch::engine {

using Seconds = std::chrono::duration<double>;

// Seconds (from the config, or computed) as a steady_clock duration for timers.
inline std::chrono::steady_clock::duration ToDuration(Seconds seconds) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(seconds);
}
inline std::chrono::steady_clock::duration ToDuration(double seconds) {
  return ToDuration(Seconds(seconds));
}

class PollSchedule {
 public:
  // Recent durations kept per resolution: enough for a stable 99th percentile, few enough to
  // follow an API that slows down within minutes.
  static constexpr std::size_t kWindow = 200;
  // Tasks of a resolution with no duration yet that poll early.
  static constexpr int kProbes = 3;
  static constexpr double kFirstQuantile = 0.9;

  PollSchedule(Seconds first_poll, Seconds max_interval);

  bool Knows(const std::string& resolution) const;
  // Seconds after the submit's answer at which to poll a task first.
  Seconds FirstPoll(const std::string& resolution) const;
  // Seconds from now to the next poll of a task whose poll `elapsed` after its submit's answer
  // found it unfinished.
  Seconds NextPoll(const std::string& resolution, Seconds elapsed) const;
  // Whether a new task of `resolution` should probe (poll early because nothing is known yet);
  // counts it. A probe polls at ProbeFirst() and then on NextPoll.
  bool StartProbe(const std::string& resolution);
  Seconds ProbeFirst() const;
  void Learn(const std::string& resolution, Seconds took);
  // The q-quantile of the recent durations of `resolution` (nullopt when none).
  std::optional<Seconds> Quantile(const std::string& resolution, double q) const;
  std::size_t samples(const std::string& resolution) const;

 private:
  struct Durations {
    std::deque<double> recent;   // in arrival order: the oldest leaves the window first
    std::vector<double> sorted;  // the same values, sorted: a quantile is a lookup per poll
    int probes = 0;
  };
  Seconds Clamp(Seconds delay) const;

  Seconds first_poll_;
  Seconds max_interval_;
  std::map<std::string, Durations> by_resolution_;
};

}  // namespace nanobatch::engine
