// worker_bench: what one hand-off to the disk worker costs the process (user and system CPU,
// all threads), with a call that does nothing, so that only the hand-off is measured: the loop
// posts the call, a worker thread runs it, the result comes back on the loop.
//
//   bazel run -c opt //tools/bench:worker_bench -- [calls] [outstanding]
//
// `outstanding` coroutines each run calls back to back (1: every call finds the workers idle;
// more: hand-offs overlap, as an engine's image syncs and group commits do).
#include <sys/resource.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "runner/disk/blocking_worker.h"

namespace {

namespace net = boost::asio;

double Seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; }

net::awaitable<void> Caller(nanobatch::disk::BlockingWorker& worker, long calls, long& failed) {
  for (long i = 0; i < calls; ++i) {
    const int result = co_await worker.Run([] { return 0; });
    if (result != 0) ++failed;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const long calls = argc > 1 ? std::atol(argv[1]) : 200000;
  const long outstanding = argc > 2 ? std::atol(argv[2]) : 1;
  if (calls <= 0 || outstanding <= 0) {
    std::fprintf(stderr, "usage: worker_bench [calls > 0] [outstanding > 0]\n");
    return 2;
  }
  net::io_context loop(1);
  long failed = 0;
  rusage before{}, after{};
  const auto start = std::chrono::steady_clock::now();
  getrusage(RUSAGE_SELF, &before);
  {
    nanobatch::disk::BlockingWorker worker;
    for (long c = 0; c < outstanding; ++c) {
      net::co_spawn(loop, Caller(worker, calls / outstanding, failed), net::detached);
    }
    loop.run();
  }
  getrusage(RUSAGE_SELF, &after);
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long done = calls / outstanding * outstanding;
  const double user = Seconds(after.ru_utime) - Seconds(before.ru_utime);
  const double sys = Seconds(after.ru_stime) - Seconds(before.ru_stime);
  std::printf(
      "%ld hand-offs, %ld outstanding: %.2f us user + %.2f us sys per hand-off, "
      "%.0f hand-offs/s, %ld failed\n",
      done, outstanding, user * 1e6 / done, sys * 1e6 / done, done / wall, failed);
  return failed == 0 ? 0 : 1;
}
