#pragma once
// HostResolver: host names to addresses without ever holding up the event loop, its end, or the
// process's exit. Asio's resolver runs getaddrinfo on a thread of its own but completes a lookup
// only when getaddrinfo returns: a deadline raced against it (`resolve || timer`) still waits for
// it, its cancel() does not end it, and the io_context's destructor joins that thread. A DNS
// server that never answers thus held a connect for glibc's own timeouts (10 s and more, whatever
// the connect timeout said) and a stopped run for as long.
//
// Here each lookup runs on a detached thread, and the coroutines waiting for it stop waiting at
// their deadline, at their stop signal or at Shutdown(), at once. A lookup nobody waits for any
// more is left to finish by itself; its answer, when it comes, goes to whoever waits for the same
// host and port by then (waiters join the lookup under way rather than start another, so a
// hanging DNS costs one thread per host, not one per attempt). The only state shared with a
// lookup's thread is its InFlight record, whose `abandoned` flag the destructor sets under the
// record's mutex: from then on the thread touches nothing of the loop's.
//
// The resolver must go before its io_context (as every object with I/O on it does).
//
// Example:
//   HostResolver resolver(io.get_executor());
//   HostResolver::Answer answer = co_await resolver.Resolve("api.example.com", 443, 10s, &stop);
//   if (answer.error) ... else connect to answer.endpoints ...

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runner/util/async.h"

namespace nanobatch::http {

class HostResolver {
 public:
  struct Answer {
    // timed_out: the deadline passed first; operation_aborted: stopped or shut down; otherwise
    // what the lookup said (net::error::host_not_found, ...).
    boost::system::error_code error;
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;
  };
  // A blocking lookup, run on a thread of its own: SystemLookup, or a test's stand-in.
  using Lookup = std::function<Answer(const std::string& host, const std::string& port)>;
  // getaddrinfo for TCP, any address family; its errors as Asio's resolver reports them.
  static Answer SystemLookup(const std::string& host, const std::string& port);

  // An empty `lookup` is SystemLookup.
  explicit HostResolver(boost::asio::any_io_executor executor, Lookup lookup = SystemLookup);
  ~HostResolver();  // abandons the lookups under way; never waits for them
  HostResolver(const HostResolver&) = delete;
  HostResolver& operator=(const HostResolver&) = delete;

  // The addresses of `host`, or an error no later than `timeout` from now; `stop` (when given)
  // and Shutdown() end the wait at once (operation_aborted).
  boost::asio::awaitable<Answer> Resolve(std::string host, std::uint16_t port,
                                         std::chrono::steady_clock::duration timeout,
                                         util::StopSignal* stop = nullptr);
  // Ends every wait (operation_aborted) and answers every later Resolve so at once.
  void Shutdown();

  // Lookup threads started so far, and those whose answer has not come yet (tests).
  std::uint64_t lookups_started() const { return lookups_started_; }
  std::size_t lookups_under_way() const { return in_flight_.size(); }

 private:
  struct InFlight;
  // Runs on the lookup's thread; posts the answer to the loop unless abandoned.
  // (std::thread passes it its own copies of the arguments.)
  static void RunLookup(const std::shared_ptr<InFlight>& flight, const Lookup& lookup,
                        const std::string& host, const std::string& port, HostResolver* resolver);
  // On the loop: the answer of `flight` has come.
  void Deliver(const std::shared_ptr<InFlight>& flight, Answer answer);

  boost::asio::any_io_executor executor_;
  Lookup lookup_;
  // Lookups under way, by "host:port"; an entry leaves when its answer comes.
  std::map<std::string, std::shared_ptr<InFlight>, std::less<>> in_flight_;
  bool shut_down_ = false;
  std::uint64_t lookups_started_ = 0;
};

}  // namespace nanobatch::http
