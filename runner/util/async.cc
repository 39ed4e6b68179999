#include "runner/util/async.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace nanobatch::util {
namespace {

namespace net = boost::asio;
constexpr auto kAsTuple = net::as_tuple(net::use_awaitable);

}  // namespace

AsyncSemaphore::AsyncSemaphore(net::any_io_executor executor, std::size_t count)
    : executor_(std::move(executor)), count_(count) {}

net::awaitable<bool> AsyncSemaphore::Acquire() {
  if (closed_) co_return false;
  if (count_ > 0 && waiters_.empty()) {
    --count_;
    co_return true;
  }
  Waiter waiter{net::steady_timer(executor_, net::steady_timer::time_point::max())};
  waiters_.push_back(&waiter);
  co_await waiter.timer.async_wait(kAsTuple);
  if (!waiter.granted) {
    // Woken by Close(), or the wait itself was cancelled: leave the queue.
    waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), &waiter), waiters_.end());
  }
  co_return waiter.granted;
}

bool AsyncSemaphore::TryAcquire() {
  if (closed_ || count_ == 0 || !waiters_.empty()) return false;
  --count_;
  return true;
}

void AsyncSemaphore::Release() {
  if (!waiters_.empty() && !closed_) {
    // Hand the unit straight to the first waiter, so a newcomer cannot overtake it.
    Waiter* next = waiters_.front();
    waiters_.pop_front();
    next->granted = true;
    next->timer.cancel();
    return;
  }
  ++count_;
}

void AsyncSemaphore::Close() {
  closed_ = true;
  for (Waiter* waiter : waiters_) waiter->timer.cancel();
}

AsyncEvent::AsyncEvent(net::any_io_executor executor) : executor_(std::move(executor)) {}

net::awaitable<void> AsyncEvent::Wait() {
  Waiter waiter{net::steady_timer(executor_, net::steady_timer::time_point::max())};
  const auto position = waiters_.insert(waiters_.end(), &waiter);
  co_await waiter.timer.async_wait(kAsTuple);
  // Notify() empties the list itself; a wait cancelled otherwise leaves it here.
  if (!waiter.notified) waiters_.erase(position);
}

net::awaitable<bool> AsyncEvent::WaitFor(std::chrono::steady_clock::duration timeout) {
  Waiter waiter{net::steady_timer(executor_, net::steady_timer::time_point::max())};
  const auto position = waiters_.insert(waiters_.end(), &waiter);
  net::steady_timer deadline(executor_, timeout);
  using namespace net::experimental::awaitable_operators;
  co_await (waiter.timer.async_wait(kAsTuple) || deadline.async_wait(kAsTuple));
  if (!waiter.notified) waiters_.erase(position);
  co_return waiter.notified;
}

void AsyncEvent::Notify() {
  for (Waiter* waiter : waiters_) {
    waiter->notified = true;
    waiter->timer.cancel();
  }
  waiters_.clear();
}

}  // namespace nanobatch::util
