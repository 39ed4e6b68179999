#pragma once
// TaskGroup: the engine's coroutines, owned and awaited. Spawn() starts one; Join() waits until
// all have finished. An exception escaping a task is a bug: the first one is kept and rethrown
// by Join(), never dropped (no `detached`).
//
// Example:
//   TaskGroup group(executor);
//   group.Spawn(Lifecycle(item));
//   co_await group.Join();

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <exception>

#include "runner/util/async.h"

namespace nanobatch::engine {

class TaskGroup {
 public:
  explicit TaskGroup(boost::asio::any_io_executor executor)
      : executor_(executor), finished_(executor) {}

  void Spawn(boost::asio::awaitable<void> task) {
    ++running_;
    auto done = [this](std::exception_ptr failure) {
      if (failure && !failure_) failure_ = failure;
      --running_;
      finished_.Notify();
    };
    // The handler bound to the loop's own executor type (8 bytes), not the type-erased one (48):
    // Asio's spawn frame, alive as long as the task runs, keeps a work guard of the handler's
    // executor, and with it the frame goes from 464 to 432 bytes: mimalloc's 448-byte class
    // rather than its 512, for each of thousands of items in flight.
    if (const auto* loop = executor_.target<boost::asio::io_context::executor_type>()) {
      boost::asio::co_spawn(executor_, std::move(task),
                            boost::asio::bind_executor(*loop, std::move(done)));
    } else {
      boost::asio::co_spawn(executor_, std::move(task), std::move(done));
    }
  }

  boost::asio::awaitable<void> Join() {
    while (running_ > 0) co_await finished_.Wait();
    if (failure_) std::rethrow_exception(failure_);
  }

  std::size_t running() const { return running_; }

 private:
  boost::asio::any_io_executor executor_;
  util::AsyncEvent finished_;
  std::size_t running_ = 0;
  std::exception_ptr failure_;
};

}  // namespace nanobatch::engine
