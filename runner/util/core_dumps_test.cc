#include "runner/util/core_dumps.h"

#include <doctest/doctest.h>
#include <sys/prctl.h>
#include <sys/resource.h>

namespace nanobatch::util {
namespace {

TEST_CASE("core dumps: the process is not dumpable and its core limit is zero") {
  std::string why;
  CHECK(DisableCoreDumps(&why));
  CHECK(why.empty());
  CHECK(::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == (MarksNotDumpable() ? 0 : 1));
  rlimit core{};
  REQUIRE(::getrlimit(RLIMIT_CORE, &core) == 0);
  CHECK(core.rlim_cur == 0);
  CHECK(core.rlim_max == 0);  // and it cannot be raised again
}

}  // namespace
}  // namespace nanobatch::util
