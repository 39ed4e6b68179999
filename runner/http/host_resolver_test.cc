// HostResolver: real lookups on the system's resolver, and a stand-in lookup that hangs (a DNS
// server that never answers) to show that nobody waits for it past a deadline, a stop or
// Shutdown(), not even the event loop's end.
#include "runner/http/host_resolver.h"

#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace nanobatch::http {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A lookup that hangs until Open() (or 20 s, so that no test leaves a thread for good), then
// answers `answer`. Shared with the lookup threads, which may outlive the resolver.
struct Gate {
  std::mutex mutex;
  std::condition_variable opened;
  bool open = false;
  std::atomic<int> calls{0};
  std::atomic<int> finished{0};
  HostResolver::Answer answer;

  void Open() {
    const std::lock_guard<std::mutex> lock(mutex);
    open = true;
    opened.notify_all();
  }
  // Waits (bounded) until every lookup thread has returned from the stand-in.
  bool AllFinished() const {
    for (int i = 0; i < 500 && finished.load() < calls.load(); ++i) {
      std::this_thread::sleep_for(10ms);
    }
    return finished.load() == calls.load();
  }
};

HostResolver::Lookup HangingLookup(const std::shared_ptr<Gate>& gate) {
  return [gate](const std::string&, const std::string&) {
    ++gate->calls;
    std::unique_lock<std::mutex> lock(gate->mutex);
    gate->opened.wait_for(lock, 20s, [&] { return gate->open; });
    HostResolver::Answer answer = gate->answer;
    lock.unlock();
    ++gate->finished;
    return answer;
  };
}

HostResolver::Answer Loopback443() {
  return {{}, {net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), 443)}};
}

// A closed gate whose lookups will answer 127.0.0.1:443.
std::shared_ptr<Gate> LoopbackGate() {
  auto gate = std::make_shared<Gate>();
  gate->answer = Loopback443();
  return gate;
}

// Runs `task` on a fresh loop to the loop's end; returns what it gave and how long it took.
template <typename Make>
std::pair<HostResolver::Answer, Clock::duration> RunToEnd(net::io_context& io, Make make) {
  std::optional<HostResolver::Answer> answer;
  net::co_spawn(io, make(), [&](std::exception_ptr failure, HostResolver::Answer got) {
    if (failure) std::rethrow_exception(failure);
    answer = std::move(got);
  });
  const auto start = Clock::now();
  io.run();  // returns only when nothing is left on the loop: a hanging lookup is not
  const auto took = Clock::now() - start;
  io.restart();
  REQUIRE(answer.has_value());
  return {std::move(*answer), took};
}

TEST_CASE("host resolver: an IP literal and localhost resolve through getaddrinfo") {
  net::io_context io;
  HostResolver resolver(io.get_executor());
  auto [literal, took] = RunToEnd(io, [&] { return resolver.Resolve("127.0.0.1", 8443, 10s); });
  CHECK_FALSE(literal.error);
  REQUIRE(literal.endpoints.size() == 1);
  CHECK(literal.endpoints[0] == net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), 8443));
  auto [named, took_named] = RunToEnd(io, [&] { return resolver.Resolve("localhost", 443, 10s); });
  CHECK_FALSE(named.error);
  REQUIRE_FALSE(named.endpoints.empty());
  for (const auto& endpoint : named.endpoints) {
    CHECK(endpoint.address().is_loopback());
    CHECK(endpoint.port() == 443);
  }
  CHECK(resolver.lookups_started() == 2);
  CHECK(resolver.lookups_under_way() == 0);
}

TEST_CASE("host resolver: the lookup's own error is the answer") {
  auto gate = std::make_shared<Gate>();
  gate->answer.error = net::error::host_not_found;
  gate->Open();
  net::io_context io;
  HostResolver resolver(io.get_executor(), HangingLookup(gate));
  auto [answer, took] = RunToEnd(io, [&] { return resolver.Resolve("nowhere.invalid", 443, 10s); });
  CHECK(answer.error == net::error::host_not_found);
  CHECK(answer.endpoints.empty());
  CHECK(gate->AllFinished());
}

TEST_CASE("host resolver: a lookup that never answers is given up at the deadline, loop and all") {
  auto gate = LoopbackGate();
  {
    net::io_context io;
    HostResolver resolver(io.get_executor(), HangingLookup(gate));
    auto [answer, took] =
        RunToEnd(io, [&] { return resolver.Resolve("hang.example", 443, 100ms); });
    CHECK(answer.error == net::error::timed_out);
    CHECK(took >= 100ms);
    CHECK(took < 5s);  // the stand-in hangs 20 s: neither the wait nor the loop waited for it
    CHECK(resolver.lookups_under_way() == 1);
    // The resolver (and then its loop) goes while the lookup still hangs: its thread finds it
    // abandoned when it returns, and touches nothing of theirs.
  }
  CHECK(gate->finished.load() == 0);
  gate->Open();
  CHECK(gate->AllFinished());
  CHECK(gate->calls.load() == 1);
}

TEST_CASE("host resolver: waiters for one host share its lookup; a late answer reaches the next") {
  auto gate = LoopbackGate();
  net::io_context io;
  HostResolver resolver(io.get_executor(), HangingLookup(gate));
  std::vector<HostResolver::Answer> first_round;
  std::optional<HostResolver::Answer> late;
  auto run = [&]() -> net::awaitable<void> {
    // Three at once for one host, all given up at their deadline: one lookup between them.
    auto wait = [&]() -> net::awaitable<void> {
      first_round.push_back(co_await resolver.Resolve("hang.example", 443, 50ms));
    };
    net::co_spawn(io, wait(), net::detached);
    net::co_spawn(io, wait(), net::detached);
    co_await wait();
    net::steady_timer settle(io, 50ms);
    co_await settle.async_wait(net::use_awaitable);
    // The lookup answers while a fourth waiter waits: it gets that answer, not a new lookup.
    net::steady_timer opener(io, 30ms);
    opener.async_wait([&](boost::system::error_code) { gate->Open(); });
    late = co_await resolver.Resolve("hang.example", 443, 10s);
  };
  bool done = false;
  net::co_spawn(io, run(), [&](std::exception_ptr failure) {
    if (failure) std::rethrow_exception(failure);
    done = true;
  });
  io.run();
  REQUIRE(done);
  REQUIRE(first_round.size() == 3);
  for (const auto& answer : first_round) CHECK(answer.error == net::error::timed_out);
  REQUIRE(late.has_value());
  CHECK_FALSE(late->error);
  CHECK(late->endpoints == Loopback443().endpoints);
  CHECK(resolver.lookups_started() == 1);
  CHECK(gate->calls.load() == 1);
  CHECK(resolver.lookups_under_way() == 0);
  CHECK(gate->AllFinished());
}

TEST_CASE("host resolver: a stop signal or Shutdown ends the wait at once") {
  auto gate = LoopbackGate();
  net::io_context io;
  HostResolver resolver(io.get_executor(), HangingLookup(gate));

  util::StopSignal stop(io.get_executor());
  net::steady_timer stopper(io, 50ms);
  stopper.async_wait([&](boost::system::error_code) { stop.Trigger(); });
  auto [stopped, took] =
      RunToEnd(io, [&] { return resolver.Resolve("hang.example", 443, 30s, &stop); });
  CHECK(stopped.error == net::error::operation_aborted);
  CHECK(took < 5s);  // not the 30 s deadline, nor the 20 s the lookup hangs
  // Already triggered: answered at once.
  auto [again, took_again] =
      RunToEnd(io, [&] { return resolver.Resolve("hang.example", 443, 30s, &stop); });
  CHECK(again.error == net::error::operation_aborted);

  net::steady_timer shutter(io, 50ms);
  shutter.async_wait([&](boost::system::error_code) { resolver.Shutdown(); });
  auto [shut, took_shut] = RunToEnd(io, [&] { return resolver.Resolve("hang.example", 443, 30s); });
  CHECK(shut.error == net::error::operation_aborted);
  CHECK(took_shut < 5s);
  // After Shutdown no lookup starts.
  auto [later, took_later] =
      RunToEnd(io, [&] { return resolver.Resolve("other.example", 443, 30s); });
  CHECK(later.error == net::error::operation_aborted);
  CHECK(resolver.lookups_started() == 1);
  gate->Open();
  CHECK(gate->AllFinished());
}

}  // namespace
}  // namespace nanobatch::http
