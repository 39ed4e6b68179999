#include "runner/disk/blocking_worker.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <iterator>
#include <utility>

namespace nanobatch::disk {

namespace net = boost::asio;

BlockingWorker::~BlockingWorker() { pool_.join(); }

net::awaitable<int> BlockingWorker::Run(std::function<int()> call) {
  ++calls_;
  return net::async_initiate<const net::use_awaitable_t<>, void(std::exception_ptr, int)>(
      [this](auto completion, std::function<int()> call) {
        const net::any_io_executor loop = net::get_associated_executor(completion);
        pending_.push_back({std::move(call), Completion(std::move(completion))});
        if (!hand_off_posted_) {
          hand_off_posted_ = true;
          // Behind the handlers this turn already has queued: they may add calls.
          net::post(loop, [this, loop] { HandOff(loop); });
        }
      },
      net::use_awaitable, std::move(call));
}

void BlockingWorker::HandOff(const net::any_io_executor& loop) {
  hand_off_posted_ = false;
  // As many batches as threads, each as even as can be, none over kMaxBatch.
  const std::size_t batch_size =
      std::clamp<std::size_t>((pending_.size() + threads_ - 1) / threads_, 1, kMaxBatch);
  std::size_t next = 0;
  while (next < pending_.size()) {
    const std::size_t end = std::min(pending_.size(), next + batch_size);
    std::vector<Pending> batch(std::make_move_iterator(pending_.begin() + next),
                               std::make_move_iterator(pending_.begin() + end));
    next = end;
    ++hand_offs_;
    // Tracked: the loop counts the calls as outstanding work until their results are back (it
    // does not run out of work while a sync is on a worker).
    auto tracked = net::prefer(loop, net::execution::outstanding_work.tracked);
    net::post(pool_, [batch = std::move(batch), tracked = std::move(tracked)]() mutable {
      std::vector<std::pair<std::exception_ptr, int>> results(batch.size());
      for (std::size_t i = 0; i < batch.size(); ++i) {
        try {
          results[i].second = batch[i].call();
        } catch (...) {
          results[i].first = std::current_exception();
        }
      }
      // Back on the loop: each caller resumes there, in the order of its call.
      net::post(tracked, [batch = std::move(batch), results = std::move(results)]() mutable {
        for (std::size_t i = 0; i < batch.size(); ++i) {
          std::move(batch[i].completion)(results[i].first, results[i].second);
        }
      });
    });
  }
  pending_.clear();
}

}  // namespace nanobatch::disk
