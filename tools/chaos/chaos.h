#pragma once
// The chaos test: a real `nanobatch run` against the simulator (with task latency), killed with
// SIGKILL at random moments and restarted each time, then run to the end; the outcome is then
// checked against the simulator's own counts. Shared by the tool (tools/chaos, large runs) and
// the test suite (a smaller run).
//
// Example:
//   ChaosReport report = RunChaos({.items = 500, .kills = 20});
//   std::cout << report.Summary();
//   return report.ok ? 0 : 1;

#include <cstdint>
#include <string>
#include <vector>

namespace nanobatch::chaos {

struct ChaosOptions {
  int items = 500;
  int kills = 20;
  std::uint64_t seed = 1;
  int min_kill_ms = 50;  // time from a start to its SIGKILL
  int max_kill_ms = 600;
  std::string work_dir;  // empty: a fresh temporary directory
};

struct ChaosReport {
  bool ok = false;
  std::vector<std::string> failures;  // one line per broken promise
  int kills = 0;
  int restarts = 0;
  std::int64_t items_done = 0;
  std::int64_t server_submissions = 0;
  std::int64_t server_duplicate_submissions = 0;
  std::int64_t reported_possible_duplicates = 0;
  std::int64_t credits_charged = 0;
  std::int64_t budget = 0;
  std::int64_t images_checked = 0;
  double seconds = 0;

  std::string Summary() const;
};

ChaosReport RunChaos(const ChaosOptions& options);

}  // namespace nanobatch::chaos
