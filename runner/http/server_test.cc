#include "runner/http/server.h"

#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nanobatch::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using namespace std::chrono_literals;
constexpr auto kAsTuple = net::as_tuple(net::use_awaitable);

// One request over a fresh connection; the status (0 when no answer) and body.
net::awaitable<std::pair<int, std::string>> Send(std::uint16_t port, bhttp::verb verb,
                                                 std::string target, std::string body) {
  beast::tcp_stream stream(co_await net::this_coro::executor);
  stream.expires_after(5s);
  auto [connect_error] = co_await stream.async_connect(
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port), kAsTuple);
  if (connect_error) co_return std::pair{0, std::string()};
  bhttp::request<bhttp::string_body> request{verb, target, 11};
  request.set(bhttp::field::host, "127.0.0.1");
  request.set(bhttp::field::authorization, "Bearer t");
  request.body() = std::move(body);
  request.prepare_payload();
  [[maybe_unused]] auto [write_error, written] =
      co_await bhttp::async_write(stream, request, kAsTuple);
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> response;
  auto [read_error, read] = co_await bhttp::async_read(stream, buffer, response, kAsTuple);
  if (read_error) co_return std::pair{0, std::string()};
  co_return std::pair{static_cast<int>(response.result_int()), response.body()};
}

// Runs `server` until `stop`; `ran_out` is set when Run has returned.
void StartServing(net::io_context& io, Server& server, util::StopSignal& stop, bool& ran_out) {
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        co_await server.Run(stop);
        ran_out = true;
      },
      net::detached);
}

TEST_CASE("server: requests reach the handler; big bodies get 413; a stop ends Run") {
  net::io_context io(1);
  std::vector<IncomingRequest> seen;
  Server server(
      io.get_executor(),
      [&](const IncomingRequest& request) {
        seen.push_back(request);
        return Reply{request.method == "POST" ? 201 : 200, "got " + request.target};
      },
      ServerOptions{.max_body = 1024});
  std::string error;
  REQUIRE(server.Listen("127.0.0.1:0", error));
  REQUIRE(server.port() != 0);
  util::StopSignal stop(io.get_executor());
  bool ran_out = false;
  StartServing(io, server, stop, ran_out);
  std::vector<std::pair<int, std::string>> answers;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        answers.push_back(co_await Send(server.port(), bhttp::verb::post, "/hooks/abc", "{}"));
        answers.push_back(co_await Send(server.port(), bhttp::verb::get, "/x?y=1", ""));
        answers.push_back(
            co_await Send(server.port(), bhttp::verb::post, "/big", std::string(4096, 'x')));
        stop.Trigger();
      },
      net::detached);
  for (int i = 0; i < 500 && !ran_out; ++i) io.run_for(10ms);
  CHECK(ran_out);
  REQUIRE(answers.size() == 3);
  CHECK(answers[0] == std::pair{201, std::string("got /hooks/abc")});
  CHECK(answers[1] == std::pair{200, std::string("got /x?y=1")});
  CHECK(answers[2].first == 413);
  REQUIRE(seen.size() == 2);  // the oversized request never reached the handler
  CHECK(seen[0].body == "{}");
  CHECK(seen[0].authorization == "Bearer t");
}

TEST_CASE("server: a request that expects 100-continue is told to send its body") {
  net::io_context io(1);
  Server server(io.get_executor(),
                [](const IncomingRequest& request) {
                  return Reply{202, "took " + request.body};
                },
                {});
  std::string error;
  REQUIRE(server.Listen("127.0.0.1:0", error));
  util::StopSignal stop(io.get_executor());
  bool ran_out = false;
  StartServing(io, server, stop, ran_out);
  std::string interim;
  std::optional<std::pair<int, std::string>> answer;
  std::string failed;  // the client's first step that failed, if any
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        // As curl does: the headers, then the body only once the server says 100 Continue (curl
        // gives up waiting after a second; this client, after 5 s, failing the test).
        beast::tcp_stream stream(co_await net::this_coro::executor);
        stream.expires_after(5s);
        auto [connect_error] = co_await stream.async_connect(
            net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port()), kAsTuple);
        if (connect_error) failed = "connect: " + connect_error.message();
        const std::string head =
            "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-Continue\r\n\r\n";
        auto [head_error, head_written] =
            co_await net::async_write(stream, net::buffer(head), kAsTuple);
        if (head_error && failed.empty()) failed = "headers: " + head_error.message();
        std::string received;
        auto [interim_error, interim_bytes] = co_await net::async_read_until(
            stream, net::dynamic_buffer(received), "\r\n\r\n", kAsTuple);
        if (!interim_error) {
          interim = received.substr(0, interim_bytes);
          auto [body_error, body_written] =
              co_await net::async_write(stream, net::buffer(std::string_view("body")), kAsTuple);
          if (body_error && failed.empty()) failed = "body: " + body_error.message();
          beast::flat_buffer buffer;
          const std::string rest = received.substr(interim_bytes);  // read with the 100, if any
          buffer.commit(net::buffer_copy(buffer.prepare(rest.size()), net::buffer(rest)));
          bhttp::response<bhttp::string_body> response;
          auto [read_error, read] = co_await bhttp::async_read(stream, buffer, response, kAsTuple);
          if (!read_error) answer = std::pair{response.result_int(), response.body()};
        }
        stop.Trigger();
      },
      net::detached);
  for (int i = 0; i < 1000 && !ran_out; ++i) io.run_for(10ms);
  CHECK(ran_out);
  CHECK(failed == "");
  CHECK(interim == "HTTP/1.1 100 Continue\r\n\r\n");
  REQUIRE(answer.has_value());
  CHECK(*answer == std::pair{202, std::string("took body")});
}

// Writes `raw` on a fresh connection and returns everything the server sends until it closes
// (or 5 s pass).
net::awaitable<std::string> Exchange(std::uint16_t port, std::string raw) {
  beast::tcp_stream stream(co_await net::this_coro::executor);
  stream.expires_after(5s);
  auto [connect_error] = co_await stream.async_connect(
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port), kAsTuple);
  if (connect_error) co_return std::string();
  [[maybe_unused]] auto [write_error, written] =
      co_await net::async_write(stream, net::buffer(raw), kAsTuple);
  std::string received;
  while (true) {
    auto [read_error, read] = co_await net::async_read(stream, net::dynamic_buffer(received),
                                                       net::transfer_at_least(1), kAsTuple);
    if (read_error) break;
  }
  co_return received;
}

TEST_CASE("server: HEAD is a GET without its body; bad requests are answered, not dropped") {
  net::io_context io(1);
  std::vector<std::string> methods;
  Server server(io.get_executor(),
                [&](const IncomingRequest& request) {
                  methods.push_back(request.method);
                  if (request.target == "/only-get" && request.method != "GET") {
                    return Reply{405, "no\n", "text/plain", "GET, HEAD"};
                  }
                  return Reply{200, "twelve bytes"};
                },
                {});
  std::string error;
  REQUIRE(server.Listen("127.0.0.1:0", error));
  util::StopSignal stop(io.get_executor());
  bool ran_out = false;
  StartServing(io, server, stop, ran_out);
  std::vector<std::string> answers;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        const std::uint16_t port = server.port();
        // HEAD, then a GET on the same connection: the HEAD's answer has no body, so the GET's
        // answer follows its header directly.
        answers.push_back(
            co_await Exchange(port,
                              "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n"
                              "Connection: close\r\n\r\n"));
        answers.push_back(co_await Exchange(
            port, "PUT /only-get HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
        answers.push_back(co_await Exchange(
            port, "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n"));
        // What a TLS client sends first, to a plain-HTTP port.
        answers.push_back(co_await Exchange(
            port, std::string("\x16\x03\x01\x02\x00\x01", 6) + std::string(200, '\x03')));
        answers.push_back(co_await Exchange(port, "GET /x HTTP/1.1\r\nBad Header\r\n\r\n"));
        answers.push_back(co_await Exchange(port, "GET /x HT"));  // gone mid-request
        stop.Trigger();
      },
      net::detached);
  for (int i = 0; i < 1000 && !ran_out; ++i) io.run_for(10ms);
  CHECK(ran_out);
  REQUIRE(answers.size() == 6);
  const std::string& head_then_get = answers[0];
  CHECK(head_then_get.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(head_then_get.find("Content-Length: 12\r\n") != std::string::npos);
  const std::size_t second = head_then_get.find("HTTP/1.1 200 OK", 1);
  REQUIRE(second != std::string::npos);
  CHECK(head_then_get.substr(second - 4, 4) == "\r\n\r\n");  // no body after the HEAD's header
  CHECK(head_then_get.ends_with("\r\n\r\ntwelve bytes"));
  CHECK(answers[1].starts_with("HTTP/1.1 405 "));
  CHECK(answers[1].find("Allow: GET, HEAD\r\n") != std::string::npos);
  CHECK(answers[2].starts_with("HTTP/1.1 431 "));
  CHECK(answers[3].starts_with("HTTP/1.1 400 "));
  CHECK(answers[4].starts_with("HTTP/1.1 400 "));
  CHECK(answers[5].empty());
  // The handler saw the HEAD as a GET, and nothing of the requests that failed to parse.
  CHECK(methods == std::vector<std::string>{"GET", "GET", "PUT"});
}

// Sends a POST of `length` bytes in pieces of `piece` bytes, one every `every` (stopping after
// `stop_after` bytes when that is less); the answer's status, 0 when the server closed instead.
net::awaitable<int> SendPaced(std::uint16_t port, std::size_t length, std::size_t piece,
                              std::chrono::milliseconds every, std::size_t stop_after) {
  auto executor = co_await net::this_coro::executor;
  beast::tcp_stream stream(executor);
  stream.expires_after(20s);
  auto [connect_error] = co_await stream.async_connect(
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port), kAsTuple);
  if (connect_error) co_return 0;
  const std::string head =
      "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
  auto [head_error, head_written] = co_await net::async_write(stream, net::buffer(head), kAsTuple);
  if (head_error) co_return 0;
  net::steady_timer pace(executor);
  const std::string bytes(piece, 'm');
  for (std::size_t sent = 0; sent < std::min(length, stop_after); sent += piece) {
    pace.expires_after(every);
    co_await pace.async_wait(kAsTuple);
    const std::size_t n = std::min(piece, length - sent);
    auto [error, written] =
        co_await net::async_write(stream, net::buffer(bytes.data(), n), kAsTuple);
    if (error) co_return 0;
  }
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> response;
  auto [read_error, read] = co_await bhttp::async_read(stream, buffer, response, kAsTuple);
  co_return read_error ? 0 : static_cast<int>(response.result_int());
}

TEST_CASE("server: a body may take longer than the header's deadline while it keeps coming") {
  net::io_context io(1);
  std::vector<std::size_t> bodies;
  Server server(
      io.get_executor(),
      [&](const IncomingRequest& request) {
        bodies.push_back(request.body.size());
        return Reply{202, "ok"};
      },
      ServerOptions{.max_body = 1 << 20, .read_timeout = 1s, .min_body_bytes_per_s = 16 << 10});
  std::string error;
  REQUIRE(server.Listen("127.0.0.1:0", error));
  util::StopSignal stop(io.get_executor());
  bool ran_out = false;
  StartServing(io, server, stop, ran_out);
  struct Sent {
    int status = -1;  // 0: closed by the server
    std::chrono::steady_clock::duration took{};
  };
  Sent steady;
  Sent trickle;
  Sent stalled;
  int finished = 0;
  auto send = [&](Sent& sent, std::size_t length, std::size_t piece,
                  std::chrono::milliseconds every, std::size_t stop_after) {
    net::co_spawn(
        io,
        [&, length, piece, every, stop_after]() -> net::awaitable<void> {
          const auto start = std::chrono::steady_clock::now();
          sent.status = co_await SendPaced(server.port(), length, piece, every, stop_after);
          sent.took = std::chrono::steady_clock::now() - start;
          if (++finished == 3) stop.Trigger();
        },
        net::detached);
  };
  // 240 KB at 100 KB/s: 2.4 s, more than twice the 1 s deadline of a header.
  send(steady, 240'000, 10'000, 100ms, SIZE_MAX);
  // 10 bytes every 200 ms (50 B/s): below 16 KiB/s, cut off once past the first second.
  send(trickle, 10'000, 10, 200ms, SIZE_MAX);
  // Half the body, then nothing: cut off one read deadline later.
  send(stalled, 100'000, 25'000, 10ms, 50'000);
  for (int i = 0; i < 1500 && !ran_out; ++i) io.run_for(10ms);
  CHECK(ran_out);
  CHECK(steady.status == 202);
  CHECK(bodies == std::vector<std::size_t>{240'000});
  CHECK(trickle.status == 0);
  CHECK(trickle.took < 3s);
  CHECK(stalled.status == 0);
  CHECK(stalled.took < 3s);
}

TEST_CASE("server: out of file descriptors, it pauses accepting instead of spinning") {
  net::io_context io(1);
  Server server(io.get_executor(), [](const IncomingRequest&) { return Reply{200, "ok"}; }, {});
  std::string error;
  REQUIRE(server.Listen("127.0.0.1:0", error));
  util::StopSignal stop(io.get_executor());
  bool ran_out = false;
  StartServing(io, server, stop, ran_out);
  // A connection waits in the listen queue while the process has no descriptor left to take it.
  net::ip::tcp::socket waiting(io);
  waiting.connect({net::ip::make_address("127.0.0.1"), server.port()});
  rlimit old_limit{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old_limit) == 0);
  std::vector<int> filler;
  for (int fd = ::dup(0); fd >= 0 && filler.size() < 100000; fd = ::dup(0)) {
    filler.push_back(fd);
    if (filler.size() == 1) {  // from here on, few descriptors are left to fill
      rlimit lowered = old_limit;
      lowered.rlim_cur = static_cast<rlim_t>(fd) + 8;
      REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    }
  }
  CHECK(errno == EMFILE);
  io.run_for(300ms);
  // Each failed accept is followed by a pause: a handful in 300 ms, not thousands.
  const std::uint64_t failures = server.accept_failures();
  for (int fd : filler) ::close(fd);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &old_limit) == 0);
  CHECK(failures >= 1);
  CHECK(failures <= 10);
  // With descriptors again, the queued connection and new ones are served.
  std::optional<std::pair<int, std::string>> answer;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        answer = co_await Send(server.port(), bhttp::verb::get, "/after", "");
        stop.Trigger();
      },
      net::detached);
  for (int i = 0; i < 500 && !ran_out; ++i) io.run_for(10ms);
  CHECK(ran_out);
  REQUIRE(answer.has_value());
  CHECK(answer->first == 200);
}

TEST_CASE("server: Listen refuses what is not IP:PORT, and a port in use") {
  net::io_context io(1);
  Server first(io.get_executor(), [](const IncomingRequest&) { return Reply{}; }, {});
  Server second(io.get_executor(), [](const IncomingRequest&) { return Reply{}; }, {});
  std::string error;
  CHECK_FALSE(first.Listen("localhost:80x", error));
  CHECK_FALSE(first.Listen("example.com:8080", error));
  CHECK(error.find("not an IP address") != std::string::npos);
  REQUIRE(first.Listen("127.0.0.1:0", error));
  CHECK_FALSE(second.Listen("127.0.0.1:" + std::to_string(first.port()), error));
  CHECK(error.find("cannot listen") != std::string::npos);
}

}  // namespace
}  // namespace nanobatch::http
