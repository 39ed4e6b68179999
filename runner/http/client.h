#pragma once
// Client: HTTPS requests and streamed downloads on one io_context, with verified TLS (TLS 1.2 or
// later, peer verification, SNI, OpenSSL's own host-name or IP check), a small keep-alive pool
// per host, and a deadline on every network operation. A connection that failed in any way is
// closed, never reused; redirects are never followed (a 3xx is returned as it is).
//
// Beast and OpenSSL stay behind the pimpl: this header is cheap to include.
//
// Example:
//   Client client(io.get_executor(), {.ca_file = "ca.pem"});
//   Result<Response> r = co_await client.Fetch(request, 30s, 1 << 20);
//   if (auto* response = std::get_if<Response>(&r)) { ... response->status ... }

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "runner/http/address_policy.h"
#include "runner/http/host_resolver.h"
#include "runner/http/request_bytes.h"
#include "runner/http/url.h"
#include "runner/util/async.h"

namespace nanobatch::http {

using Duration = std::chrono::steady_clock::duration;

struct ClientOptions {
  std::string ca_file;  // PEM; empty: the system trust store
  // The deadline of a host's lookup, and then of connect and TLS handshake together.
  Duration connect_timeout = std::chrono::seconds(10);
  std::size_t max_connections_per_host = 8;
  // A kept-alive connection idle longer than this is closed instead of reused: servers drop idle
  // connections, and a POST sent on one already dropped would leave us unsure whether it arrived.
  Duration max_idle = std::chrono::seconds(10);
  // A download fails when no byte arrives for `download_stall`, or when, once that long into the
  // body, its bytes came slower than `download_min_bytes_per_s` on average (0: no minimum). A
  // server trickling a byte a second is caught in seconds, not at the download's total deadline.
  Duration download_stall = std::chrono::seconds(15);
  std::uint64_t download_min_bytes_per_s = 1024;
  // Called after every Send (not downloads) with the request's method, its target and the
  // response's status, 0 when no response came: the service counts API requests with it.
  std::function<void(bool is_post, const std::string& target, int status)> on_response{};
  // Host names to addresses, a blocking call run on a thread of its own (HostResolver): empty
  // for getaddrinfo; tests stand in a lookup that hangs.
  HostResolver::Lookup lookup{};
};

struct Request {
  enum class Method { kGet, kPost };
  Method method = Method::kGet;
  Endpoint endpoint;
  std::vector<Header> headers;
  std::string body;  // sent as application/json with POST
};

struct Response {
  int status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header, if any
};

// No response was received. `maybe_delivered` is true when the request may have reached the
// server (it was written, or partly written): for a paid POST that means "may have been charged".
// `permanent` is true for a TLS failure that no retry can cure (the certificate is not trusted,
// not for this host, expired; no TLS >= 1.2; not TLS at all): a configuration problem, and
// `what` says which and what to set.
// `refused_by_policy`: nothing was sent; every address the host resolved to was refused by the
// download address policy (`what` names the first and the setting that would allow it).
struct NetworkError {
  boost::system::error_code code;
  std::string what;
  bool maybe_delivered = false;
  bool permanent = false;
  bool refused_by_policy = false;
  bool too_large = false;  // the body is over the caller's limit (announced, or as it came)
};

template <typename T>
using Result = std::variant<T, NetworkError>;

// Receives a download's body as it arrives. Returning false aborts the download.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual bool Write(const char* data, std::size_t size) = 0;
};

struct DownloadOutcome {
  int status = 0;           // the HTTP status; the body went to the sink only when 200
  std::uint64_t bytes = 0;  // body bytes delivered to the sink
  // A 200 whose body is encoded (Content-Encoding other than identity), though the request asked
  // for identity: the header's value as sent (capped: DownloadParser; the server's text, to be
  // scrubbed before it is shown); the body was not read. The client decodes nothing.
  std::string content_encoding{};
};

class Client {
 public:
  // Whether the trust store (`ca_file`, or the system's when empty) loads; `error` says why not.
  // Checked before a run starts, so that a bad CA file is a configuration error (exit 2).
  static bool CheckTrustStore(const std::string& ca_file, std::string& error);
  // Throws std::runtime_error if the trust store cannot be loaded (CheckTrustStore said it could:
  // the file changed since, which is no state a run can go on from).
  Client(boost::asio::any_io_executor executor, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One of a host's connection slots, held: at most max_connections_per_host exchanges with a
  // host at once. A caller that must do something right before its request leaves (take a rate
  // token, record a paid intent) acquires the slot first, does it, then Sends: requests then
  // leave at the token rate even when they had to queue for a connection. Released when
  // destroyed; empty (false) when the client shut down or the stop signal came first.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();
    explicit operator bool() const { return slots_ != nullptr; }

   private:
    friend class Client;
    // The semaphore of the host pool it was taken from: also which host it is for.
    util::AsyncSemaphore* slots_ = nullptr;
  };
  // Waits for a slot of `endpoint`'s host; `stop` (when given) ends the wait at once.
  boost::asio::awaitable<Slot> AcquireSlot(const Endpoint& endpoint,
                                           util::StopSignal* stop = nullptr);
  // One request over `slot` (of the request's host); the body of the response is capped at
  // `body_limit` bytes. Opening a connection suspends (lookup, connect, TLS handshake): when
  // `stop` (if given) was triggered meanwhile, the request is not written and the answer is
  // operation_aborted, not delivered. "Stop submitting" then holds for a POST already past
  // every other wait. The lookup is not waited for past the trigger.
  boost::asio::awaitable<Result<Response>> Send(const Slot& slot, Request request, Duration timeout,
                                                std::size_t body_limit,
                                                util::StopSignal* stop = nullptr);
  // AcquireSlot, then Send.
  boost::asio::awaitable<Result<Response>> Fetch(Request request, Duration timeout,
                                                 std::size_t body_limit,
                                                 util::StopSignal* stop = nullptr);

  // GET `endpoint`, streaming the body into `sink` (which must outlive the call: it is awaited,
  // never spawned). Bodies above `max_bytes` fail the download with http::error::body_limit.
  // Only addresses `addresses` allows are connected to; when the host has none, the download
  // fails with `refused_by_policy` (downloads keep their own connections, never the API's).
  boost::asio::awaitable<Result<DownloadOutcome>> Download(Endpoint endpoint, BodySink& sink,
                                                           std::uint64_t max_bytes,
                                                           Duration timeout,
                                                           const AddressPolicy& addresses);

  // Ends every image download that is not yet receiving its body (waiting for a connection
  // slot, connecting, requesting, waiting for the answer's header: they complete with
  // operation_aborted) and refuses new ones. Bodies already streaming go on, as do API requests:
  // a submit already sent may be answered with the id of a task it paid for.
  void CutWaitingDownloads();

  // Cancels every operation in progress (they complete with an error) and refuses new ones; a
  // host name being looked up is no longer waited for.
  void Shutdown();

  struct Stats {
    std::uint64_t connections_opened = 0;
    std::uint64_t connections_reused = 0;
    std::uint64_t sessions_resumed = 0;  // of the connections opened: abbreviated handshakes
    std::uint64_t idle_discarded = 0;    // idle connections closed: too old, or not quiet
  };
  Stats stats() const;

 private:
  boost::asio::awaitable<Result<Response>> SendUnobserved(const Slot& slot, Request request,
                                                          Duration timeout, std::size_t body_limit,
                                                          util::StopSignal* stop);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nanobatch::http
