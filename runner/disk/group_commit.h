#pragma once
// GroupCommit: makes changes durable in groups. Everything changed before a sync starts is
// covered by that sync; a caller whose changes came after the sync in flight waits for the next
// one, which a single leader starts for all of them. The blocking call runs on the
// BlockingWorker, so while one sync is on the disk the loop keeps going and the next group
// grows: the slower the disk, the larger the groups, and the loop never waits.
//
// The owner of the changes (a journal's queued records, a directory's renames) supplies three
// hooks, all run on the loop:
//   pending():     how many changes wait for a sync (0: nothing to make durable);
//   begin():       takes what changed and returns the blocking call that makes it durable
//                  (run on the worker; returns 0 or an errno);
//   end(result, error): applies the call's result; false (with `error`) if the sync failed.
// A failed sync fails every Commit() from then on: a hole in what is durable cannot be hidden.
//
// `min_interval` caps the syncs a busy stream of commits makes: a sync starts no sooner than
// that after the previous one started, so that on a fast disk under a high rate of commits the
// groups still grow (PostgreSQL's commit_delay, applied only when busy): an idle stream syncs
// at once. `full_group` ends that wait early once that many changes are pending: a high rate
// fills a group long before the interval is over, and its waiters (holding connections, slots)
// should not wait for the clock.
//
// Example:
//   GroupCommit syncs(executor, worker, {pending, begin, end});
//   journal.Append(record);
//   if (!co_await syncs.Commit()) { halt: syncs.error() }

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "runner/disk/blocking_worker.h"
#include "runner/util/async.h"

namespace nanobatch::disk {

class GroupCommit {
 public:
  struct Hooks {
    std::function<std::size_t()> pending;
    std::function<std::function<int()>()> begin;
    std::function<bool(int, std::string&)> end;
  };

  GroupCommit(boost::asio::any_io_executor executor, BlockingWorker& worker, Hooks hooks,
              std::chrono::steady_clock::duration min_interval = {}, std::size_t full_group = 0);
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Returns once everything changed before the call is durable: true, or false if a sync failed
  // (now or before).
  boost::asio::awaitable<bool> Commit();

  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  std::uint64_t syncs() const { return finished_; }
  // Called after every sync with the seconds it took on the worker (for the metrics).
  void set_on_sync(std::function<void(double)> on_sync) { on_sync_ = std::move(on_sync); }

 private:
  boost::asio::any_io_executor executor_;
  BlockingWorker& worker_;
  Hooks hooks_;
  std::chrono::steady_clock::duration min_interval_;
  std::size_t full_group_;
  bool gathering_ = false;  // the leader waits out min_interval
  std::chrono::steady_clock::time_point last_start_{};
  boost::asio::steady_timer gather_timer_;
  util::AsyncEvent finished_event_;
  std::function<void(double)> on_sync_;
  std::uint64_t started_ = 0;   // syncs begun
  std::uint64_t finished_ = 0;  // syncs whose result is applied
  bool in_flight_ = false;
  bool failed_ = false;
  std::string error_;
};

}  // namespace nanobatch::disk
