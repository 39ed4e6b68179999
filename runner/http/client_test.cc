// The HTTPS client against the project's simulator over real TLS on loopback.
#include "runner/http/client.h"

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/http/error.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "runner/testing/fake_api_process.h"

namespace nanobatch::http {
namespace {

// The tests' servers are on loopback, which downloads reach only when allowed.
const AddressPolicy kLoopback({*Network::Parse("127.0.0.0/8"), *Network::Parse("::1")});

namespace net = boost::asio;
using namespace std::chrono_literals;

// Runs one coroutine to completion (bounded by the client's timeouts). Only until then: a
// pooled connection's deadline timer may still wait, and the next call runs it on.
template <typename T>
T RunOn(net::io_context& io, net::awaitable<T> task) {
  std::optional<T> result;
  net::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    result = std::move(value);
  });
  while (!result && io.run_one() > 0) {
  }
  io.restart();
  return std::move(*result);
}

Request Get(const testing::FakeApiProcess& api, const std::string& path, bool auth = true) {
  Request request;
  request.endpoint = *ParseUrl(api.base_url() + path);
  if (auth) request.headers.push_back({"Authorization", "Bearer sk-test"});
  return request;
}

// Submits one task and polls it once (the simulator settles it then); returns its id.
std::string SubmitAndSettle(net::io_context& io, Client& client, const testing::FakeApiProcess& api,
                            const std::string& prompt) {
  Request submit = Get(api, "/v1/images/generations");
  submit.method = Request::Method::kPost;
  submit.body =
      R"({"model":"nano-banana-2","input":{"prompt":")" + prompt + R"(","output_format":"png"}})";
  const std::string created =
      std::get<Response>(RunOn(io, client.Fetch(submit, 10s, 1 << 20))).body;
  const auto id_start = created.find("taskId\":\"") + 9;
  std::string id = created.substr(id_start, created.find('"', id_start) - id_start);
  RunOn(io, client.Fetch(Get(api, "/v1/tasks/" + id), 10s, 1 << 20));
  return id;
}

// The first image of task `id` on the simulator's file host.
Endpoint ImageOf(const testing::FakeApiProcess& api, const std::string& id) {
  return *ParseUrl("https://localhost:" + std::to_string(api.file_port()) + "/images/" + id +
                   "-0.png");
}

class StringSink : public BodySink {
 public:
  bool Write(const char* data, std::size_t size) override {
    bytes.append(data, size);
    return true;
  }
  std::string bytes;
};

// GET /v1/credits, which must come back as the balance.
void CheckCredits(net::io_context& io, Client& client, const testing::FakeApiProcess& api) {
  Result<Response> result = RunOn(io, client.Fetch(Get(api, "/v1/credits"), 10s, 1 << 20));
  REQUIRE(std::holds_alternative<Response>(result));
  CHECK(std::get<Response>(result).status == 200);
  CHECK(std::get<Response>(result).body.find("credits") != std::string::npos);
}

TEST_CASE("http client: requests over verified TLS reuse one keep-alive connection") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  for (int i = 0; i < 3; ++i) CheckCredits(io, client, api);
  CHECK(client.stats().connections_opened == 1);
  CHECK(client.stats().connections_reused == 2);
  // The client's order of TLS 1.3 suites (AES-128-GCM first), which the server follows (the
  // stats request itself comes from curl, whose OpenSSL order puts AES-256-GCM first).
  const auto ciphers = api.Stats().at("tls_ciphers").as_object();
  REQUIRE(ciphers.contains("TLS_AES_128_GCM_SHA256"));
  CHECK(ciphers.at("TLS_AES_128_GCM_SHA256").as_int64() == 1);
}

TEST_CASE("http client: a connection with bytes after its answer is not reused") {
  // Every answer is followed by a second, unasked-for answer ({}) on a connection kept open: a
  // client that reused it would read that as the answer to its next request.
  testing::TempDir dir;
  testing::FakeApiProcess api(dir, {"--wire-fault", "stray-answer", "--wire-fault-every", "1"});
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  for (int i = 0; i < 3; ++i) {
    CheckCredits(io, client, api);
    // The stray answer follows at once; given time to arrive, it is seen before the next reuse
    // (one arriving after the check cannot be told from a real answer: HTTP/1.1 has no ids).
    std::this_thread::sleep_for(100ms);
  }
  CHECK(client.stats().connections_opened == 3);
  CHECK(client.stats().connections_reused == 0);
  CHECK(client.stats().idle_discarded == 2);
}

TEST_CASE("http client: a status line without a reason phrase is read, as other clients read it") {
  // "HTTP/1.1 200" then CR LF: no reason phrase and no space before it (RFC 9112 wants the space;
  // curl, Python, Go and Node do without).
  testing::TempDir dir;
  testing::FakeApiProcess api(dir, {"--wire-fault", "bare-status", "--wire-fault-every", "1"});
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  for (int i = 0; i < 2; ++i) CheckCredits(io, client, api);
  Request unknown = Get(api, "/v1/tasks/no-such-task");
  Result<Response> missing = RunOn(io, client.Fetch(unknown, 10s, 1 << 20));
  REQUIRE(std::holds_alternative<Response>(missing));
  CHECK(std::get<Response>(missing).status == 404);
}

TEST_CASE("http client: a new connection resumes the host's TLS session") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  net::io_context io;
  // Never reuse an idle connection: every request opens a new one.
  Client client(io.get_executor(), {.ca_file = api.ca_file(), .max_idle = 0s});
  for (int i = 0; i < 3; ++i) {
    Result<Response> result = RunOn(io, client.Fetch(Get(api, "/v1/credits"), 10s, 1 << 20));
    REQUIRE(std::holds_alternative<Response>(result));
    CHECK(std::get<Response>(result).status == 200);
  }
  CHECK(client.stats().connections_opened == 3);
  CHECK(client.stats().sessions_resumed == 2);
  // The server agrees: two of its handshakes were resumptions.
  Result<Response> stats = RunOn(io, client.Fetch(Get(api, "/_stats"), 10s, 1 << 20));
  REQUIRE(std::holds_alternative<Response>(stats));
  CHECK(std::get<Response>(stats).body.find("\"tls_resumed\":3") != std::string::npos);
}

TEST_CASE("http client: POST bodies and error statuses with Retry-After come back as responses") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir, {"--rate", "1", "--burst", "1"});
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  Request submit = Get(api, "/v1/images/generations");
  submit.method = Request::Method::kPost;
  submit.body = R"({"model":"nano-banana-2","input":{"prompt":"a cat"}})";
  Result<Response> first = RunOn(io, client.Fetch(submit, 10s, 1 << 20));
  REQUIRE(std::holds_alternative<Response>(first));
  CHECK(std::get<Response>(first).status == 200);
  CHECK(std::get<Response>(first).body.find("taskId") != std::string::npos);
  Result<Response> limited = RunOn(io, client.Fetch(submit, 10s, 1 << 20));
  REQUIRE(std::holds_alternative<Response>(limited));
  CHECK(std::get<Response>(limited).status == 429);
  CHECK(std::get<Response>(limited).retry_after == "1");
}

TEST_CASE("http client: a server outside the trusted CA is refused") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  testing::TempDir other;
  testing::FakeApiProcess other_api(other);  // its own, different throwaway CA
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = other_api.ca_file()});
  Result<Response> result = RunOn(io, client.Fetch(Get(api, "/v1/credits"), 10s, 1 << 20));
  REQUIRE(std::holds_alternative<NetworkError>(result));
  const NetworkError& error = std::get<NetworkError>(result);
  CHECK(error.what.find("TLS certificate of 127.0.0.1") != std::string::npos);
  CHECK(error.what.find("--ca-file") != std::string::npos);
  CHECK(error.permanent);  // configuration, never retried
  CHECK_FALSE(error.maybe_delivered);
}

TEST_CASE("http client: expired and wrong-host certificates are permanent failures saying which") {
  struct Case {
    const char* certificate;
    const char* says;
  };
  for (const Case& c :
       {Case{"expired", "certificate has expired"}, Case{"wronghost", "not for 127.0.0.1"}}) {
    INFO(c.certificate);
    testing::TempDir dir;
    testing::FakeApiProcess api(dir, {}, c.certificate);
    net::io_context io;
    Client client(io.get_executor(), {.ca_file = api.ca_file()});
    Result<Response> result = RunOn(io, client.Fetch(Get(api, "/v1/credits"), 10s, 1 << 20));
    REQUIRE(std::holds_alternative<NetworkError>(result));
    CHECK(std::get<NetworkError>(result).permanent);
    CHECK(std::get<NetworkError>(result).what.find(c.says) != std::string::npos);
  }
}

TEST_CASE("http client: a server offering only TLS 1.1 is refused, permanently, saying so") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir, {"--tls-max", "1.1"});
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  Result<Response> result = RunOn(io, client.Fetch(Get(api, "/v1/credits"), 10s, 1 << 20));
  REQUIRE(std::holds_alternative<NetworkError>(result));
  CHECK(std::get<NetworkError>(result).permanent);
  CHECK(std::get<NetworkError>(result).what.find("no TLS 1.2 or later") != std::string::npos);
}

TEST_CASE("http client: a stop signal ends a wait for a connection slot at once, unsent") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file(), .max_connections_per_host = 1});
  util::StopSignal stop(io.get_executor());
  int sent = 0, stopped = 0;
  // The first request holds the only slot until the stop; the rest queue behind it.
  auto one = [&](bool first) -> net::awaitable<void> {
    Client::Slot slot = co_await client.AcquireSlot(Get(api, "/v1/credits").endpoint, &stop);
    if (first && slot) co_await stop.SleepFor(std::chrono::seconds(30));
    if (!slot || stop.triggered()) {
      ++stopped;
      co_return;
    }
    Result<Response> result = co_await client.Send(slot, Get(api, "/v1/credits"), 10s, 1 << 20);
    if (std::holds_alternative<Response>(result)) ++sent;
  };
  for (int i = 0; i < 5; ++i) net::co_spawn(io, one(i == 0), net::detached);
  net::post(io, [&] { stop.Trigger(); });
  io.run();
  CHECK(sent == 0);
  CHECK(stopped == 5);
}

// Both ends of a relayed connection, kept by whichever direction ends last.
struct RelayedPair {
  explicit RelayedPair(net::ip::tcp::socket accepted)
      : client(std::move(accepted)), server(client.get_executor()) {}
  net::ip::tcp::socket client;
  net::ip::tcp::socket server;
};

// One direction of a relay until either side closes; then both close.
net::awaitable<void> Pipe(std::shared_ptr<RelayedPair> pair, bool upstream) {
  net::ip::tcp::socket& from = upstream ? pair->client : pair->server;
  net::ip::tcp::socket& to = upstream ? pair->server : pair->client;
  std::array<char, 16384> data;
  boost::system::error_code error;
  auto token = net::redirect_error(net::use_awaitable, error);
  while (true) {
    const std::size_t n = co_await from.async_read_some(net::buffer(data), token);
    if (error) break;
    co_await net::async_write(to, net::buffer(data.data(), n), token);
    if (error) break;
  }
  boost::system::error_code ignored;
  from.close(ignored);
  to.close(ignored);
}

// Relays one TCP connection to `upstream_port`, but connects upstream (so that the TLS handshake
// can finish) only after calling `on_accept`: a handshake held open while the test acts.
net::awaitable<void> HeldRelay(net::ip::tcp::acceptor& acceptor, int upstream_port,
                               std::function<void()> on_accept) {
  auto pair = std::make_shared<RelayedPair>(co_await acceptor.async_accept(net::use_awaitable));
  on_accept();
  const net::ip::tcp::endpoint upstream(net::ip::make_address("127.0.0.1"),
                                        static_cast<std::uint16_t>(upstream_port));
  co_await pair->server.async_connect(upstream, net::use_awaitable);
  net::co_spawn(acceptor.get_executor(), Pipe(pair, true), net::detached);
  net::co_spawn(acceptor.get_executor(), Pipe(pair, false), net::detached);
}

TEST_CASE("http client: a stop during the TLS handshake keeps the request from being sent") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  util::StopSignal stop(io.get_executor());
  net::ip::tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), 0});
  // The stop comes once the connection is accepted: the client is mid-handshake, past every
  // wait before Send.
  net::co_spawn(io, HeldRelay(acceptor, api.api_port(), [&] { stop.Trigger(); }), net::detached);
  Request submit = Get(api, "/v1/images/generations");
  submit.method = Request::Method::kPost;
  submit.endpoint.port = acceptor.local_endpoint().port();
  submit.body = R"({"model":"nano-banana-2","input":{"prompt":"held","output_format":"png"}})";
  auto run = [&]() -> net::awaitable<Result<Response>> {
    Client::Slot slot = co_await client.AcquireSlot(submit.endpoint, &stop);
    REQUIRE(slot);
    Result<Response> result = co_await client.Send(slot, submit, 10s, 1 << 20, &stop);
    client.Shutdown();  // closes the kept connection, which ends the relay
    co_return result;
  };
  Result<Response> result = RunOn(io, run());
  io.run_for(5s);  // the relay's end
  REQUIRE(std::holds_alternative<NetworkError>(result));
  CHECK(std::get<NetworkError>(result).code == net::error::operation_aborted);
  CHECK_FALSE(std::get<NetworkError>(result).maybe_delivered);
  // The handshake did finish, and no request followed it. (The server counts two handshakes:
  // this one and that of the curl asking it.)
  const boost::json::object stats = api.Stats();
  CHECK(testing::Stat(stats, "tls_handshakes") == 2);
  CHECK(testing::Stat(stats, "requests") == 0);
  CHECK(testing::Stat(stats, "submissions") == 0);
}

// Accepts one connection into `held` and never answers it: a TLS handshake that would wait out
// the whole connect timeout.
net::awaitable<void> HoldSilent(net::ip::tcp::acceptor& acceptor,
                                std::optional<net::ip::tcp::socket>& held,
                                std::function<void()> on_accept) {
  held.emplace(co_await acceptor.async_accept(net::use_awaitable));
  on_accept();
}

TEST_CASE("http client: Shutdown ends a TLS handshake under way at once") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);  // for its CA file only
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file(), .connect_timeout = 30s});
  net::ip::tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), 0});
  std::optional<net::ip::tcp::socket> held;
  net::co_spawn(io, HoldSilent(acceptor, held, [&] { client.Shutdown(); }), net::detached);
  Request request = Get(api, "/v1/credits");
  request.endpoint.port = acceptor.local_endpoint().port();
  const auto start = std::chrono::steady_clock::now();
  Result<Response> result = RunOn(io, client.Fetch(request, 30s, 1 << 20));
  REQUIRE(std::holds_alternative<NetworkError>(result));
  CHECK(std::get<NetworkError>(result).code == net::error::operation_aborted);
  CHECK_FALSE(std::get<NetworkError>(result).maybe_delivered);
  CHECK(std::chrono::steady_clock::now() - start < 10s);  // not the 30 s connect timeout
}

// A host lookup that never answers (a DNS server that does not reply), until released or 20 s.
struct HangingLookup {
  std::shared_ptr<std::atomic<bool>> released = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<int>> running = std::make_shared<std::atomic<int>>(0);
  HostResolver::Lookup lookup() const {
    return [released = released, running = running](const std::string&, const std::string&) {
      ++*running;
      for (int i = 0; i < 2000 && !released->load(); ++i) std::this_thread::sleep_for(10ms);
      --*running;
      return HostResolver::Answer{net::error::host_not_found, {}};
    };
  }
  // Lets the lookups end, and waits (bounded) until they have.
  ~HangingLookup() {
    released->store(true);
    for (int i = 0; i < 500 && running->load() > 0; ++i) std::this_thread::sleep_for(10ms);
  }
};

// A client whose API host's lookup hangs.
struct HangingHostClient {
  explicit HangingHostClient(Duration connect_timeout)
      : client(io.get_executor(), {.ca_file = api.ca_file(),
                                   .connect_timeout = connect_timeout,
                                   .lookup = hanging.lookup()}) {}
  // A request for `path` on the host whose lookup hangs.
  Request To(const std::string& path) const {
    Request request = Get(api, path);
    request.endpoint.host = "api.hang.example";
    return request;
  }
  testing::TempDir dir;
  testing::FakeApiProcess api{dir};  // for its CA file only
  HangingLookup hanging;  // goes after the client (and its resolver), releasing the lookups
  net::io_context io;
  Client client;
};

TEST_CASE("http client: a host lookup that never answers ends at the connect timeout") {
  HangingHostClient f(200ms);
  auto& [dir, api, hanging, io, client] = f;
  const Request request = f.To("/v1/credits");
  const auto start = std::chrono::steady_clock::now();
  Result<Response> result = RunOn(io, client.Fetch(request, 30s, 1 << 20));
  REQUIRE(std::holds_alternative<NetworkError>(result));
  CHECK(std::get<NetworkError>(result).code == net::error::timed_out);
  CHECK(std::get<NetworkError>(result).what.starts_with("resolving api.hang.example: "));
  CHECK_FALSE(std::get<NetworkError>(result).maybe_delivered);
  CHECK(std::chrono::steady_clock::now() - start < 10s);  // not the 20 s the lookup hangs
}

TEST_CASE("http client: Shutdown, or a stop signal, ends a host lookup under way at once") {
  HangingHostClient f(30s);
  // References, not a structured binding: the lambda below captures the client (clang 14 cannot
  // capture a binding).
  net::io_context& io = f.io;
  Client& client = f.client;
  Request request = f.To("/v1/images/generations");
  request.method = Request::Method::kPost;

  util::StopSignal stop(io.get_executor());
  net::steady_timer stopper(io, 50ms);
  stopper.async_wait([&](boost::system::error_code) { stop.Trigger(); });
  auto start = std::chrono::steady_clock::now();
  Result<Response> stopped = RunOn(io, client.Fetch(request, 30s, 1 << 20, &stop));
  REQUIRE(std::holds_alternative<NetworkError>(stopped));
  CHECK(std::get<NetworkError>(stopped).code == net::error::operation_aborted);
  CHECK(std::get<NetworkError>(stopped).what.starts_with("not sent: stopped"));
  CHECK_FALSE(std::get<NetworkError>(stopped).maybe_delivered);
  CHECK(std::chrono::steady_clock::now() - start < 10s);

  net::steady_timer shutter(io, 50ms);
  shutter.async_wait([&](boost::system::error_code) { client.Shutdown(); });
  start = std::chrono::steady_clock::now();
  Result<Response> shut = RunOn(io, client.Fetch(request, 30s, 1 << 20));
  REQUIRE(std::holds_alternative<NetworkError>(shut));
  CHECK(std::get<NetworkError>(shut).code == net::error::operation_aborted);
  CHECK_FALSE(std::get<NetworkError>(shut).maybe_delivered);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("http client: a slot is for its own host only") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  Request other = Get(api, "/v1/credits");
  other.endpoint.port = static_cast<std::uint16_t>(api.file_port());  // another authority
  auto run = [&]() -> net::awaitable<Result<Response>> {
    Client::Slot slot = co_await client.AcquireSlot(Get(api, "/v1/credits").endpoint);
    co_return co_await client.Send(slot, other, 10s, 1 << 20);
  };
  Result<Response> result = RunOn(io, run());
  REQUIRE(std::holds_alternative<NetworkError>(result));
  CHECK_FALSE(std::get<NetworkError>(result).maybe_delivered);
}

TEST_CASE("http client: the host name is checked against the certificate") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  // The test certificate names 127.0.0.1 and localhost, not 127.0.0.2 (also loopback).
  Request request = Get(api, "/v1/credits");
  request.endpoint.host = "127.0.0.2";
  Result<Response> result = RunOn(io, client.Fetch(request, 10s, 1 << 20));
  // Either the connection is refused (the simulator binds 127.0.0.1 only) or TLS fails: never a
  // response from a server whose certificate does not name the host.
  CHECK(std::holds_alternative<NetworkError>(result));
}

TEST_CASE("http client: a missing CA file is an error at construction") {
  net::io_context io;
  CHECK_THROWS_AS(Client(io.get_executor(), {.ca_file = "/nonexistent/ca.pem"}),
                  std::runtime_error);
}

TEST_CASE("http client: response bodies above the limit fail instead of growing memory") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  Result<Response> result = RunOn(io, client.Fetch(Get(api, "/v1/credits"), 10s, 8));
  REQUIRE(std::holds_alternative<NetworkError>(result));
  CHECK(std::get<NetworkError>(result).code == boost::beast::http::error::body_limit);
}

// A simulator with one settled task (`extra` adds simulator flags), a client, and the task's
// image on the file host (another port).
struct SettledImage {
  explicit SettledImage(std::vector<std::string> extra = {})
      : api(dir, WithZeroLatency(std::move(extra))),
        client(io.get_executor(), {.ca_file = api.ca_file()}),
        id(SubmitAndSettle(io, client, api, "a cat")),
        image(ImageOf(api, id)) {}
  static std::vector<std::string> WithZeroLatency(std::vector<std::string> extra) {
    extra.insert(extra.begin(), {"--pending-ms", "0", "--processing-ms", "0"});
    return extra;
  }
  testing::TempDir dir;
  testing::FakeApiProcess api;
  net::io_context io;
  Client client;
  std::string id;
  Endpoint image;
};

// Downloads `image`, which must come whole as a PNG; returns its bytes.
std::string DownloadPng(net::io_context& io, Client& client, const Endpoint& image) {
  StringSink sink;
  Result<DownloadOutcome> got = RunOn(io, client.Download(image, sink, 1 << 20, 10s, kLoopback));
  REQUIRE(std::holds_alternative<DownloadOutcome>(got));
  CHECK(std::get<DownloadOutcome>(got).status == 200);
  CHECK(std::get<DownloadOutcome>(got).bytes == sink.bytes.size());
  CHECK(sink.bytes.substr(0, 8) == "\x89PNG\r\n\x1a\n");
  return sink.bytes;
}

TEST_CASE("http client: downloads stream to the sink; limits and resets are errors") {
  SettledImage f;
  auto& [dir, api, io, client, id, image] = f;
  CHECK_FALSE(DownloadPng(io, client, image).empty());

  StringSink small;
  Result<DownloadOutcome> capped = RunOn(io, client.Download(image, small, 100, 10s, kLoopback));
  REQUIRE(std::holds_alternative<NetworkError>(capped));
  CHECK(std::get<NetworkError>(capped).code == boost::beast::http::error::body_limit);
  CHECK(std::get<NetworkError>(capped).too_large);

  StringSink missing;
  Endpoint nothing = image;
  nothing.target = "/images/none-0.png";
  Result<DownloadOutcome> not_found =
      RunOn(io, client.Download(nothing, missing, 1 << 20, 10s, kLoopback));
  REQUIRE(std::holds_alternative<DownloadOutcome>(not_found));
  CHECK(std::get<DownloadOutcome>(not_found).status == 404);
  CHECK(missing.bytes.empty());
}

TEST_CASE("http client: an image sent with a Content-Encoding is not read as the image") {
  for (const char* encoding : {"gzip", "br", "identity", " Identity "}) {
    CAPTURE(encoding);
    SettledImage f({"--image-content-encoding", encoding});
    auto& [dir, api, io, client, id, image] = f;
    StringSink sink;
    Result<DownloadOutcome> got = RunOn(io, client.Download(image, sink, 8 << 20, 10s, kLoopback));
    REQUIRE(std::holds_alternative<DownloadOutcome>(got));
    const DownloadOutcome& outcome = std::get<DownloadOutcome>(got);
    CHECK(outcome.status == 200);
    if (std::string_view(encoding).find("dentity") != std::string_view::npos) {
      CHECK(outcome.content_encoding.empty());  // no encoding: the image, whole
      CHECK(sink.bytes.substr(0, 8) == "\x89PNG\r\n\x1a\n");
    } else {
      CHECK(outcome.content_encoding == encoding);
      CHECK(outcome.bytes == 0);
      CHECK(sink.bytes.empty());
    }
  }
}

TEST_CASE("http client: a download connection with bytes after its body is not reused") {
  // Every answer, images included, is followed by a stray second answer on the open connection.
  SettledImage f({"--wire-fault", "stray-answer", "--wire-fault-every", "1"});
  auto& [dir, api, io, client, id, image] = f;
  const Client::Stats before = client.stats();
  std::string first;
  for (int i = 0; i < 3; ++i) {
    const std::string bytes = DownloadPng(io, client, image);
    if (i == 0) first = bytes;
    CHECK(bytes == first);
    std::this_thread::sleep_for(100ms);  // the stray answer arrives before the next reuse
  }
  CHECK(client.stats().connections_opened == before.connections_opened + 3);
  CHECK(client.stats().connections_reused == before.connections_reused);
  CHECK(client.stats().idle_discarded == before.idle_discarded + 2);
}

TEST_CASE("http client: interim answers (100 Continue, 103 Early Hints) are read past") {
  // Every /v1 answer and every image comes after two interim answers. Taken for the answer, the
  // submit's "100" hid the task id that came after it: a task paid for and never known.
  SettledImage f({"--wire-fault", "interim", "--wire-fault-every", "1"});
  auto& [dir, api, io, client, id, image] = f;
  CHECK(id.size() == 36);  // the submit's real answer, with its id (a UUID)
  Result<Response> task = RunOn(io, client.Fetch(Get(api, "/v1/tasks/" + id), 10s, 1 << 20));
  REQUIRE(std::holds_alternative<Response>(task));
  CHECK(std::get<Response>(task).status == 200);
  CHECK(std::get<Response>(task).body.find("completed") != std::string::npos);
  CheckCredits(io, client, api);
  for (int i = 0; i < 2; ++i) CHECK_FALSE(DownloadPng(io, client, image).empty());
  // Interim answers are part of an exchange: its connection is reused after it.
  CHECK(client.stats().connections_reused >= 3);
}

// Counts the sink's writes, to check that TLS records are gathered before they are stored.
class CountingSink : public StringSink {
 public:
  bool Write(const char* data, std::size_t size) override {
    ++writes;
    return StringSink::Write(data, size);
  }
  int writes = 0;
};

TEST_CASE("http client: a download of several chunks arrives whole, stored 64 KB at a time") {
  // Noisy pixels: a PNG of a few hundred KB, many TLS records and several 64 KB chunks.
  SettledImage f({"--image-scale", "0.35", "--image-noise", "255"});
  auto& [dir, api, io, client, id, image] = f;
  CountingSink sink;
  Result<DownloadOutcome> got = RunOn(io, client.Download(image, sink, 8 << 20, 10s, kLoopback));
  REQUIRE(std::holds_alternative<DownloadOutcome>(got));
  const std::size_t size = sink.bytes.size();
  CHECK(std::get<DownloadOutcome>(got).bytes == size);
  REQUIRE(size > 3 * (std::size_t{64} << 10));
  CHECK(sink.writes == static_cast<int>((size + (std::size_t{64} << 10) - 1) >> 16));
  // The same bytes as one whole-body fetch of the same file.
  Request whole;
  whole.endpoint = image;
  Result<Response> fetched = RunOn(io, client.Fetch(whole, 10s, 8 << 20));
  REQUIRE(std::holds_alternative<Response>(fetched));
  CHECK(std::get<Response>(fetched).body == sink.bytes);
}

TEST_CASE("http client: a chunked image, or one that ends with the connection, arrives whole") {
  for (const char* framing : {"chunked", "close"}) {
    CAPTURE(framing);
    SettledImage f({"--image-scale", "0.35", "--image-noise", "255", "--image-framing", framing});
    auto& [dir, api, io, client, id, image] = f;
    CountingSink sink;
    Result<DownloadOutcome> got = RunOn(io, client.Download(image, sink, 8 << 20, 10s, kLoopback));
    REQUIRE(std::holds_alternative<DownloadOutcome>(got));
    const std::string& png = sink.bytes;
    CHECK(std::get<DownloadOutcome>(got).bytes == png.size());
    REQUIRE(png.size() > 3 * (std::size_t{64} << 10));
    CHECK(png.substr(0, 8) == "\x89PNG\r\n\x1a\n");
    CHECK(png.substr(png.size() - 8, 4) == "IEND");  // the last chunk, whole
    CHECK(sink.writes == static_cast<int>((png.size() + (std::size_t{64} << 10) - 1) >> 16));
    // A body too large for the limit is refused as it comes, not after.
    CountingSink capped;
    Result<DownloadOutcome> refused =
        RunOn(io, client.Download(image, capped, png.size() / 2, 10s, kLoopback));
    REQUIRE(std::holds_alternative<NetworkError>(refused));
    CHECK(std::get<NetworkError>(refused).code == boost::beast::http::error::body_limit);
    CHECK(std::get<NetworkError>(refused).too_large);
  }
}

TEST_CASE("http client: a download to an address the policy refuses never connects") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir, {"--pending-ms", "0", "--processing-ms", "0"});
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  // The API's connection to 127.0.0.1 is pooled now; a download from the same host and port
  // must not borrow it.
  const std::string id = SubmitAndSettle(io, client, api, "a cat");
  const auto before = client.stats();
  for (const std::string& url :
       {api.base_url() + "/images/" + id + "-0.png",
        "https://localhost:" + std::to_string(api.file_port()) + "/images/" + id + "-0.png"}) {
    CAPTURE(url);
    StringSink sink;
    Result<DownloadOutcome> refused =
        RunOn(io, client.Download(*ParseUrl(url), sink, 1 << 20, 10s, AddressPolicy()));
    REQUIRE(std::holds_alternative<NetworkError>(refused));
    const NetworkError& error = std::get<NetworkError>(refused);
    CHECK(error.refused_by_policy);
    CHECK_FALSE(error.permanent);
    CHECK_FALSE(error.maybe_delivered);
    CHECK(error.what.find("loopback") != std::string::npos);
    CHECK(error.what.find("download.allowed_networks") != std::string::npos);
    CHECK(sink.bytes.empty());
  }
  CHECK(client.stats().connections_opened == before.connections_opened);
  CHECK(client.stats().connections_reused == before.connections_reused);
  CHECK(api.Stats().at("images_served").as_int64() == 0);

  // Allowed explicitly, the same download goes through.
  StringSink sink;
  Result<DownloadOutcome> allowed =
      RunOn(io, client.Download(*ParseUrl(api.base_url() + "/images/" + id + "-0.png"), sink,
                                1 << 20, 10s, AddressPolicy({*Network::Parse("127.0.0.1")})));
  REQUIRE(std::holds_alternative<DownloadOutcome>(allowed));
  CHECK(std::get<DownloadOutcome>(allowed).status == 200);
}

// A download of a settled task's image from a simulator that sends it under `fault` (with
// probability 1), with a 2 s stall limit and a 60 s deadline: what it came to, how long it took,
// and how many bytes reached the sink.
struct StalledDownload {
  Result<DownloadOutcome> result;
  std::chrono::steady_clock::duration took;
  std::size_t bytes;
};

StalledDownload DownloadUnder(const char* fault) {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir, {fault, "1", "--pending-ms", "0", "--processing-ms", "0"});
  net::io_context io;
  Client client(io.get_executor(),
                {.ca_file = api.ca_file(), .download_stall = 2s, .download_min_bytes_per_s = 1024});
  const std::string id = SubmitAndSettle(io, client, api, "x");
  StringSink sink;
  const auto start = std::chrono::steady_clock::now();
  Result<DownloadOutcome> result =
      RunOn(io, client.Download(*ParseUrl(api.base_url() + "/images/" + id + "-0.png"), sink,
                                1 << 20, 60s, kLoopback));
  return {std::move(result), std::chrono::steady_clock::now() - start, sink.bytes.size()};
}

TEST_CASE("http client: a download trickling a byte a second fails within the stall limit") {
  const StalledDownload download = DownloadUnder("--p-trickle");
  REQUIRE(std::holds_alternative<NetworkError>(download.result));
  CHECK(std::get<NetworkError>(download.result).what.find("slower than download.min_bytes_per_s") !=
        std::string::npos);
  CHECK(download.took < 10s);  // the total deadline (60 s) is not what ended it
  CHECK(download.bytes < 16);
}

TEST_CASE("http client: an image request never answered fails within the stall limit") {
  const StalledDownload download = DownloadUnder("--p-image-hang");
  REQUIRE(std::holds_alternative<NetworkError>(download.result));
  const std::string& what = std::get<NetworkError>(download.result).what;
  CHECK(what.find("no answer to /images/") != std::string::npos);
  CHECK(what.find("timeouts.download_stall_s") != std::string::npos);
  CHECK(download.took >= 2s);
  CHECK(download.took < 10s);  // the total deadline (60 s) is not what ended it
}

TEST_CASE("http client: a truncated or reset download is an error, never a short success") {
  for (const char* fault : {"--p-truncate", "--p-reset"}) {
    testing::TempDir dir;
    testing::FakeApiProcess api(dir, {fault, "1", "--pending-ms", "0", "--processing-ms", "0"});
    net::io_context io;
    Client client(io.get_executor(), {.ca_file = api.ca_file()});
    const std::string id = SubmitAndSettle(io, client, api, "x");
    StringSink sink;
    Result<DownloadOutcome> result =
        RunOn(io, client.Download(*ParseUrl(api.base_url() + "/images/" + id + "-0.png"), sink,
                                  1 << 20, 10s, kLoopback));
    CHECK_MESSAGE(std::holds_alternative<NetworkError>(result), fault);
  }
}

TEST_CASE("http client: cutting waiting downloads ends one without its header; a body goes on") {
  testing::TempDir dir;
  // Images come slowly, and the third /v1 answer never comes (the first two settle a task).
  testing::FakeApiProcess api(
      dir, {"--p-slow", "1", "--slow-ms", "1500", "--pending-ms", "0", "--processing-ms", "0",
            "--wire-fault", "hang", "--wire-fault-every", "3"});
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  const std::string id = SubmitAndSettle(io, client, api, "x");

  const auto start = std::chrono::steady_clock::now();
  std::optional<Result<DownloadOutcome>> waiting_result, streaming_result;
  std::chrono::steady_clock::duration waiting_took{}, streaming_took{};
  StringSink waiting_sink, streaming_sink;
  net::co_spawn(io,
                client.Download(*ParseUrl(api.base_url() + "/v1/credits"), waiting_sink, 1 << 20,
                                30s, kLoopback),
                [&](std::exception_ptr, Result<DownloadOutcome> result) {
                  waiting_took = std::chrono::steady_clock::now() - start;
                  waiting_result = std::move(result);
                });
  net::co_spawn(io, client.Download(ImageOf(api, id), streaming_sink, 1 << 20, 30s, kLoopback),
                [&](std::exception_ptr, Result<DownloadOutcome> result) {
                  streaming_took = std::chrono::steady_clock::now() - start;
                  streaming_result = std::move(result);
                });
  net::steady_timer cut(io, 500ms);
  cut.async_wait([&](boost::system::error_code) { client.CutWaitingDownloads(); });
  while ((!waiting_result || !streaming_result) && io.run_one() > 0) {
  }
  io.restart();

  REQUIRE(waiting_result);
  REQUIRE(std::holds_alternative<NetworkError>(*waiting_result));
  CHECK(std::get<NetworkError>(*waiting_result).code == net::error::operation_aborted);
  CHECK(waiting_took < 1500ms);  // at the cut, not at the 30 s deadline
  REQUIRE(streaming_result);
  REQUIRE(std::holds_alternative<DownloadOutcome>(*streaming_result));
  CHECK(std::get<DownloadOutcome>(*streaming_result).status == 200);
  CHECK(streaming_took >= 1000ms);  // it went on past the cut, to its end
  CHECK(streaming_sink.bytes.substr(0, 4) == "\x89PNG");

  // Downloads asked for after the cut fail at once; the API's requests still go.
  StringSink late;
  Result<DownloadOutcome> refused =
      RunOn(io, client.Download(ImageOf(api, id), late, 1 << 20, 30s, kLoopback));
  REQUIRE(std::holds_alternative<NetworkError>(refused));
  CHECK(std::get<NetworkError>(refused).code == net::error::operation_aborted);
  CheckCredits(io, client, api);
}

TEST_CASE("http client: Shutdown makes later requests fail at once") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir);
  net::io_context io;
  Client client(io.get_executor(), {.ca_file = api.ca_file()});
  client.Shutdown();
  Result<Response> result = RunOn(io, client.Fetch(Get(api, "/v1/credits"), 10s, 1 << 20));
  REQUIRE(std::holds_alternative<NetworkError>(result));
  CHECK(std::get<NetworkError>(result).code == net::error::operation_aborted);
}

}  // namespace
}  // namespace nanobatch::http
