#include "runner/disk/blocking_worker.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace nanobatch::disk {
namespace {

namespace net = boost::asio;

// A plain coroutine (not a capturing lambda): `call` lives in its frame, whichever thread runs it.
net::awaitable<int> Call(std::function<int()> call) { co_return call(); }

}  // namespace

BlockingWorker::~BlockingWorker() { pool_.join(); }

net::awaitable<int> BlockingWorker::Run(std::function<int()> call) {
  ++calls_;
  // co_spawn runs Call on the worker's thread and resumes us through our own executor: the
  // result is handed back on the loop, and the loop counts the call as outstanding work until
  // then (it does not run out of work while a sync is on the worker).
  co_return co_await net::co_spawn(pool_.get_executor(), Call(std::move(call)), net::use_awaitable);
}

}  // namespace nanobatch::disk
