// TlsStream against the project's simulator over real TLS on loopback, and against a TCP server
// that never speaks.
#include "runner/http/tls_stream.h"

#include <doctest/doctest.h>
#include <openssl/err.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "runner/testing/fake_api_process.h"

namespace nanobatch::http {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using ErrorCode = boost::system::error_code;

// Runs one coroutine to completion on a fresh io_context (bounded by the streams' deadlines).
template <typename T>
T RunOn(net::awaitable<T> task) {
  net::io_context io;
  std::optional<T> result;
  net::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    result = std::move(value);
  });
  io.run();
  return std::move(*result);
}

// A client context trusting `ca_file` (none: trusting nothing).
struct ClientContext {
  explicit ClientContext(const std::string& ca_file) : context(SSL_CTX_new(TLS_client_method())) {
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
    if (!ca_file.empty()) SSL_CTX_load_verify_locations(context, ca_file.c_str(), nullptr);
  }
  ~ClientContext() { SSL_CTX_free(context); }
  SSL_CTX* context;
};

std::vector<tcp::endpoint> Loopback(int port) {
  return {tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port))};
}

const std::string kCredits =
    "GET /v1/credits HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-test\r\n\r\n";

// Connects `stream` to the simulator's API port and shakes hands (within 10 s): the first error.
net::awaitable<ErrorCode> Open(TlsStream& stream, const testing::FakeApiProcess& api) {
  stream.ExpiresAfter(10s);
  const ErrorCode connected = co_await stream.Connect(Loopback(api.api_port()));
  if (connected) co_return connected;
  co_return co_await stream.Handshake();
}

// Reads until a whole answer with a Content-Length body is in `answer`; false on an error.
net::awaitable<ErrorCode> ReadAnswer(TlsStream& stream, std::string& answer) {
  char chunk[4096];
  for (;;) {
    const auto end = answer.find("\r\n\r\n");
    const auto length = answer.find("Content-Length: ");
    if (end != std::string::npos && length != std::string::npos &&
        answer.size() >= end + 4 + std::stoul(answer.substr(length + 16))) {
      co_return ErrorCode();
    }
    auto [error, got] = co_await stream.ReadSome(net::buffer(chunk));
    if (error) co_return error;
    answer.append(chunk, got);
  }
}

TEST_CASE("tls stream: a request and its answer over verified TLS, one after another") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  ClientContext tls(api.ca_file());
  const std::string answers = RunOn([&]() -> net::awaitable<std::string> {
    TlsStream stream(co_await net::this_coro::executor, tls.context);
    SSL_set1_host(stream.native_handle(), "127.0.0.1");  // the certificate's name checked too
    const ErrorCode opened = co_await Open(stream, api);
    REQUIRE_MESSAGE(!opened, opened.message());
    std::string all;
    for (int i = 0; i < 3; ++i) {
      std::size_t written = 0;
      const ErrorCode write = co_await stream.WriteAll(kCredits, written);
      CHECK_FALSE(write);
      CHECK(written == kCredits.size());
      std::string answer;
      const ErrorCode read = co_await ReadAnswer(stream, answer);
      CHECK_FALSE(read);
      CHECK_FALSE(stream.HasBuffered());  // the whole answer was taken
      all += answer;
    }
    stream.ExpiresNever();
    co_return all;
  }());
  CHECK(answers.find("HTTP/1.1 200") == 0);
  CHECK(answers.rfind("\"credits\"") > answers.find("\"credits\""));  // three answers
}

TEST_CASE("tls stream: a server that never speaks ends the handshake at the deadline") {
  net::io_context io;
  tcp::acceptor silent(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  tcp::socket held(io);
  silent.async_accept(held, [](const ErrorCode&) {});  // accepted, then nothing
  ClientContext tls("");
  std::optional<ErrorCode> handshake;
  std::optional<ErrorCode> late;
  const auto start = std::chrono::steady_clock::now();
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        TlsStream stream(co_await net::this_coro::executor, tls.context);
        stream.ExpiresAfter(300ms);
        const ErrorCode connected =
            co_await stream.Connect(Loopback(silent.local_endpoint().port()));
        CHECK_FALSE(connected);
        handshake = co_await stream.Handshake();
        // A deadline already passed ends the next operation at once.
        stream.ExpiresAt(std::chrono::steady_clock::now() - 1s);
        std::size_t written = 0;
        const std::string bytes = "x";
        late = co_await stream.WriteAll(bytes, written);
      },
      net::detached);
  io.run();
  REQUIRE(handshake);
  CHECK(*handshake == boost::beast::error::timeout);
  CHECK(late == ErrorCode(boost::beast::error::timeout));
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 250ms);
  CHECK(took < 5s);
}

// How long a handshake with a server that accepts and never speaks takes to fail, with the
// deadlines `set` sets on the stream before it starts; the error in `error`.
std::chrono::steady_clock::duration SilentHandshake(const std::function<void(TlsStream&)>& set,
                                                    std::optional<ErrorCode>& error) {
  net::io_context io;
  tcp::acceptor silent(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  tcp::socket held(io);
  silent.async_accept(held, [](const ErrorCode&) {});  // accepted, then nothing
  ClientContext tls("");
  const auto start = std::chrono::steady_clock::now();
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        TlsStream stream(co_await net::this_coro::executor, tls.context);
        set(stream);
        const ErrorCode connected =
            co_await stream.Connect(Loopback(silent.local_endpoint().port()));
        CHECK_FALSE(connected);
        error = co_await stream.Handshake();
      },
      net::detached);
  io.run();
  return std::chrono::steady_clock::now() - start;
}

// The handshake with a silent server, with the deadlines `set` sets, times out no sooner than
// `at_least` (and well before the test's own limit).
void CheckTimesOutAfter(const std::function<void(TlsStream&)>& set,
                        std::chrono::milliseconds at_least) {
  std::optional<ErrorCode> error;
  const auto took = SilentHandshake(set, error);
  REQUIRE(error);
  CHECK(*error == boost::beast::error::timeout);
  CHECK(took >= at_least);
  CHECK(took < 5s);
}

TEST_CASE("tls stream: a deadline moved later or earlier ends the operation at the new one") {
  // Later: the wait for the first deadline stays, and waits again for the rest when it ends.
  CheckTimesOutAfter(
      [](TlsStream& stream) {
        stream.ExpiresAfter(100ms);
        stream.ExpiresAfter(600ms);
      },
      550ms);
  // Earlier: the timer is moved.
  CheckTimesOutAfter(
      [](TlsStream& stream) {
        stream.ExpiresAfter(30s);
        stream.ExpiresAfter(200ms);
      },
      150ms);
  // None, then one again: the first wait ends without effect, and the new deadline holds.
  CheckTimesOutAfter(
      [](TlsStream& stream) {
        stream.ExpiresAfter(100ms);
        stream.ExpiresNever();
        stream.ExpiresAfter(500ms);
      },
      450ms);
}

// Opens a stream to the simulator, lets `meddle` set its deadlines and wait (the loop turns
// meanwhile), then exchanges a request on it: the exchange's error.
ErrorCode ExchangeAfter(const std::function<net::awaitable<void>(TlsStream&)>& meddle) {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  ClientContext tls(api.ca_file());
  return RunOn([&]() -> net::awaitable<ErrorCode> {
    TlsStream stream(co_await net::this_coro::executor, tls.context);
    const ErrorCode opened = co_await Open(stream, api);
    if (opened) co_return opened;
    co_await meddle(stream);
    std::size_t written = 0;
    const ErrorCode write = co_await stream.WriteAll(kCredits, written);
    if (write) co_return write;
    std::string answer;
    co_return co_await ReadAnswer(stream, answer);
  }());
}

TEST_CASE("tls stream: a wait that outlives ExpiresNever ends nothing") {
  const ErrorCode error = ExchangeAfter([](TlsStream& stream) -> net::awaitable<void> {
    stream.ExpiresAfter(50ms);
    stream.ExpiresNever();
    // The timer's wait has ended by then.
    net::steady_timer later(co_await net::this_coro::executor, 200ms);
    co_await later.async_wait(net::use_awaitable);
  });
  CHECK_MESSAGE(!error, error.message());
}

TEST_CASE("tls stream: a deadline moved after it fired, before its handler ran, ends nothing") {
  const ErrorCode error = ExchangeAfter([](TlsStream& stream) -> net::awaitable<void> {
    // The deadline and a wake-up just before it, both passed before the loop looks again: the
    // wake-up runs first and moves the deadline; the old deadline's handler runs after it.
    const auto at = std::chrono::steady_clock::now() + 2ms;
    stream.ExpiresAt(at);
    net::steady_timer wake(co_await net::this_coro::executor, at - 1us);
    std::this_thread::sleep_for(10ms);
    co_await wake.async_wait(net::use_awaitable);
    stream.ExpiresAfter(10s);
  });
  CHECK_MESSAGE(!error, error.message());
}

TEST_CASE("tls stream: a certificate outside the trusted CA fails with OpenSSL's error") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  ClientContext tls("");  // trusts nothing
  const auto result = RunOn([&]() -> net::awaitable<std::pair<ErrorCode, long>> {
    TlsStream stream(co_await net::this_coro::executor, tls.context);
    const ErrorCode opened = co_await Open(stream, api);
    co_return std::make_pair(opened, SSL_get_verify_result(stream.native_handle()));
  }());
  const ErrorCode& error = result.first;
  const long verify = result.second;
  CHECK(error.category() == net::error::get_ssl_category());
  CHECK(ERR_GET_REASON(static_cast<unsigned long>(error.value())) ==
        SSL_R_CERTIFICATE_VERIFY_FAILED);
  CHECK(verify != X509_V_OK);
  CHECK(ERR_peek_error() == 0);  // nothing of it left for the next call on this thread
}

TEST_CASE("tls stream: an error another OpenSSL user left in the queue fails nothing") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  ClientContext tls(api.ca_file());
  const auto errors = RunOn([&]() -> net::awaitable<std::pair<ErrorCode, ErrorCode>> {
    TlsStream stream(co_await net::this_coro::executor, tls.context);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);  // as if some earlier call had failed
    const ErrorCode handshake = co_await Open(stream, api);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    std::size_t written = 0;
    const ErrorCode write = co_await stream.WriteAll(kCredits, written);
    std::string answer;
    const ErrorCode read = co_await ReadAnswer(stream, answer);
    // A read that finds nothing must wait (here until its deadline): SSL_get_error would take
    // the stale entry for this read's failure.
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    stream.ExpiresAfter(200ms);
    char byte;
    auto [waited, got] = co_await stream.ReadSome(net::buffer(&byte, 1));
    co_return std::make_pair(handshake ? handshake : write ? write : read, waited);
  }());
  const ErrorCode& exchange = errors.first;
  const ErrorCode& idle = errors.second;
  CHECK_MESSAGE(!exchange, exchange.message());
  CHECK_MESSAGE(idle == ErrorCode(boost::beast::error::timeout), idle.message());
}

TEST_CASE("tls stream: a reset connection is an error code, never a SIGPIPE") {
  // The default disposition, as in a program that did not ignore SIGPIPE: a write into a reset
  // socket would end the process.
  const auto previous = std::signal(SIGPIPE, SIG_DFL);
  testing::TempDir dir;
  testing::FakeApiProcess api(dir, {"--wire-fault", "reset", "--wire-fault-every", "1"});
  ClientContext tls(api.ca_file());
  const auto errors = RunOn([&]() -> net::awaitable<std::pair<ErrorCode, ErrorCode>> {
    TlsStream stream(co_await net::this_coro::executor, tls.context);
    const ErrorCode opened = co_await Open(stream, api);
    CHECK_FALSE(opened);
    std::size_t written = 0;
    const ErrorCode first = co_await stream.WriteAll(kCredits, written);
    CHECK_FALSE(first);
    std::string answer;
    const ErrorCode read_error = co_await ReadAnswer(stream, answer);
    // Written into the reset connection, more than the socket takes at once.
    const std::string big(1 << 20, 'x');
    ErrorCode write_error;
    for (int i = 0; i < 4 && !write_error; ++i)
      write_error = co_await stream.WriteAll(big, written);
    co_return std::make_pair(read_error, write_error);
  }());
  const ErrorCode& read = errors.first;
  const ErrorCode& write = errors.second;
  std::signal(SIGPIPE, previous);
  CHECK(read);
  CHECK(write);
}

}  // namespace
}  // namespace nanobatch::http
