// The chaos tool: `bazel run //tools/chaos -- [ITEMS] [KILLS] [SEED] [WORK_DIR]` (defaults 500,
// 20, 1, a temporary directory).
// Exits 0 when every promise held, 1 otherwise; prints the figures either way.
#include <cstdlib>
#include <iostream>

#include "tools/chaos/chaos.h"

int main(int argc, char** argv) {
  nanobatch::chaos::ChaosOptions options;
  if (argc > 1) options.items = std::atoi(argv[1]);
  if (argc > 2) options.kills = std::atoi(argv[2]);
  if (argc > 3) options.seed = std::strtoull(argv[3], nullptr, 10);
  if (argc > 4) options.work_dir = argv[4];  // kept afterwards, with runs.log, for a post-mortem
  const nanobatch::chaos::ChaosReport report = nanobatch::chaos::RunChaos(options);
  std::cout << report.Summary();
  return report.ok ? 0 : 1;
}
