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

std::unique_ptr<net::steady_timer> TimerPool::Take() {
  if (kept_.empty()) {
    return std::make_unique<net::steady_timer>(executor_, net::steady_timer::time_point::max());
  }
  std::unique_ptr<net::steady_timer> timer = std::move(kept_.back());
  kept_.pop_back();
  timer->expires_at(net::steady_timer::time_point::max());
  return timer;
}

void TimerPool::Give(std::unique_ptr<net::steady_timer> timer) {
  // Only a timer with no wait left on it: its waiter has resumed, so its one wait completed.
  if (kept_.size() < kKept) kept_.push_back(std::move(timer));
}

StopSignal::StopSignal(net::any_io_executor executor) : executor_(std::move(executor)) {}

void StopSignal::Trigger() {
  if (triggered_) return;
  triggered_ = true;
  for (net::steady_timer* timer : timers_) timer->cancel();
  timers_.clear();
  for (StopSignal* child : children_) child->Trigger();
}

net::awaitable<bool> StopSignal::SleepFor(std::chrono::steady_clock::duration duration) {
  if (triggered_) co_return true;
  if (duration <= std::chrono::steady_clock::duration::zero()) co_return false;
  net::steady_timer timer(executor_, duration);
  const auto position = timers_.insert(timers_.end(), &timer);
  co_await timer.async_wait(kAsTuple);
  if (!triggered_) timers_.erase(position);
  co_return triggered_;
}

net::awaitable<bool> StopSignal::SleepOn(net::steady_timer& timer) {
  if (triggered_) co_return true;
  const auto position = timers_.insert(timers_.end(), &timer);
  co_await timer.async_wait(kAsTuple);
  if (!triggered_) timers_.erase(position);
  co_return triggered_;
}

AsyncSemaphore::AsyncSemaphore(net::any_io_executor executor, std::size_t count)
    : timers_(std::move(executor)), count_(count) {}

net::awaitable<bool> AsyncSemaphore::Acquire(StopSignal* stop) {
  if (closed_ || (stop != nullptr && stop->triggered())) co_return false;
  if (count_ > 0 && waiters_.empty()) {
    --count_;
    co_return true;
  }
  Waiter waiter{timers_.Take()};
  waiters_.push_back(&waiter);
  // The same timer is woken by a grant (Release), Close() or the stop signal; one thread, so
  // `granted` says unambiguously which, and a unit is never lost.
  std::list<net::steady_timer*>::iterator in_stop;
  if (stop != nullptr) in_stop = stop->timers_.insert(stop->timers_.end(), waiter.timer.get());
  co_await waiter.timer->async_wait(kAsTuple);
  if (stop != nullptr && !stop->triggered()) stop->timers_.erase(in_stop);
  timers_.Give(std::move(waiter.timer));
  if (!waiter.granted) {
    // Woken by Close() or the stop signal, or the wait itself was cancelled: leave the queue.
    waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), &waiter), waiters_.end());
    co_return false;
  }
  if (stop != nullptr && stop->triggered()) {
    Release();  // granted and stopped in the same turn: hand the unit on
    co_return false;
  }
  co_return true;
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
    next->timer->cancel();
    return;
  }
  ++count_;
}

void AsyncSemaphore::Close() {
  closed_ = true;
  for (Waiter* waiter : waiters_) waiter->timer->cancel();
}

AsyncEvent::AsyncEvent(net::any_io_executor executor) : timers_(std::move(executor)) {}

net::awaitable<void> AsyncEvent::Wait() {
  Waiter waiter{timers_.Take()};
  const auto position = waiters_.insert(waiters_.end(), &waiter);
  co_await waiter.timer->async_wait(kAsTuple);
  // Notify() empties the list itself; a wait cancelled otherwise leaves it here.
  if (!waiter.notified) waiters_.erase(position);
  timers_.Give(std::move(waiter.timer));
}

net::awaitable<bool> AsyncEvent::Wait(StopSignal& stop) {
  if (stop.triggered()) co_return false;
  Waiter waiter{timers_.Take()};
  const auto position = waiters_.insert(waiters_.end(), &waiter);
  const auto in_stop = stop.timers_.insert(stop.timers_.end(), waiter.timer.get());
  co_await waiter.timer->async_wait(kAsTuple);
  if (!stop.triggered()) stop.timers_.erase(in_stop);
  if (!waiter.notified) waiters_.erase(position);
  timers_.Give(std::move(waiter.timer));
  co_return waiter.notified;
}

net::awaitable<bool> AsyncEvent::WaitFor(std::chrono::steady_clock::duration timeout) {
  // A timer of its own, not the pool's: WaitFor is on no task's path (it paces the service's
  // status reports, and a host's second connection waiting for the first one's TLS session),
  // and its `||` leaves the timer's wait cancelled by the group, not by a waker.
  const net::any_io_executor& executor = timers_.executor();
  Waiter waiter{
      std::make_unique<net::steady_timer>(executor, net::steady_timer::time_point::max())};
  const auto position = waiters_.insert(waiters_.end(), &waiter);
  net::steady_timer deadline(executor, timeout);
  using namespace net::experimental::awaitable_operators;
  co_await (waiter.timer->async_wait(kAsTuple) || deadline.async_wait(kAsTuple));
  if (!waiter.notified) waiters_.erase(position);
  co_return waiter.notified;
}

void AsyncEvent::Notify() {
  for (Waiter* waiter : waiters_) {
    waiter->notified = true;
    waiter->timer->cancel();
  }
  waiters_.clear();
}

}  // namespace nanobatch::util
