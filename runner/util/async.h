#pragma once
// Coroutine building blocks for the single-threaded event loop: a FIFO semaphore (connection
// slots, in-flight tasks, downloads) and a broadcast event (wake-ups, shutdown). Both park a
// waiter on a steady_timer that never expires and wake it by cancelling the timer, the usual
// Asio idiom; no locks, since everything runs on one thread.
//
// Example:
//   AsyncSemaphore slots(executor, 4);
//   if (!co_await slots.Acquire()) co_return;   // false: the semaphore was closed
//   ... use the slot ...
//   slots.Release();

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <list>
#include <memory>
#include <vector>

namespace nanobatch::util {

// The timers a semaphore's or an event's waiters park on, kept for the next waiter: constructing
// one looks its Asio service up under a mutex, comparing type names, which cost more than the
// wait itself (a task waits on these about six times). Take() gives a timer that never
// expires; Give() keeps at most kKept for later. A kept timer belongs to the event loop like any
// other: the pool, like the semaphore or event that holds it, must go before its io_context.
class TimerPool {
 public:
  explicit TimerPool(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}
  std::unique_ptr<boost::asio::steady_timer> Take();
  void Give(std::unique_ptr<boost::asio::steady_timer> timer);
  const boost::asio::any_io_executor& executor() const { return executor_; }

 private:
  static constexpr std::size_t kKept = 64;
  boost::asio::any_io_executor executor_;
  std::vector<std::unique_ptr<boost::asio::steady_timer>> kept_;
};

// StopSignal: a one-shot "stop waiting". Trigger() wakes at once every wait that observes it
// (AsyncSemaphore::Acquire, StopSignal::SleepFor) and makes later ones return at once: "stop"
// means everything waiting stops, with no list of things to wake kept by hand.
class StopSignal {
 public:
  explicit StopSignal(boost::asio::any_io_executor executor);
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  void Trigger();
  bool triggered() const { return triggered_; }
  // Makes a triggered signal wait-able again. Only a budget stop is ever lifted (serve: a reload
  // raised the budget); its waits have all ended by then.
  void Rearm() { triggered_ = false; }
  // `child` is triggered whenever this is: "halt" implies "stop submitting".
  void AddChild(StopSignal& child) { children_.push_back(&child); }
  // Before `child` goes away (a job's signals end with the job, the service's live on).
  void RemoveChild(StopSignal& child) { children_.remove(&child); }
  // Sleeps `duration`, or less if triggered meanwhile; true if triggered.
  boost::asio::awaitable<bool> SleepFor(std::chrono::steady_clock::duration duration);
  // Waits on the caller's `timer` (already set to expire), which someone else may also cancel
  // to wake the sleeper early (a webhook's arrival); a trigger cancels it too. True if triggered.
  boost::asio::awaitable<bool> SleepOn(boost::asio::steady_timer& timer);

 private:
  friend class AsyncSemaphore;
  friend class AsyncEvent;
  boost::asio::any_io_executor executor_;
  bool triggered_ = false;
  std::list<boost::asio::steady_timer*> timers_;
  std::list<StopSignal*> children_;
};

class AsyncSemaphore {
 public:
  AsyncSemaphore(boost::asio::any_io_executor executor, std::size_t count);
  AsyncSemaphore(const AsyncSemaphore&) = delete;
  AsyncSemaphore& operator=(const AsyncSemaphore&) = delete;

  // Waits for a unit, first come first served. False if Close() was called, or `stop` (when
  // given) was triggered before a unit was handed over: no unit is taken then.
  boost::asio::awaitable<bool> Acquire(StopSignal* stop = nullptr);
  bool TryAcquire();
  void Release();
  // Wakes every waiter with false, and makes later Acquire() calls return false at once.
  void Close();

  std::size_t available() const { return count_; }
  std::size_t waiting() const { return waiters_.size(); }

 private:
  struct Waiter {
    std::unique_ptr<boost::asio::steady_timer> timer;
    bool granted = false;
  };

  TimerPool timers_;
  std::size_t count_;
  bool closed_ = false;
  std::deque<Waiter*> waiters_;
};

// A unit held of an AsyncSemaphore, given back once: at Release() or when this goes out of
// scope, whichever comes first. `held` false: nothing to give back (yet); set it to hand the
// unit to someone else's guard.
struct HeldUnit {
  AsyncSemaphore& semaphore;
  bool held = true;
  void Release() {
    if (held) {
      held = false;
      semaphore.Release();
    }
  }
  ~HeldUnit() { Release(); }
};

// Coroutines wait until the next Notify(); Notify() wakes all current waiters.
class AsyncEvent {
 public:
  explicit AsyncEvent(boost::asio::any_io_executor executor);
  boost::asio::awaitable<void> Wait();
  // Waits for the next Notify(), or until `stop` is triggered; true if notified.
  boost::asio::awaitable<bool> Wait(StopSignal& stop);
  // Waits at most `timeout`; returns true if notified, false on timeout.
  boost::asio::awaitable<bool> WaitFor(std::chrono::steady_clock::duration timeout);
  void Notify();

 private:
  struct Waiter {
    std::unique_ptr<boost::asio::steady_timer> timer;
    bool notified = false;
  };

  TimerPool timers_;  // its executor is the event's too
  // A list, so that a waiter leaving early (WaitFor timing out) is removed in O(1): thousands of
  // polls sleep on the same event.
  std::list<Waiter*> waiters_;
};

}  // namespace nanobatch::util
