#pragma once
// Server: a small plain-HTTP/1.1 server on the engine's event loop, for `run`'s webhook receiver
// and serve's API (production puts a TLS-terminating proxy in front). One coroutine
// per connection, keep-alive, a deadline on every read and write, request bodies capped, a cap
// on open connections; the handler is synchronous (the loop is single-threaded, so it may touch
// the engine's state directly) and never sees a request that failed to parse (such a request is
// answered 400, or 431 for a header over kMaxRequestHeaderBytes, and its connection closed). A HEAD
// request reaches the handler as a GET, and is answered with that GET's header alone.
//
// Example:
//   Server server(executor, [](const IncomingRequest& r) { return Reply{200, "ok\n"}; }, {});
//   if (!server.Listen("127.0.0.1:8751", error)) ...;
//   co_await server.Run(stop);   // until `stop` is triggered; then every connection is closed

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "runner/util/async.h"

namespace nanobatch::http {

struct IncomingRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string body;
  std::string authorization;  // the Authorization header, if any
};

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
  std::string allow{};  // the Allow header of a 405: the methods the target takes
};

struct ServerOptions {
  std::size_t max_body = std::size_t{64} << 10;
  // When set, the body cap of each request by its method and target (read from its header
  // first): serve takes manifests on POST /jobs and small callbacks everywhere else.
  std::function<std::size_t(std::string_view method, std::string_view target)> body_limit{};
  // A request's header must arrive within `read_timeout`; its body may take longer as long as
  // no read waits longer than that and, past its first `read_timeout`, it averages at least
  // `min_body_bytes_per_s`.
  std::chrono::steady_clock::duration read_timeout = std::chrono::seconds(10);
  std::uint64_t min_body_bytes_per_s = 16 << 10;
  std::size_t max_connections = 256;
};

class Server {
 public:
  using Handler = std::function<Reply(const IncomingRequest&)>;
  Server(boost::asio::any_io_executor executor, Handler handler, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds `address` ("HOST:PORT", "[V6]:PORT"; port 0 picks one). False with `error` otherwise.
  bool Listen(const std::string& address, std::string& error);
  std::uint16_t port() const;
  // Serves until `stop` is triggered, then closes every connection and returns. Out of file
  // descriptors (or kernel memory), it pauses accepting for a moment instead of retrying at once.
  boost::asio::awaitable<void> Run(util::StopSignal& stop);
  // Connections that failed on their way in (tests).
  std::uint64_t accept_failures() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nanobatch::http
