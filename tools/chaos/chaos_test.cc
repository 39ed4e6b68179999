#include "tools/chaos/chaos.h"

#include <doctest/doctest.h>

namespace nanobatch::chaos {
namespace {

TEST_CASE("chaos: SIGKILL at random moments, restart, and every promise holds") {
  const ChaosReport report = RunChaos(
      {.items = 60, .kills = 6, .seed = 11, .min_kill_ms = 50, .max_kill_ms = 400, .work_dir = ""});
  INFO(report.Summary());
  CHECK(report.ok);
  CHECK(report.kills == 6);
  CHECK(report.items_done == 60);
  CHECK(report.images_checked == 60);
}

}  // namespace
}  // namespace nanobatch::chaos
