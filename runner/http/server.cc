#include "runner/http/server.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <limits>
#include <list>
#include <optional>
#include <tuple>

#include "runner/http/parsers.h"

namespace nanobatch::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

constexpr auto kAsTuple = net::as_tuple(net::use_awaitable);

// How long the acceptor rests after running out of descriptors or memory.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

// Out of descriptors or kernel memory: the connection stays queued, and the next accept fails at
// once the same way, so accepting again straight away spins the event loop at full CPU until
// something is closed.
bool IsResourceShortage(const boost::system::error_code& error) {
  return error == net::error::no_descriptors || error == net::error::no_buffer_space ||
         error == net::error::no_memory ||
         error == boost::system::error_code(ENFILE, boost::system::system_category());
}

// An exception escaping a connection's coroutine is a bug: it leaves io_context::run(), and main
// reports it (exit 70), rather than being dropped.
void Rethrow(std::exception_ptr failure) {
  if (failure) std::rethrow_exception(failure);
}

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// An HTTP/1.1 request with "Expect: 100-continue" (HTTP/1.0 ones are not answered so: RFC 9110,
// 10.1.1).
bool ExpectsContinue(const bhttp::request<bhttp::string_body>& request) {
  if (request.version() < 11) return false;
  const auto expect = request.find(bhttp::field::expect);
  return expect != request.end() && beast::iequals(expect->value(), "100-continue");
}

// What a request that failed to parse gets before its connection is closed: 431 for a header
// over the parser's limit (a 20 KB URL), 400 for anything that is not HTTP/1 (a TLS hello sent
// to this plain-HTTP port, a bad header line), nothing when the client just went away or was
// too slow. (Closing without a word left curl saying "empty reply from server".)
std::optional<bhttp::status> RefusalOf(const boost::system::error_code& error) {
  if (error.category() != bhttp::make_error_code(bhttp::error::bad_target).category()) {
    return std::nullopt;  // closed, reset, timed out
  }
  switch (static_cast<bhttp::error>(error.value())) {
    case bhttp::error::end_of_stream:
    case bhttp::error::partial_message:
    case bhttp::error::short_read:
      return std::nullopt;
    case bhttp::error::header_limit:
    case bhttp::error::buffer_overflow:
      return bhttp::status::request_header_fields_too_large;
    default:
      return bhttp::status::bad_request;
  }
}

}  // namespace

struct Server::Impl {
  Impl(net::any_io_executor executor, Handler handler, ServerOptions options)
      : executor(executor),
        handler(std::move(handler)),
        options(std::move(options)),
        acceptor(executor),
        sessions_done(executor) {}

  // The body after its header. The header's deadline does not cover it: a manifest of 64 MiB
  // POSTed to serve takes a minute at 10 Mbit/s, and was cut off after `read_timeout` (a 2.7 MB
  // upload at 150 KB/s got no answer). The body must keep coming instead: no read waits longer
  // than `read_timeout`, and once past its first `read_timeout` it must have averaged
  // `min_body_bytes_per_s` (a client trickling a byte at a time is cut off then, not after
  // the whole body's worth of deadlines).
  net::awaitable<boost::system::error_code> ReadBody(
      beast::tcp_stream& stream, beast::flat_buffer& buffer,
      bhttp::request_parser<bhttp::string_body>& parser) {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point start = Clock::now();
    std::uint64_t received = 0;
    while (!parser.is_done()) {
      const Clock::time_point now = Clock::now();
      const auto earned = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
          static_cast<double>(received) / static_cast<double>(options.min_body_bytes_per_s)));
      const Clock::time_point deadline =
          std::min(now + options.read_timeout, start + options.read_timeout + earned);
      if (deadline <= now) co_return beast::error::timeout;
      stream.expires_at(deadline);
      auto [error, read_bytes] = co_await bhttp::async_read_some(stream, buffer, parser, kAsTuple);
      if (error) co_return error;
      received += read_bytes;
    }
    co_return boost::system::error_code();
  }

  net::awaitable<void> Session(beast::tcp_stream& stream) {
    beast::flat_buffer buffer;
    while (true) {
      bhttp::request_parser<bhttp::string_body> parser;
      // With a limit per route, the header is read first under the largest limit, then the
      // route's limit applies to the body (a declared length above it is refused at once).
      LimitRequest(parser, options.body_limit ? std::numeric_limits<std::uint64_t>::max()
                                              : options.max_body);
      stream.expires_after(options.read_timeout);
      auto [header_error, header_bytes] =
          co_await bhttp::async_read_header(stream, buffer, parser, kAsTuple);
      bool too_big = header_error == bhttp::error::body_limit;
      if (header_error && !too_big) {
        if (auto status = RefusalOf(header_error)) {
          co_await Refuse(stream, *status,
                          *status == bhttp::status::bad_request ? "malformed HTTP request\n"
                                                                : "request header too large\n");
        }
        co_return;
      }
      if (!too_big && options.body_limit) {
        const std::size_t limit =
            options.body_limit(parser.get().method_string(), parser.get().target());
        parser.body_limit(limit);
        too_big = parser.content_length() && *parser.content_length() > limit;
      }
      boost::system::error_code read_error;
      if (!too_big && ExpectsContinue(parser.get())) {
        // The client holds the body back until told to send it (curl does for bodies above
        // 1 MB: a manifest POSTed to serve waited a second for this, then sent it anyway).
        auto [error, written] = co_await net::async_write(stream, net::buffer(kContinue), kAsTuple);
        if (error) co_return;
      }
      if (!too_big) {
        read_error = co_await ReadBody(stream, buffer, parser);
        too_big = read_error == bhttp::error::body_limit;
      }
      if (too_big) {
        co_await Refuse(stream, bhttp::status::payload_too_large, "request body too large\n");
        co_return;
      }
      if (read_error) {
        if (auto status = RefusalOf(read_error)) {  // a bad chunk, say
          co_await Refuse(stream, *status, "malformed HTTP request\n");
        }
        co_return;
      }
      auto& request = parser.get();
      IncomingRequest incoming;
      // HEAD is GET without the body (RFC 9110, 9.3.2): health checks and `curl -I` use it.
      const bool head = request.method() == bhttp::verb::head;
      incoming.method = head ? std::string("GET") : std::string(request.method_string());
      incoming.target = std::string(request.target());
      incoming.body = std::move(request.body());
      if (auto it = request.find(bhttp::field::authorization); it != request.end()) {
        incoming.authorization = std::string(it->value());
      }
      const Reply reply = handler(incoming);
      bhttp::response<bhttp::string_body> response{static_cast<bhttp::status>(reply.status),
                                                   request.version()};
      response.set(bhttp::field::server, "nanobatch");
      response.set(bhttp::field::content_type, reply.content_type);
      if (!reply.allow.empty()) response.set(bhttp::field::allow, reply.allow);
      response.keep_alive(request.keep_alive());
      response.body() = reply.body;
      response.prepare_payload();  // a HEAD's Content-Length is its GET's
      stream.expires_after(options.read_timeout);
      boost::system::error_code write_error;
      if (head) {
        bhttp::response_serializer<bhttp::string_body> header_only(response);
        std::tie(write_error, std::ignore) =
            co_await bhttp::async_write_header(stream, header_only, kAsTuple);
      } else {
        std::tie(write_error, std::ignore) =
            co_await bhttp::async_write(stream, response, kAsTuple);
      }
      if (write_error || !response.keep_alive()) co_return;
    }
  }

  // Answers `status` with `text` and leaves the connection to be closed.
  net::awaitable<void> Refuse(beast::tcp_stream& stream, bhttp::status status,
                              std::string_view text) {
    bhttp::response<bhttp::string_body> refusal{status, 11};
    refusal.set(bhttp::field::server, "nanobatch");
    refusal.body() = std::string(text);
    refusal.keep_alive(false);
    refusal.prepare_payload();
    stream.expires_after(options.read_timeout);
    co_await bhttp::async_write(stream, refusal, kAsTuple);
  }

  net::any_io_executor executor;
  Handler handler;
  ServerOptions options;
  tcp::acceptor acceptor;
  std::list<beast::tcp_stream*> open;
  util::AsyncEvent sessions_done;
  std::uint64_t accept_failures = 0;
};

Server::Server(net::any_io_executor executor, Handler handler, ServerOptions options)
    : impl_(std::make_unique<Impl>(executor, std::move(handler), std::move(options))) {}

Server::~Server() = default;

bool Server::Listen(const std::string& address, std::string& error) {
  // "IP:PORT" or "[V6]:PORT"; port 0 asks the kernel for a free one.
  const auto colon = address.rfind(':');
  std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  const std::string port_text = colon == std::string::npos ? "" : address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  const auto [end, parse_error] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (host.empty() || port_text.empty() || parse_error != std::errc() ||
      end != port_text.data() + port_text.size() || port > 65535) {
    error = "\"" + address + "\" is not IP:PORT";
    return false;
  }
  boost::system::error_code code;
  const auto ip = net::ip::make_address(host, code);
  if (code) {
    error = "\"" + host + "\" is not an IP address";
    return false;
  }
  const tcp::endpoint endpoint(ip, static_cast<std::uint16_t>(port));
  auto& acceptor = impl_->acceptor;
  if (acceptor.open(endpoint.protocol(), code); !code) {
    acceptor.set_option(net::socket_base::reuse_address(true), code);
    if (acceptor.bind(endpoint, code); !code)
      acceptor.listen(net::socket_base::max_listen_connections, code);
  }
  if (code) {
    error = "cannot listen on " + address + ": " + code.message();
    boost::system::error_code ignored;
    acceptor.close(ignored);
    return false;
  }
  return true;
}

std::uint64_t Server::accept_failures() const { return impl_->accept_failures; }

std::uint16_t Server::port() const {
  boost::system::error_code error;
  const auto endpoint = impl_->acceptor.local_endpoint(error);
  return error ? 0 : endpoint.port();
}

net::awaitable<void> Server::Run(util::StopSignal& stop) {
  Impl& impl = *impl_;
  std::size_t sessions = 0;
  // The stop signal wakes this watcher, which closes the acceptor and every connection.
  net::co_spawn(
      impl.executor,
      [&]() -> net::awaitable<void> {
        co_await stop.SleepFor(std::chrono::hours(24 * 365 * 100));
        boost::system::error_code ignored;
        impl.acceptor.close(ignored);
        for (beast::tcp_stream* stream : impl.open) stream->socket().close(ignored);
      },
      net::detached);
  while (!stop.triggered()) {
    auto [error, socket] = co_await impl.acceptor.async_accept(kAsTuple);
    if (error) {
      if (stop.triggered() || error == net::error::operation_aborted ||
          error == net::error::bad_descriptor) {
        break;
      }
      ++impl.accept_failures;
      if (IsResourceShortage(error)) co_await stop.SleepFor(kAcceptPause);
      continue;  // a connection that failed on its way in (reset, out of files): go on
    }
    if (sessions >= impl.options.max_connections) continue;  // dropped: the peer retries
    ++sessions;
    net::co_spawn(
        impl.executor,
        [&impl, &sessions, socket = std::move(socket)]() mutable -> net::awaitable<void> {
          beast::tcp_stream stream(std::move(socket));
          const auto position = impl.open.insert(impl.open.end(), &stream);
          co_await impl.Session(stream);
          impl.open.erase(position);
          boost::system::error_code ignored;
          stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
          --sessions;
          impl.sessions_done.Notify();
        },
        Rethrow);
  }
  while (sessions > 0) co_await impl.sessions_done.Wait();
}

}  // namespace nanobatch::http
