#pragma once
// BlockingWorker: a few threads for the system calls that can block on the disk (a journal's
// write and fdatasync, an image's fsync, a directory's fsync), so that the event loop never
// waits for the disk: a slow disk or a network filesystem then slows the syncs down, not the
// rate limiter, the polls or the downloads. Several threads, because images are independent:
// their fsyncs overlap on the device (one thread made one image's fsync wait for another's,
// which bounded a run at about 1 / fsync latency images a second).
//
// Calls made during one turn of the loop go to the workers in batches (run one after another),
// and come back together: one worker and one loop wake-up for a batch instead of one each per
// call (on tmpfs, 4,000 small tasks: 30,759 -> 11,226 futex calls, half the context switches;
// the CPU time did not measurably change). A turn's calls are spread over all the threads (up
// to kMaxBatch in a batch), so that a slow disk keeps its overlap: the fsyncs of a group of
// images that come due together (disk::FileSyncs) run side by side, not after each other.
//
// The workers own no state the loop uses. A call touches only descriptors and buffers that its
// caller keeps alive and leaves unchanged until the call's result is back on the loop (the
// awaiting coroutine resumes on its own executor, never on a worker's thread). Calls may run
// concurrently with each other: whatever must be ordered (a journal's batches) is ordered by its
// caller (disk::GroupCommit has one sync in flight at a time).
//
// Example:
//   BlockingWorker worker;
//   const int error = co_await worker.Run([fd] { return ::fdatasync(fd) == 0 ? 0 : errno; });

#include <algorithm>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <vector>

namespace nanobatch::disk {

class BlockingWorker {
 public:
  static constexpr std::size_t kThreads = 4;
  static constexpr std::size_t kMaxBatch = 8;
  explicit BlockingWorker(std::size_t threads = kThreads)
      : pool_(threads), threads_(std::max<std::size_t>(threads, 1)) {}
  ~BlockingWorker();  // waits for the calls in progress, if any
  BlockingWorker(const BlockingWorker&) = delete;
  BlockingWorker& operator=(const BlockingWorker&) = delete;

  // Runs `call` on a worker thread. Returns what `call` returned: 0, or an errno. All callers
  // run on one loop (the event loop is single-threaded).
  boost::asio::awaitable<int> Run(std::function<int()> call);

  // Calls made so far (tests count them; benchmarks count syncs with tools/bench's shim).
  std::uint64_t calls() const { return calls_; }
  // Batches handed to the workers so far.
  std::uint64_t hand_offs() const { return hand_offs_; }

 private:
  using Completion = boost::asio::any_completion_handler<void(std::exception_ptr, int)>;
  struct Pending {
    std::function<int()> call;
    Completion completion;
  };
  // Hands this turn's calls to the workers (posted behind them on the loop).
  void HandOff(const boost::asio::any_io_executor& loop);

  boost::asio::thread_pool pool_;
  std::size_t threads_;
  // Touched on the loop only.
  std::vector<Pending> pending_;
  bool hand_off_posted_ = false;
  std::uint64_t calls_ = 0;
  std::uint64_t hand_offs_ = 0;
};

}  // namespace nanobatch::disk
