#pragma once
// IdleWatcher: a TaskWatcher on an io_context of its own whose polls would go to an address
// nobody listens on, an hour away: every verdict must come from a callback. For the watcher's
// tests and the webhook fuzz target, where a poll would be a bug (a test that needed one hangs
// until its bound and fails, never passes).
//
// Example:
//   IdleWatcher idle;
//   idle.watcher.Expect(token);
//   idle.watcher.OnCallback(token, body);

#include <boost/asio/io_context.hpp>
#include <string>
#include <vector>

#include "runner/engine/task_watcher.h"

namespace nanobatch::engine {

struct IdleWatcher {
  boost::asio::io_context io{1};
  http::Client client{io.get_executor(), {}};
  RateLimiter limiter{io.get_executor(), 100, 10};
  util::StopSignal halt{io.get_executor()};
  std::vector<std::string> stops;  // what the watcher asked to stop for
  TaskWatcher watcher{
      io.get_executor(),
      client,
      limiter,
      halt,
      [](http::Request::Method method, std::string target) {
        http::Request request;
        request.method = method;
        request.endpoint = *http::ParseUrl("https://127.0.0.1:9");
        request.endpoint.target = std::move(target);
        return request;
      },
      TaskWatcherOptions{.first_poll = Seconds(3600), .callback_safety_poll = Seconds(3600)},
      [this](StopReason, const std::string& detail) { stops.push_back(detail); }};
};

}  // namespace nanobatch::engine
