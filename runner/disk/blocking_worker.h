#pragma once
// BlockingWorker: one thread for the system calls that can block on the disk (a journal's write
// and fdatasync, an image's fsync, a directory's fsync), so that the event loop never waits for
// the disk: a slow disk or a network filesystem then slows the syncs down, not the rate limiter,
// the polls or the downloads.
//
// The worker owns no state the loop uses. A call it runs touches only descriptors and buffers
// that its caller keeps alive and leaves unchanged until the call's result is back on the loop
// (the awaiting coroutine resumes on its own executor, never on the worker's thread).
//
// Example:
//   BlockingWorker worker;
//   const int error = co_await worker.Run([fd] { return ::fdatasync(fd) == 0 ? 0 : errno; });

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>

namespace nanobatch::disk {

class BlockingWorker {
 public:
  BlockingWorker() = default;
  ~BlockingWorker();  // waits for the call in progress, if any
  BlockingWorker(const BlockingWorker&) = delete;
  BlockingWorker& operator=(const BlockingWorker&) = delete;

  // Runs `call` on the worker thread, after every call submitted before it (one thread: calls
  // never overlap). Returns what `call` returned: 0, or an errno.
  boost::asio::awaitable<int> Run(std::function<int()> call);

  // Calls made so far (for the sync counts of benchmarks and metrics).
  std::uint64_t calls() const { return calls_; }

 private:
  boost::asio::thread_pool pool_{1};
  std::uint64_t calls_ = 0;  // touched on the loop only
};

}  // namespace nanobatch::disk
