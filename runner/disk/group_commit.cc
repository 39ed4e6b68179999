#include "runner/disk/group_commit.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

namespace nanobatch::disk {

namespace net = boost::asio;

GroupCommit::GroupCommit(net::any_io_executor executor, BlockingWorker& worker, Hooks hooks,
                         std::chrono::steady_clock::duration min_interval, std::size_t full_group)
    : executor_(executor),
      worker_(worker),
      hooks_(std::move(hooks)),
      min_interval_(min_interval),
      full_group_(full_group),
      gather_timer_(executor),
      finished_event_(executor) {}

net::awaitable<bool> GroupCommit::Commit() {
  if (failed_) co_return false;
  // The sync that covers the caller's changes: the next one if anything changed since the one
  // in flight (or the last one) began; otherwise that one.
  const std::uint64_t needed = hooks_.pending() > 0 ? started_ + 1 : started_;
  while (finished_ < needed && !failed_) {
    if (in_flight_) {
      if (gathering_ && full_group_ > 0 && hooks_.pending() >= full_group_) {
        gather_timer_.cancel();  // the group is full: sync it now
      }
      co_await finished_event_.Wait();
      continue;
    }
    in_flight_ = true;
    // Let every coroutine that is ready change first: they join this group. When the last sync
    // began less than min_interval ago, gather for the rest of it.
    const auto earliest = last_start_ + min_interval_;
    if (std::chrono::steady_clock::now() < earliest) {
      gathering_ = true;
      gather_timer_.expires_at(earliest);
      co_await gather_timer_.async_wait(net::as_tuple(net::use_awaitable));
      gathering_ = false;
    } else {
      co_await net::post(executor_, net::use_awaitable);
    }
    last_start_ = std::chrono::steady_clock::now();
    ++started_;
    const int result = co_await worker_.Run(hooks_.begin());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - last_start_).count();
    std::string error;
    if (!hooks_.end(result, error)) {
      failed_ = true;
      error_ = error;
    }
    finished_ = started_;
    in_flight_ = false;
    if (on_sync_) on_sync_(seconds);
    finished_event_.Notify();
  }
  co_return !failed_;
}

}  // namespace nanobatch::disk
