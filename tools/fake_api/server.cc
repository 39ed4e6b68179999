// fake_api: an HTTPS simulator of the Nano Banana 2 API (../shared/reference/api.md) on
// loopback, for tests, benchmarks and the demo. A thin Beast shell around Simulator: one
// thread, one coroutine per connection, keep-alive, a deadline on every network operation.
//
//   fake_api --cert server.pem --key server.key --port 0 --port-file ports.json
//
// --port-file receives {"api_port": N, "file_port": M} once both listeners are bound, so a test
// can start the server on port 0 and find it.

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>

#include "tools/fake_api/simulator.h"

namespace nanobatch::fake_api {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Stream = beast::ssl_stream<beast::tcp_stream>;

constexpr auto kAsTuple = net::as_tuple(net::use_awaitable);
constexpr auto kIdleTimeout = std::chrono::seconds(30);

// The wire fault "stray-answer": a whole second answer after the real one, on a connection kept
// open (after /v1 answers and, drawn separately, after images).
constexpr std::string_view kStrayAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";

// Sends `bytes` as they are (kStrayAnswer, kInterimAnswers); false if the connection failed.
net::awaitable<bool> SendRaw(Stream& stream, std::string_view bytes) {
  auto [error, written] = co_await net::async_write(stream, net::buffer(bytes), kAsTuple);
  co_return !error;
}

// The wire fault "interim": interim (1xx) answers before the real one, which HTTP/1.1 allows
// (a proxy's 100 Continue, a CDN's 103 Early Hints) and every client must read past.
constexpr std::string_view kInterimAnswers =
    "HTTP/1.1 100 Continue\r\n\r\n"
    "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";

// The wire fault "switching-protocols": a switch to another protocol that the request never
// asked for (it has no Upgrade), then a frame of it: what a misrouted WebSocket endpoint or a
// hostile proxy would send. Also in place of images.
constexpr std::string_view kSwitchingProtocols =
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    "\x81\x05hello";

struct ServerSettings {
  double slow_ms = 2000;  // how long a "slow" image body takes in all
  // How an image body is delimited: "length" (Content-Length, as file hosts do), "chunked"
  // (Transfer-Encoding: chunked) or "close" (neither: the body ends with the connection, closed
  // with a TLS close_notify).
  std::string image_framing = "length";
  // A Content-Encoding header on every image (the bytes unchanged), though the client asked for
  // identity: a CDN that compresses what it should not. Empty: none.
  std::string image_content_encoding;
  bool log_requests = false;
  bool echo_authorization = false;  // every error message quotes the request's Authorization
};

// A careless server: its error message repeats the request's Authorization header.
void EchoAuthorization(Reply& reply, const std::string& authorization) {
  boost::system::error_code error;
  boost::json::value body = boost::json::parse(reply.body, error);
  if (error || !body.is_object() || !body.as_object().contains("error")) return;
  auto& inner = body.as_object()["error"].as_object();
  inner["message"] = std::string(inner["message"].as_string()) +
                     " (request header Authorization: " + authorization + ")";
  reply.body = boost::json::serialize(body);
}

http::response<http::string_body> JsonResponse(const Reply& reply, unsigned version,
                                               bool keep_alive) {
  http::response<http::string_body> response{static_cast<http::status>(reply.status), version};
  response.set(http::field::server, "nanobatch-fake-api");
  response.set(http::field::content_type, "application/json");
  if (reply.retry_after) response.set(http::field::retry_after, std::to_string(*reply.retry_after));
  response.keep_alive(keep_alive);
  response.body() = reply.body;
  response.prepare_payload();
  return response;
}

// Sends an image, honouring the delivery fault chosen by the simulator. Returns false when the
// connection must not be used again.
net::awaitable<bool> SendImage(Stream& stream, const ImageReply& image, unsigned version,
                               bool keep_alive, const ServerSettings& settings) {
  if (image.delivery == Delivery::kHang) {
    // The request was read; no answer comes, until the client gives up (or two minutes pass).
    net::steady_timer timer(co_await net::this_coro::executor, std::chrono::seconds(120));
    co_await timer.async_wait(kAsTuple);
    co_return false;
  }
  if (settings.image_framing != "length" && image.delivery == Delivery::kNormal) {
    const bool chunked = settings.image_framing == "chunked";
    http::response<http::string_body> response{http::status::ok, version};
    response.set(http::field::server, "nanobatch-fake-api");
    response.set(http::field::content_type, image.content_type);
    if (!settings.image_content_encoding.empty()) {
      response.set(http::field::content_encoding, settings.image_content_encoding);
    }
    response.keep_alive(chunked && keep_alive);
    if (chunked) response.chunked(true);  // else no length at all: the end of the connection
    response.body() = image.bytes;
    beast::get_lowest_layer(stream).expires_after(kIdleTimeout);
    auto [error, n] = co_await http::async_write(stream, response, kAsTuple);
    if (error) co_return false;
    if (chunked) co_return keep_alive;
    co_await stream.async_shutdown(kAsTuple);
    co_return false;
  }
  http::response<http::empty_body> head{http::status::ok, version};
  head.set(http::field::server, "nanobatch-fake-api");
  head.set(http::field::content_type, image.content_type);
  if (!settings.image_content_encoding.empty()) {
    head.set(http::field::content_encoding, settings.image_content_encoding);
  }
  head.content_length(image.bytes.size());
  head.keep_alive(keep_alive);
  http::response_serializer<http::empty_body> serializer{head};
  beast::get_lowest_layer(stream).expires_after(kIdleTimeout);
  auto [header_error, header_bytes] =
      co_await http::async_write_header(stream, serializer, kAsTuple);
  if (header_error) co_return false;

  const std::size_t half = image.bytes.size() / 2;
  switch (image.delivery) {
    case Delivery::kReset: {
      co_await net::async_write(stream, net::buffer(image.bytes.data(), half), kAsTuple);
      auto& socket = beast::get_lowest_layer(stream).socket();
      beast::error_code ignored;
      socket.set_option(tcp::socket::linger(true, 0), ignored);  // RST, not FIN
      socket.close(ignored);
      co_return false;
    }
    case Delivery::kTruncate: {
      co_await net::async_write(stream, net::buffer(image.bytes.data(), half), kAsTuple);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
      co_await stream.async_shutdown(kAsTuple);  // a clean TLS close, short of Content-Length
      co_return false;
    }
    case Delivery::kSlow: {
      constexpr int kPieces = 10;
      net::steady_timer timer(co_await net::this_coro::executor);
      for (int i = 0; i < kPieces; ++i) {
        const std::size_t begin = image.bytes.size() * i / kPieces;
        const std::size_t end = image.bytes.size() * (i + 1) / kPieces;
        auto [error, n] = co_await net::async_write(
            stream, net::buffer(image.bytes.data() + begin, end - begin), kAsTuple);
        if (error) co_return false;
        timer.expires_after(
            std::chrono::milliseconds(static_cast<int>(settings.slow_ms / kPieces)));
        co_await timer.async_wait(kAsTuple);
      }
      co_return keep_alive;
    }
    case Delivery::kTrickle: {
      // One byte a second: only a minimum rate (not a total deadline of minutes) catches it.
      net::steady_timer timer(co_await net::this_coro::executor);
      for (char byte : image.bytes) {
        beast::get_lowest_layer(stream).expires_after(kIdleTimeout);
        auto [error, n] = co_await net::async_write(stream, net::buffer(&byte, 1), kAsTuple);
        if (error) co_return false;
        timer.expires_after(std::chrono::seconds(1));
        co_await timer.async_wait(kAsTuple);
      }
      co_return keep_alive;
    }
    case Delivery::kHang:
      break;  // handled before the header (SendImage's start)
    case Delivery::kNormal: {
      auto [error, n] = co_await net::async_write(stream, net::buffer(image.bytes), kAsTuple);
      co_return !error && keep_alive;
    }
  }
  co_return false;
}

// A /v1 answer sent broken, as a hostile or failing server or proxy would (`kind`: see
// Simulator::Options::wire_fault). The connection is closed afterwards (or reset).
net::awaitable<void> SendBroken(Stream& stream, const Reply& reply, const std::string& kind) {
  auto& tcp_layer = beast::get_lowest_layer(stream);
  auto write = [&](std::string_view bytes) -> net::awaitable<bool> {
    tcp_layer.expires_after(kIdleTimeout);
    auto [error, n] = co_await net::async_write(stream, net::buffer(bytes), kAsTuple);
    co_return !error;
  };
  const std::string status_line = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n";
  const std::string json = "Content-Type: application/json\r\n";
  net::steady_timer timer(co_await net::this_coro::executor);
  if (kind == "hang") {
    // Accepts, reads the request, never answers: the client's deadline must end it.
    timer.expires_after(std::chrono::seconds(120));
    co_await timer.async_wait(kAsTuple);
  } else if (kind == "trickle") {
    // One byte a second: only a deadline on the whole exchange ends it.
    const std::string whole = status_line + json +
                              "Content-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n" +
                              reply.body;
    for (char byte : whole) {
      if (!co_await write(std::string_view(&byte, 1))) break;
      timer.expires_after(std::chrono::seconds(1));
      co_await timer.async_wait(kAsTuple);
    }
  } else if (kind == "huge-headers") {
    std::string head = status_line + json;
    while (head.size() < (4u << 20)) head += "X-Padding: " + std::string(1000, 'a') + "\r\n";
    co_await write(head + "Content-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n" +
                   reply.body);
  } else if (kind == "huge-body") {
    // Announces a gigabyte and sends it until the client hangs up.
    if (co_await write(status_line + json + "Content-Length: 1073741824\r\n\r\n")) {
      const std::string chunk(64 << 10, ' ');
      // The await in the body, not after && in the condition (tools/coroutine_lint.py).
      for (int i = 0; i < (1 << 14); ++i) {
        if (!co_await write(chunk)) break;
      }
    }
  } else if (kind == "length-long") {
    co_await write(status_line + json + "Content-Length: " +
                   std::to_string(reply.body.size() * 10 + 100) + "\r\n\r\n" + reply.body);
  } else if (kind == "length-short") {
    co_await write(status_line + json + "Content-Length: " + std::to_string(reply.body.size() / 2) +
                   "\r\n\r\n" + reply.body);
  } else if (kind == "bad-chunked") {
    co_await write(status_line + json + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + reply.body +
                   "\r\n0\r\n\r\n");
  } else if (kind == "redirect") {
    co_await write(
        "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n"
        "Content-Length: 0\r\n\r\n");
  } else if (kind == "bare-status") {
    // "HTTP/1.1 200" and nothing after the code: no space, no reason phrase.
    co_await write("HTTP/1.1 " + std::to_string(reply.status) + "\r\n" + json + "Content-Length: " +
                   std::to_string(reply.body.size()) + "\r\n\r\n" + reply.body);
  } else if (kind == "switching-protocols") {
    co_await write(kSwitchingProtocols);
  } else if (kind == "gateway-timeout") {
    // What a CDN in front of the API answers when the API took the request and did not answer
    // in time (Cloudflare's 524): HTML, no API error body.
    const std::string page = "<html><body><h1>524: A timeout occurred</h1></body></html>";
    co_await write(
        "HTTP/1.1 524 A Timeout Occurred\r\nContent-Type: text/html\r\n"
        "Content-Length: " +
        std::to_string(page.size()) + "\r\n\r\n" + page);
  } else if (kind == "no-keepalive") {
    co_await write(status_line + json + "Connection: close\r\nContent-Length: " +
                   std::to_string(reply.body.size()) + "\r\n\r\n" + reply.body);
  }
  if (kind == "reset") {
    boost::system::error_code ignored;
    tcp_layer.socket().set_option(tcp::socket::linger(true, 0), ignored);  // RST, not FIN
    tcp_layer.socket().close(ignored);
    co_return;
  }
  tcp_layer.expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(kAsTuple);
}

net::awaitable<void> Session(Stream stream, Simulator& simulator, bool file_only,
                             ServerSettings settings) {
  beast::get_lowest_layer(stream).expires_after(kIdleTimeout);
  auto [handshake_error] = co_await stream.async_handshake(ssl::stream_base::server, kAsTuple);
  if (handshake_error) co_return;
  simulator.OnHandshake(SSL_session_reused(stream.native_handle()) == 1,
                        SSL_get_cipher_name(stream.native_handle()));

  beast::flat_buffer buffer;
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(4 << 20);
    beast::get_lowest_layer(stream).expires_after(kIdleTimeout);
    auto [read_error, read_bytes] = co_await http::async_read(stream, buffer, parser, kAsTuple);
    if (read_error) co_return;  // closed by the client, timed out, or garbage: just drop it
    http::request<http::string_body> request = parser.release();
    const std::string target(request.target());
    const auto now = Clock::now();
    const bool keep_alive = request.keep_alive();
    if (settings.log_requests) {
      std::cerr << request.method_string() << " " << target << "\n";
    }

    if (request.method() == http::verb::get && target.rfind("/images/", 0) == 0) {
      ImageReply image = simulator.Image(target, now);
      if (image.status != 200) {
        Reply missing{
            image.status,
            image.status == 404
                ? R"({"error":{"code":"not_found","message":"No such image","type":"invalid_request_error"}})"
                : R"({"error":{"code":"image_unavailable","message":"Not served","type":"api_error"}})",
            std::nullopt};
        auto response = JsonResponse(missing, request.version(), keep_alive);
        if (!image.location.empty()) response.set(http::field::location, image.location);
        auto [error, n] = co_await http::async_write(stream, response, kAsTuple);
        if (error || !keep_alive) break;
        continue;
      }
      if (simulator.options().wire_fault == "interim" && simulator.DrawWireFault()) {
        const bool sent = co_await SendRaw(stream, kInterimAnswers);
        if (!sent) co_return;
      }
      if (simulator.options().wire_fault == "switching-protocols" && simulator.DrawWireFault()) {
        co_await SendRaw(stream, kSwitchingProtocols);
        co_return;  // the connection is another protocol's now: dropped
      }
      if (!co_await SendImage(stream, image, request.version(), keep_alive, settings)) co_return;
      if (simulator.options().wire_fault == "stray-answer" && simulator.DrawWireFault()) {
        const bool sent = co_await SendRaw(stream, kStrayAnswer);
        if (!sent) co_return;
      }
      continue;
    }

    const std::string authorization(request[http::field::authorization]);
    // A broken answer: a redirect comes from something in front of the API (the request never
    // reaches it); every other kind breaks the answer of a request the API handled (and
    // charged), the case that costs money.
    const bool broken = !file_only && target.rfind("/v1/", 0) == 0 && simulator.DrawWireFault();
    if (broken && simulator.options().wire_fault == "redirect") {
      // Named, not temporaries: GCC 12 destroys a braced temporary passed to a coroutine twice.
      const Reply none;
      const std::string kind = "redirect";
      co_await SendBroken(stream, none, kind);
      co_return;
    }
    Reply reply;
    if (target == "/_stats" || target == "/_stats?detail=1") {
      reply = Reply{200, simulator.Stats(now, target.size() > 7), std::nullopt};
    } else if (file_only) {
      reply = Reply{
          404,
          R"({"error":{"code":"not_found","message":"This host serves files only","type":"invalid_request_error"}})",
          std::nullopt};
    } else if (request.method() == http::verb::post && target == "/v1/images/generations") {
      reply = simulator.Submit(authorization, request.body(), now);
    } else if (request.method() == http::verb::get && target.rfind("/v1/tasks/", 0) == 0) {
      reply = simulator.Query(authorization, std::string_view(target).substr(10), now);
    } else if (request.method() == http::verb::get && target == "/v1/credits") {
      reply = simulator.Credits(authorization, now);
    } else {
      reply = Reply{
          404,
          R"({"error":{"code":"not_found","message":"No such endpoint","type":"invalid_request_error"}})",
          std::nullopt};
    }
    if (settings.echo_authorization && reply.status >= 400) EchoAuthorization(reply, authorization);
    const bool stray = broken && simulator.options().wire_fault == "stray-answer";
    const bool interim = broken && simulator.options().wire_fault == "interim";
    if (interim && !co_await SendRaw(stream, kInterimAnswers)) co_return;
    if (broken && !stray && !interim) {
      co_await SendBroken(stream, reply, simulator.options().wire_fault);
      co_return;
    }
    auto response = JsonResponse(reply, request.version(), keep_alive);
    beast::get_lowest_layer(stream).expires_after(kIdleTimeout);
    auto [write_error, written] = co_await http::async_write(stream, response, kAsTuple);
    if (write_error || !keep_alive) break;
    if (stray) {
      // A whole second answer nobody asked for, and the connection kept open: a client that
      // reused it would take this for the answer to its next request.
      const bool sent = co_await SendRaw(stream, kStrayAnswer);
      if (!sent) break;
    }
  }
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(kAsTuple);
}

net::awaitable<void> Listen(tcp::acceptor acceptor, ssl::context& tls, Simulator& simulator,
                            bool file_only, ServerSettings settings) {
  const auto executor = acceptor.get_executor();
  while (true) {
    auto [error, socket] = co_await acceptor.async_accept(kAsTuple);
    if (error == net::error::operation_aborted) co_return;
    if (error) continue;  // e.g. EMFILE under load: keep serving the connections we have
    // As production servers do (nginx's tcp_nodelay): a response written in pieces (headers,
    // then the image) must not wait for the client's delayed ACK of the first piece.
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    net::co_spawn(executor, Session(Stream(std::move(socket), tls), simulator, file_only, settings),
                  [](std::exception_ptr failure) {
                    // An exception in a session is a simulator bug: say so loudly.
                    if (failure) {
                      try {
                        std::rethrow_exception(failure);
                      } catch (const std::exception& e) {
                        std::cerr << "fake_api: session failed: " << e.what() << "\n";
                      }
                    }
                  });
  }
}

// POSTs one callback (http only: the receiver under test listens on loopback without TLS) and
// tells the simulator what the receiver answered.
net::awaitable<void> PostCallback(Callback callback, Simulator& simulator, bool log_requests) {
  auto url = boost::urls::parse_absolute_uri(callback.url);
  if (!url || url->scheme_id() != boost::urls::scheme::http) {
    std::cerr << "fake_api: callback to " << callback.url << " not sent (http only)\n";
    simulator.OnCallbackResult(0);
    co_return;
  }
  const std::string host(url->encoded_host());
  const std::string port = url->has_port() ? std::string(url->port()) : "80";
  std::string target(url->encoded_path());
  if (target.empty()) target = "/";
  beast::tcp_stream stream(co_await net::this_coro::executor);
  tcp::resolver resolver(stream.get_executor());
  auto [resolve_error, endpoints] = co_await resolver.async_resolve(host, port, kAsTuple);
  int status = 0;
  if (!resolve_error) {
    stream.expires_after(std::chrono::seconds(5));
    auto [connect_error, connected] = co_await stream.async_connect(endpoints, kAsTuple);
    if (!connect_error) {
      http::request<http::string_body> request{http::verb::post, target, 11};
      request.set(http::field::host, std::string(url->encoded_authority()));
      request.set(http::field::content_type, "application/json");
      request.set(http::field::user_agent, "nanobatch-fake-api");
      request.body() = callback.body;
      request.prepare_payload();
      auto [write_error, written] = co_await http::async_write(stream, request, kAsTuple);
      beast::flat_buffer buffer;
      http::response<http::string_body> response;
      if (!write_error) {
        auto [read_error, read] = co_await http::async_read(stream, buffer, response, kAsTuple);
        if (!read_error) status = response.result_int();
      }
    }
  }
  if (log_requests) std::cerr << "fake_api: callback " << target << " -> " << status << "\n";
  simulator.OnCallbackResult(status);
}

// Sends the callbacks as they fall due (every 10 ms).
net::awaitable<void> CallbackSender(Simulator& simulator, bool log_requests) {
  net::steady_timer tick(co_await net::this_coro::executor);
  while (true) {
    for (Callback& callback : simulator.DueCallbacks(Clock::now())) {
      net::co_spawn(co_await net::this_coro::executor,
                    PostCallback(std::move(callback), simulator, log_requests), net::detached);
    }
    tick.expires_after(std::chrono::milliseconds(10));
    auto [error] = co_await tick.async_wait(kAsTuple);
    if (error) co_return;
  }
}

tcp::acceptor Bind(net::io_context& io, const std::string& address, int port) {
  tcp::endpoint endpoint(net::ip::make_address(address), static_cast<unsigned short>(port));
  tcp::acceptor acceptor(io);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(net::socket_base::max_listen_connections);
  return acceptor;
}

int Main(int argc, char** argv) {
  CLI::App app("fake_api: HTTPS simulator of the Nano Banana 2 API, for tests and demos",
               "fake_api");
  Options options;
  ServerSettings settings;
  std::string cert, key, port_file, listen = "127.0.0.1", public_host = "127.0.0.1",
                                    file_host = "localhost";
  int port = 0, file_port = -1;
  app.add_option("--cert", cert, "server certificate chain (PEM)")->required();
  app.add_option("--key", key, "server private key (PEM)")->required();
  app.add_option("--listen", listen, "address to bind (loopback only, by intent)");
  app.add_option("--port", port, "API port; 0 picks a free one");
  app.add_option("--file-port", file_port,
                 "second listener serving only images, as a separate file host; -1: none, 0: any");
  app.add_option("--port-file", port_file, "write {\"api_port\",\"file_port\"} here once bound");
  app.add_option("--public-host", public_host, "host name of the API in image URLs");
  app.add_option("--file-host", file_host, "host name of the file listener in image URLs");
  app.add_option("--api-key", options.api_key,
                 "the key accepted (default $FAKE_API_KEY or sk-test)");
  app.add_option("--credits", options.credits, "starting credit balance");
  app.add_option("--rate", options.rate, "server-side limit, requests/s over /v1 (0: none)");
  app.add_option("--burst", options.burst, "server-side token-bucket depth");
  app.add_option("--pending-ms", options.pending_ms, "time a task stays pending");
  app.add_option("--processing-ms", options.processing_ms, "then processing");
  app.add_option("--latency-jitter", options.latency_jitter, "±fraction on both latencies");
  app.add_option("--images-per-task", options.images_per_task, "URLs in output.urls");
  app.add_option("--mismatch-once", options.mismatch_once,
                 "prompts containing this get, on their first submission, images that are not "
                 "what was asked: square, and in the other format");
  app.add_option("--image-scale", options.image_scale, "side scale of images (1: real size)");
  app.add_option("--image-noise", options.image_noise,
                 "0-255: per-pixel noise, so images keep a realistic size");
  app.add_option("--spend-limit", options.spend_limit, "credits per spend window (0: none)");
  app.add_option("--spend-window-s", options.spend_window_s, "spend window length");
  app.add_flag("--deny-all-ips", options.deny_all_ips, "answer every /v1 request 403");
  app.add_option("--reject-substring", options.reject_substring,
                 "answer 400 invalid_request to prompts containing this");
  app.add_option("--sensitive-substring", options.sensitive_substring,
                 "answer 503 upstream_error to every submit of a prompt containing this");
  app.add_option("--broken-poll-substring", options.broken_poll_substring,
                 "answer 500 to every poll of a task whose prompt contains this");
  app.add_option("--p-submit-5xx", options.p_submit_5xx, "probability of 500/503 on submit");
  app.add_option("--p-poll-5xx", options.p_poll_5xx, "probability of 500 on a poll");
  app.add_option("--p-task-fail", options.p_task_fail, "probability a task ends failed");
  app.add_option("--p-task-vanish", options.p_task_vanish,
                 "probability a poll finds its task gone (404 task_not_found)");
  app.add_option("--p-429", options.p_429, "probability of a spurious 429 on any /v1 request");
  app.add_option("--retry-after-s", options.retry_after_s,
                 "Retry-After of injected 429s (0: none)");
  app.add_option("--p-plain-http-url", options.p_plain_http_url, "probability of an http:// URL");
  app.add_option("--p-foreign-host-url", options.p_foreign_host_url,
                 "probability of a URL on a host not allowed");
  app.add_option("--p-reset", options.p_reset, "probability an image download is reset");
  app.add_option("--p-truncate", options.p_truncate, "probability an image body is cut short");
  app.add_option("--p-slow", options.p_slow, "probability an image body comes in slow pieces");
  app.add_option("--p-trickle", options.p_trickle,
                 "probability an image body comes one byte a second");
  app.add_option("--p-image-hang", options.p_image_hang,
                 "probability an image request is never answered");
  app.add_option("--image-status", options.image_status,
                 "answer image downloads with this HTTP status instead (a 3xx redirects to the "
                 "image itself)");
  app.add_option("--image-status-times", options.image_status_times,
                 "only the first N requests of each image (0: all)");
  app.add_option("--slow-ms", settings.slow_ms, "duration of a slow image body");
  app.add_option("--image-framing", settings.image_framing,
                 "how image bodies end: length (Content-Length), chunked, or close (at the "
                 "connection's end)")
      ->check(CLI::IsMember({"length", "chunked", "close"}));
  app.add_option("--image-content-encoding", settings.image_content_encoding,
                 "a Content-Encoding header on every image (e.g. gzip; the bytes unchanged)");
  app.add_option("--seed", options.seed, "random seed of the fault injection");
  app.add_flag("--log-requests", settings.log_requests, "one stderr line per request");
  app.add_option("--p-bad-submit-body", options.p_bad_submit_body,
                 "probability a submit (task created, charged) is answered 200 with a bad body");
  app.add_option(
      "--bad-submit-body", options.bad_submit_body,
      "its kind: html no-task-id invalid-utf8 deep-json long-id crlf-id slash-id key-id");
  app.add_option("--p-poll-garbage", options.p_poll_garbage,
                 "probability a poll is answered 200 with an HTML page");
  app.add_option("--p-wire-fault", options.p_wire_fault,
                 "probability a /v1 answer (handled and charged first) goes out broken");
  app.add_option("--wire-fault-every", options.wire_fault_every,
                 "instead: every Nth /v1 answer goes out broken");
  app.add_option("--wire-fault", options.wire_fault,
                 "its kind: hang trickle huge-headers huge-body length-long length-short "
                 "bad-chunked redirect no-keepalive reset stray-answer interim bare-status "
                 "switching-protocols gateway-timeout");
  app.add_option("--drop-image-tail", options.drop_image_tail,
                 "serve image bodies this many bytes short of their end (a PNG without IEND)");
  app.add_option("--callback-delay-ms", options.callback_delay_ms,
                 "callbacks are POSTed this long after their task ends");
  app.add_option("--p-callback-drop", options.p_callback_drop,
                 "probability a task's callback is never sent");
  app.add_option("--p-callback-duplicate", options.p_callback_duplicate,
                 "probability a task's callback is sent twice");
  std::string tls_max;
  app.add_option("--tls-max", tls_max, "highest TLS version offered: 1.1 (an outdated server)");
  app.add_flag("--echo-authorization", settings.echo_authorization,
               "error messages quote the request's Authorization header (a key leak test)");
  if (const char* env_key = std::getenv("FAKE_API_KEY"); env_key != nullptr && *env_key) {
    options.api_key = env_key;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  net::io_context io(1);
  ssl::context tls(ssl::context::tls_server);
  tcp::acceptor api_acceptor(io);
  std::optional<tcp::acceptor> file_acceptor;
  try {
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (tls_max == "1.1") {
      // What an outdated server speaks; OpenSSL 3 offers TLS 1.1 only at security level 0.
      tls.clear_options(ssl::context::no_tlsv1_1);
      SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_1_VERSION);
      SSL_CTX_set_max_proto_version(tls.native_handle(), TLS1_1_VERSION);
      SSL_CTX_set_security_level(tls.native_handle(), 0);
    }
    tls.use_certificate_chain_file(cert);
    tls.use_private_key_file(key, ssl::context::pem);
    api_acceptor = Bind(io, listen, port);
    if (file_port >= 0) file_acceptor = Bind(io, listen, file_port);
  } catch (const std::exception& e) {
    std::cerr << "fake_api: " << e.what() << "\n";
    return 2;
  }
  const int api_port = api_acceptor.local_endpoint().port();
  const int bound_file_port = file_acceptor ? file_acceptor->local_endpoint().port() : -1;
  options.api_authority = public_host + ":" + std::to_string(api_port);
  if (file_acceptor) options.file_authority = file_host + ":" + std::to_string(bound_file_port);

  Simulator simulator(options);
  net::co_spawn(io, Listen(std::move(api_acceptor), tls, simulator, false, settings),
                net::detached);
  if (file_acceptor) {
    net::co_spawn(io, Listen(std::move(*file_acceptor), tls, simulator, true, settings),
                  net::detached);
  }
  net::co_spawn(io, CallbackSender(simulator, settings.log_requests), net::detached);
  net::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const beast::error_code&, int) { io.stop(); });

  if (!port_file.empty()) {
    // Written whole, then renamed: a reader never sees half a file.
    const std::string temporary = port_file + ".tmp";
    std::ofstream(temporary) << "{\"api_port\": " << api_port
                             << ", \"file_port\": " << bound_file_port << "}\n";
    std::rename(temporary.c_str(), port_file.c_str());
  }
  std::cerr << "fake_api: API on https://" << options.api_authority << "/v1"
            << (file_acceptor ? ", files on https://" + options.file_authority : std::string())
            << "\n";
  io.run();
  return 0;
}

}  // namespace
}  // namespace nanobatch::fake_api

int main(int argc, char** argv) { return nanobatch::fake_api::Main(argc, argv); }
