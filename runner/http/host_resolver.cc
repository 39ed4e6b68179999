#include "runner/http/host_resolver.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace nanobatch::http {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr auto kAsTuple = net::as_tuple(net::use_awaitable);

// Wakes every waiter of `waiters` and forgets them (a waiter finds its entry gone).
void WakeAll(std::list<net::steady_timer*>& waiters) {
  for (net::steady_timer* waiter : waiters) waiter->cancel();
  waiters.clear();
}

// getaddrinfo's error as Asio's resolver reports it, so that callers see the same codes (and
// messages) as before. `saved_errno` is errno right after the call, for EAI_SYSTEM.
boost::system::error_code LookupError(int error, int saved_errno) {
  switch (error) {
    case 0:
      return {};
    case EAI_AGAIN:
      return net::error::host_not_found_try_again;
    case EAI_BADFLAGS:
      return net::error::invalid_argument;
    case EAI_FAIL:
      return net::error::no_recovery;
    case EAI_FAMILY:
      return net::error::address_family_not_supported;
    case EAI_MEMORY:
      return net::error::no_memory;
    case EAI_NONAME:
#if defined(EAI_ADDRFAMILY)
    case EAI_ADDRFAMILY:
#endif
#if defined(EAI_NODATA) && (EAI_NODATA != EAI_NONAME)
    case EAI_NODATA:
#endif
      return net::error::host_not_found;
    case EAI_SERVICE:
      return net::error::service_not_found;
    case EAI_SOCKTYPE:
      return net::error::socket_type_not_supported;
    default:  // EAI_SYSTEM
      return {saved_errno, boost::system::system_category()};
  }
}

}  // namespace

// Shared by the loop and one lookup's thread.
struct HostResolver::InFlight {
  explicit InFlight(std::string key_in) : key(std::move(key_in)) {}
  const std::string key;  // "host:port"
  // Between the resolver's destructor (on the loop) and the thread's post: once `abandoned` is
  // set, the thread posts nothing, and a post already made finds it set and does nothing.
  std::mutex mutex;
  bool abandoned = false;
  // The loop's alone. Each waiter parks on a timer set to its deadline; the answer and
  // Shutdown() wake them by cancelling it (and clear the list: a waiter whose entry is still
  // here when it resumes woke by itself, and removes it).
  std::list<net::steady_timer*> waiters;
  bool answered = false;
  Answer answer;
};

HostResolver::Answer HostResolver::SystemLookup(const std::string& host, const std::string& port) {
  // What Asio's resolver asked for: TCP, any family, no flags.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  addrinfo* found = nullptr;
  const int error = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  const int saved_errno = errno;
  Answer answer;
  answer.error = LookupError(error, saved_errno);
  for (const addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    if (entry->ai_family != AF_INET && entry->ai_family != AF_INET6) continue;
    if (entry->ai_addrlen > sizeof(sockaddr_in6)) continue;
    tcp::endpoint endpoint;
    std::memcpy(endpoint.data(), entry->ai_addr, entry->ai_addrlen);
    endpoint.resize(entry->ai_addrlen);
    answer.endpoints.push_back(endpoint);
  }
  if (found != nullptr) ::freeaddrinfo(found);
  return answer;
}

HostResolver::HostResolver(net::any_io_executor executor, Lookup lookup)
    : executor_(std::move(executor)), lookup_(lookup ? std::move(lookup) : Lookup(SystemLookup)) {}

HostResolver::~HostResolver() {
  for (auto& [key, flight] : in_flight_) {
    const std::lock_guard<std::mutex> lock(flight->mutex);
    flight->abandoned = true;
  }
}

void HostResolver::RunLookup(const std::shared_ptr<InFlight>& flight, const Lookup& lookup,
                             const std::string& host, const std::string& port,
                             HostResolver* resolver) {
  Answer answer;
  try {
    answer = lookup(host, port);
  } catch (const std::bad_alloc&) {
    answer = Answer{net::error::no_memory, {}};
  }
  const std::lock_guard<std::mutex> lock(flight->mutex);
  if (flight->abandoned) return;  // the resolver is gone: nothing of the loop's may be touched
  // The resolver, its executor and the io_context are alive while `abandoned` is unset.
  net::post(resolver->executor_, [flight, resolver, answer = std::move(answer)]() mutable {
    if (!flight->abandoned) resolver->Deliver(flight, std::move(answer));
  });
}

void HostResolver::Deliver(const std::shared_ptr<InFlight>& flight, Answer answer) {
  flight->answered = true;
  flight->answer = std::move(answer);
  WakeAll(flight->waiters);
  const auto found = in_flight_.find(flight->key);
  if (found != in_flight_.end() && found->second == flight) in_flight_.erase(found);
}

void HostResolver::Shutdown() {
  shut_down_ = true;
  for (auto& [key, flight] : in_flight_) WakeAll(flight->waiters);
}

net::awaitable<HostResolver::Answer> HostResolver::Resolve(
    std::string host, std::uint16_t port, std::chrono::steady_clock::duration timeout,
    util::StopSignal* stop) {
  if (shut_down_ || (stop != nullptr && stop->triggered())) {
    co_return Answer{net::error::operation_aborted, {}};
  }
  std::string port_text = std::to_string(port);
  std::string key = host + ":" + port_text;
  std::shared_ptr<InFlight> flight;
  if (const auto found = in_flight_.find(key); found != in_flight_.end()) {
    flight = found->second;  // join the lookup under way
  } else {
    flight = std::make_shared<InFlight>(key);
    // The thread takes no signal (the loop's signal handling stays where it is): it starts with
    // every signal blocked, the mask it inherits from here.
    sigset_t all;
    sigset_t previous;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous);
    std::error_code start_error;
    try {
      std::thread(&HostResolver::RunLookup, flight, lookup_, std::move(host), std::move(port_text),
                  this)
          .detach();
    } catch (const std::system_error& failure) {
      start_error = failure.code();
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (start_error) {
      co_return Answer{
          boost::system::error_code(start_error.value(), boost::system::system_category()), {}};
    }
    ++lookups_started_;
    in_flight_.emplace(std::move(key), flight);
  }

  net::steady_timer deadline(executor_, timeout);
  const auto position = flight->waiters.insert(flight->waiters.end(), &deadline);
  if (stop != nullptr) {
    co_await stop->SleepOn(deadline);
  } else {
    co_await deadline.async_wait(kAsTuple);
  }
  if (!flight->answered && !shut_down_) flight->waiters.erase(position);  // woke by itself

  if (shut_down_ || (stop != nullptr && stop->triggered())) {
    co_return Answer{net::error::operation_aborted, {}};
  }
  if (flight->answered) co_return flight->answer;
  co_return Answer{net::error::timed_out, {}};
}

}  // namespace nanobatch::http
