#include "runner/http/client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "runner/http/host_resolver.h"
#include "runner/http/parsers.h"
#include "runner/http/tls_stream.h"
#include "runner/util/async.h"

namespace nanobatch::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

constexpr auto kAsTuple = net::as_tuple(net::use_awaitable);
constexpr std::size_t kDownloadChunk = std::size_t{64} << 10;

// A connection keeps its read buffer from one answer to the next (one allocation per
// connection, not per request), up to this size: a larger one (a download's) is given back when
// the connection goes idle.
constexpr std::size_t kKeptReadBuffer = std::size_t{16} << 10;

struct Connection {
  Connection(net::any_io_executor executor, ssl::context& tls)
      : stream(std::move(executor), tls.native_handle()) {}
  TlsStream stream;
  beast::flat_buffer buffer;  // what was read from the stream and not yet parsed
  std::chrono::steady_clock::time_point idle_since;
  // An image download that has not begun to receive its body (connecting, requesting, waiting
  // for the header): what CutWaitingDownloads() closes.
  bool download_waiting = false;
};

// "HTTP/1.1 200\r\n": a status line without the space before its (empty) reason phrase. RFC 9112
// requires the space and Beast insists on it, but curl, Python, Go and Node read such a line, and
// refused, a submit's 200 would be an answer whose task id cannot be read (possibly charged,
// resubmitted). Made "HTTP/1.1 200 \r\n" in the buffer, before the parser sees it.
void AddMissingReasonSpace(beast::flat_buffer& buffer) {
  constexpr std::size_t kLineEnd = 12;  // "HTTP/1.x DDD", then CR LF
  if (buffer.size() < kLineEnd + 2) return;
  const auto* line = static_cast<const char*>(buffer.data().data());
  const auto digit = [&](std::size_t at) { return line[at] >= '0' && line[at] <= '9'; };
  if (std::memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' || !digit(9) || !digit(10) ||
      !digit(11) || line[kLineEnd] != '\r' || line[kLineEnd + 1] != '\n') {
    return;
  }
  const std::size_t size = buffer.size();
  buffer.commit(net::buffer_copy(buffer.prepare(1), net::buffer(" ", 1)));
  auto* bytes = static_cast<char*>(buffer.data().data());  // prepare may have moved them
  std::memmove(bytes + kLineEnd + 1, bytes + kLineEnd, size - kLineEnd);
  bytes[kLineEnd] = ' ';
}

// What beast::http::async_read_some does, over a TlsStream: parses what `buffer` holds, reading
// more while the parser needs more. Ends when the parser made progress (or is done), or with its
// error (need_buffer: a buffer_body's buffer is full).
net::awaitable<beast::error_code> ReadHttpSome(TlsStream& stream, beast::flat_buffer& buffer,
                                               bhttp::basic_parser<false>& parser) {
  for (;;) {
    if (buffer.size() > 0) {
      // Beast takes a header only whole (until then it consumes nothing), so while it is not
      // done, the buffer starts with the status line.
      if (!parser.is_header_done()) AddMissingReasonSpace(buffer);
      beast::error_code error;
      const std::size_t used = parser.put(buffer.data(), error);
      buffer.consume(used);
      if (error != bhttp::error::need_more) co_return error;
    }
    const std::size_t room = beast::read_size(buffer, kDownloadChunk);
    if (room == 0) co_return bhttp::error::buffer_overflow;
    auto [read_error, read] = co_await stream.ReadSome(buffer.prepare(room));
    if (read_error == net::error::eof) {
      // A TLS close_notify: the end of a message that runs to the end of the connection.
      if (!parser.got_some()) co_return bhttp::error::end_of_stream;
      beast::error_code error;
      parser.put_eof(error);
      co_return error;
    }
    if (read_error) co_return read_error;
    buffer.commit(read);
  }
}

// beast::http::async_read_header (`header_only`) or async_read over a TlsStream.
net::awaitable<beast::error_code> ReadHttp(TlsStream& stream, beast::flat_buffer& buffer,
                                           bhttp::basic_parser<false>& parser, bool header_only) {
  while (header_only ? !parser.is_header_done() : !parser.is_done()) {
    const beast::error_code error = co_await ReadHttpSome(stream, buffer, parser);
    if (error) co_return error;
  }
  co_return beast::error_code();
}

// Interim answers (1xx) a server or a proxy may send before the final one (100 Continue, 103
// Early Hints): every HTTP/1.1 client must read past them (RFC 9110, 15.2). Taken for the answer,
// a submit's "100" hid the "200" with its task id behind it: paid for, and never known. 101
// (Switching Protocols, never asked for) is final.
constexpr int kMaxInterimAnswers = 8;

bool IsInterim(int status) { return status >= 100 && status < 200 && status != 101; }

// ReadHttp of the final answer into `parser` (emplaced afresh for each answer: a parser reads
// one), past up to kMaxInterimAnswers interim ones; more than that is a broken server.
template <typename Parser>
net::awaitable<beast::error_code> ReadFinalAnswer(TlsStream& stream, beast::flat_buffer& buffer,
                                                  std::optional<Parser>& parser,
                                                  std::uint64_t body_limit, bool header_only) {
  for (int interim = 0;; ++interim) {
    parser.emplace();
    LimitResponse(*parser, body_limit);
    const beast::error_code error = co_await ReadHttp(stream, buffer, *parser, header_only);
    if (error || !IsInterim(parser->status())) co_return error;
    if (interim == kMaxInterimAnswers) co_return bhttp::error::bad_status;
  }
}

// How long the connections a pool opens at once wait for the first one's TLS session, so that
// they resume it rather than each verify the certificate chain: once per pool, at its start.
constexpr auto kFirstSessionWait = std::chrono::milliseconds(250);

struct HostPool {
  HostPool(net::any_io_executor executor, std::size_t size, bool for_downloads)
      : slots(executor, size), session_arrived(executor), for_downloads(for_downloads) {}
  ~HostPool() {
    if (session != nullptr) SSL_SESSION_free(session);
  }
  util::AsyncSemaphore slots;
  std::vector<std::unique_ptr<Connection>> idle;
  // The newest TLS session a server of this host and port handed out, offered by the next
  // connection: sessions are never offered to another authority.
  SSL_SESSION* session = nullptr;
  util::AsyncEvent session_arrived;
  const bool for_downloads;  // image downloads keep pools of their own, never the API's
  // Until then, a new connection waits for a session while none is known (set by the first).
  std::optional<std::chrono::steady_clock::time_point> first_session_deadline;
};

// The slot of an SSL object that names its pool (Asio keeps its verify callback in the app
// data, so a slot of our own).
int PoolIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL's new-session callback (TLS 1.3 tickets arrive after the handshake, with the first
// reads): the session is kept by the pool the connection belongs to.
int KeepSession(SSL* ssl, SSL_SESSION* session) {
  auto* pool = static_cast<HostPool*>(SSL_get_ex_data(ssl, PoolIndex()));
  if (pool == nullptr || SSL_SESSION_is_resumable(session) != 1) return 0;
  // A copy: connections end without a TLS close_notify (a dropped connection, or one idle too
  // long), and OpenSSL then marks the connection's own session as not resumable.
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy == nullptr) return 0;
  if (pool->session != nullptr) SSL_SESSION_free(pool->session);
  pool->session = copy;
  pool->session_arrived.Notify();
  return 0;  // the original stays OpenSSL's
}

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code error;
  net::ip::make_address(host, error);
  return !error;
}

NetworkError Failure(boost::system::error_code code, std::string what, bool maybe_delivered) {
  NetworkError error{code, std::move(what) + ": " + code.message(), maybe_delivered};
  error.too_large = code == bhttp::error::body_limit;
  return error;
}

// A failed handshake: a certificate that does not verify, or a server without TLS >= 1.2, is a
// configuration problem that no retry cures; anything else (a reset, a timeout) is transient.
NetworkError HandshakeFailure(boost::system::error_code code, SSL* ssl, const Endpoint& endpoint) {
  const std::string where = endpoint.Authority();
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    std::string hint;
    switch (verify) {
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        hint = "the certificate is not for " + endpoint.host +
               ": check the URL's host (--base-url / api.base_url, or the download host)";
        break;
      case X509_V_ERR_CERT_HAS_EXPIRED:
      case X509_V_ERR_CERT_NOT_YET_VALID:
        hint =
            "the server's certificate is outside its validity period (or this machine's clock "
            "is wrong)";
        break;
      default:
        hint =
            "the certificate is not signed by a trusted CA: set --ca-file (api.ca_file) to the "
            "CA that signed it, or fix the server's chain";
        break;
    }
    NetworkError error = Failure(code,
                                 "TLS certificate of " + where + " rejected (" +
                                     X509_verify_cert_error_string(verify) + "); " + hint,
                                 false);
    error.permanent = true;
    return error;
  }
  if (code.category() == net::error::get_ssl_category()) {
    const int reason = ERR_GET_REASON(static_cast<unsigned long>(code.value()));
    if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
        reason == SSL_R_NO_PROTOCOLS_AVAILABLE || reason == SSL_R_WRONG_VERSION_NUMBER ||
        reason == SSL_R_PACKET_LENGTH_TOO_LONG || reason == SSL_R_RECORD_LENGTH_MISMATCH) {
      NetworkError error = Failure(code,
                                   "TLS handshake with " + where +
                                       " failed: the server speaks no TLS 1.2 or later (or no "
                                       "TLS at all: is the URL's port an https port?)",
                                   false);
      error.permanent = true;
      return error;
    }
  }
  return Failure(code, "TLS handshake with " + where, false);
}

bool LoadTrustStore(ssl::context& tls, const std::string& ca_file, std::string& error) {
  boost::system::error_code code;
  if (ca_file.empty()) {
    tls.set_default_verify_paths(code);
  } else {
    tls.load_verify_file(ca_file, code);
  }
  if (code) {
    error = "cannot load the CA " + (ca_file.empty() ? std::string("store") : "file " + ca_file) +
            ": " + code.message();
    return false;
  }
  return true;
}

}  // namespace

bool Client::CheckTrustStore(const std::string& ca_file, std::string& error) {
  ssl::context tls(ssl::context::tls_client);
  return LoadTrustStore(tls, ca_file, error);
}

struct Client::Impl {
  Impl(net::any_io_executor executor_in, ClientOptions options_in)
      : executor(std::move(executor_in)),
        options(std::move(options_in)),
        resolver(executor, options.lookup),
        tls(ssl::context::tls_client) {
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    // TLS 1.3 suites, AES-128-GCM first (as Chrome, Firefox and Go's TLS order them): OpenSSL's
    // default puts AES-256-GCM with SHA-384 first, whose handshake hashes are SHA-512 rounds in
    // software where SHA-256 has the CPU's SHA extensions, and whose bulk cipher is slower.
    // Both are 128-bit-secure or better; servers still pick from all three.
    SSL_CTX_set_ciphersuites(tls.native_handle(),
                             "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                             "TLS_CHACHA20_POLY1305_SHA256");
    tls.set_verify_mode(ssl::verify_peer);
    // Client-side session caching, kept by the pools (not OpenSSL's internal store).
    SSL_CTX_set_session_cache_mode(tls.native_handle(),
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(tls.native_handle(), KeepSession);
    std::string error;
    if (!LoadTrustStore(tls, options.ca_file, error)) throw std::runtime_error(error);
  }

  // Downloads have pools of their own: their connections went to addresses the download policy
  // checked, and an API connection (to an address the user configured) is never lent to one.
  HostPool& PoolFor(const Endpoint& endpoint, bool for_downloads = false) {
    // Looked up twice a request: the key is built in a buffer kept for it, not allocated.
    pool_key.assign(for_downloads ? "download " : "");
    endpoint.AppendAuthority(pool_key);
    auto found = pools.find(pool_key);
    if (found == pools.end()) {
      found = pools
                  .emplace(pool_key, std::make_unique<HostPool>(
                                         executor, options.max_connections_per_host, for_downloads))
                  .first;
    }
    return *found->second;
  }

  // Takes a live idle connection, or nullptr. An idle connection has nothing to read: one that
  // has (the server's FIN or TLS alert when it closed it, or an answer nobody asked for) is
  // closed rather than reused. A request sent on a connection the server already closed may
  // have been delivered or not (a paid POST left unsure), and stray bytes would be read as the
  // answer to the next request. As curl and urllib3 do: a zero-timeout poll before each reuse.
  std::unique_ptr<Connection> TakeIdle(HostPool& pool) {
    const auto now = std::chrono::steady_clock::now();
    while (!pool.idle.empty()) {
      std::unique_ptr<Connection> connection = std::move(pool.idle.back());
      pool.idle.pop_back();
      if (now - connection->idle_since < options.max_idle && IsQuiet(*connection)) {
        return connection;
      }
      ++stats.idle_discarded;
    }
    return nullptr;
  }

  static bool IsQuiet(Connection& connection) {
    // Bytes may already be past the socket, in OpenSSL's buffers (read ahead with the last
    // answer, in the same segment).
    if (connection.stream.HasBuffered()) return false;
    pollfd readable{};
    readable.fd = connection.stream.socket().native_handle();
    readable.events = POLLIN;
    return ::poll(&readable, 1, 0) == 0;
  }

  // `policy`, when given, is checked against every address the host resolved to; only those
  // that pass are connected to (from this one resolution, so no later lookup can swap them).
  // `stop` (when given) ends the wait for the host's addresses at once, as Shutdown() does.
  net::awaitable<Result<std::unique_ptr<Connection>>> Connect(HostPool& pool,
                                                              const Endpoint& endpoint,
                                                              const AddressPolicy* policy,
                                                              util::StopSignal* stop) {
    HostResolver::Answer resolved =
        co_await resolver.Resolve(endpoint.host, endpoint.port, options.connect_timeout, stop);
    if (resolved.error) co_return Failure(resolved.error, "resolving " + endpoint.host, false);
    std::vector<tcp::endpoint> allowed;
    std::string refusal;
    for (const tcp::endpoint& address : resolved.endpoints) {
      if (policy != nullptr) {
        if (auto why = policy->Refusal(address.address())) {
          if (refusal.empty()) refusal = std::move(*why);
          continue;
        }
      }
      allowed.push_back(address);
    }
    if (allowed.empty()) {
      if (refusal.empty()) refusal = "it resolved to no address";
      NetworkError error = Failure(net::error::access_denied,
                                   "not connecting to " + endpoint.host + ": " + refusal, false);
      error.refused_by_policy = true;
      co_return error;
    }

    auto connection = std::make_unique<Connection>(executor, tls);
    connection->download_waiting = pool.for_downloads;
    // In use from here: Shutdown() closes it mid-connect or mid-handshake too, rather than wait
    // out connect_timeout on a server that never answers.
    ActiveGuard opening(*this, connection.get());
    connection->stream.ExpiresAfter(options.connect_timeout);  // the handshake's too
    const beast::error_code connect_error = co_await connection->stream.Connect(allowed);
    if (connect_error)
      co_return Failure(connect_error, "connecting to " + endpoint.Authority(), false);
    // Requests go out as whole TLS records, each one ready to send: Nagle's algorithm would hold
    // a request's second record (its body) until the server acknowledged the first, which a
    // server delaying its ACKs makes a 40 ms stall per exchange.
    boost::system::error_code ignored;
    connection->stream.socket().set_option(tcp::no_delay(true), ignored);

    // SNI (for names only: RFC 6066 forbids IP literals there) and OpenSSL's own check of the
    // name or address, so that a mismatch is reported as X509_V_ERR_HOSTNAME_MISMATCH (or
    // IP_ADDRESS_MISMATCH) by the verify result.
    SSL* native = connection->stream.native_handle();
    const bool ip = IsIpLiteral(endpoint.host);
    const bool configured =
        ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), endpoint.host.c_str()) == 1
           : SSL_set_tlsext_host_name(native, endpoint.host.c_str()) == 1 &&
                 SSL_set1_host(native, endpoint.host.c_str()) == 1;
    if (!configured) {
      co_return Failure(boost::system::error_code(static_cast<int>(::ERR_get_error()),
                                                  net::error::get_ssl_category()),
                        "setting up TLS for " + endpoint.host, false);
    }
    SSL_set_verify(native, SSL_VERIFY_PEER, SSL_get_verify_callback(native));
    SSL_set_ex_data(native, PoolIndex(), &pool);
    // The first connection of a pool goes ahead; those opened with it wait (briefly) for its
    // session, which comes with its first answer.
    const auto now = std::chrono::steady_clock::now();
    if (!pool.first_session_deadline) {
      pool.first_session_deadline = now + kFirstSessionWait;
    } else if (pool.session == nullptr && now < *pool.first_session_deadline) {
      co_await pool.session_arrived.WaitFor(*pool.first_session_deadline - now);
    }
    // A session the server does not take back costs nothing: the handshake is a full one.
    if (pool.session != nullptr) SSL_set_session(native, pool.session);
    const beast::error_code handshake_error = co_await connection->stream.Handshake();
    if (handshake_error) co_return HandshakeFailure(handshake_error, native, endpoint);
    ++stats.connections_opened;
    if (SSL_session_reused(native) == 1) ++stats.sessions_resumed;
    co_return std::move(connection);
  }

  // A live idle connection of `pool` (when `allow_reuse`), or a new one. `reused` says which.
  net::awaitable<Result<std::unique_ptr<Connection>>> Lease(HostPool& pool,
                                                            const Endpoint& endpoint,
                                                            bool allow_reuse, bool& reused,
                                                            const AddressPolicy* policy = nullptr,
                                                            util::StopSignal* stop = nullptr) {
    std::unique_ptr<Connection> connection = allow_reuse ? TakeIdle(pool) : nullptr;
    reused = connection != nullptr;
    if (reused) {
      ++stats.connections_reused;
    } else {
      auto connected = co_await Connect(pool, endpoint, policy, stop);
      // Shutdown() came while the connection was being opened (and closed it, if it got that
      // far): that, not what it did to the socket, is the answer.
      if (shut_down) co_return Failure(net::error::operation_aborted, "shutting down", false);
      if (auto* error = std::get_if<NetworkError>(&connected)) co_return *error;
      connection = std::move(std::get<0>(connected));
    }
    co_return std::move(connection);
  }

  // Keeps the connection for reuse when the exchange ended cleanly and the server allows it.
  // Bytes read past the answer (nothing asked for them) leave it in an unknown state: it is not
  // reused.
  void Return(HostPool& pool, std::unique_ptr<Connection> connection, bool reusable) {
    if (!reusable || connection->buffer.size() > 0 || shut_down) {
      return;  // destroyed: closed without ceremony
    }
    if (connection->buffer.capacity() > kKeptReadBuffer) connection->buffer.shrink_to_fit();
    connection->idle_since = std::chrono::steady_clock::now();
    connection->stream.ExpiresNever();
    pool.idle.push_back(std::move(connection));
  }

  // Registers a connection in use so that Shutdown() can cancel it.
  struct ActiveGuard {
    ActiveGuard(Impl& impl, Connection* connection) : impl(impl), connection(connection) {
      impl.active.push_back(connection);
    }
    ~ActiveGuard() {
      auto found = std::find(impl.active.begin(), impl.active.end(), connection);
      if (found == impl.active.end()) return;
      *found = impl.active.back();
      impl.active.pop_back();
    }
    Impl& impl;
    Connection* connection;
  };

  // Holds one of the pool's slots for the life of an exchange.
  struct SlotGuard {
    explicit SlotGuard(HostPool& pool) : pool(pool) {}
    ~SlotGuard() { pool.slots.Release(); }
    HostPool& pool;
  };

  net::any_io_executor executor;
  ClientOptions options;
  HostResolver resolver;
  ssl::context tls;
  std::map<std::string, std::unique_ptr<HostPool>, std::less<>> pools;
  std::string pool_key;  // PoolFor's
  // Connections in use: no more than the exchanges under way, so a vector, which allocates
  // nothing per exchange once grown (a set allocated a node for each).
  std::vector<Connection*> active;
  bool shut_down = false;
  bool downloads_cut = false;  // CutWaitingDownloads(): no download begins any more
  Client::Stats stats;
};

Client::Client(net::any_io_executor executor, ClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(options))) {}

Client::~Client() = default;

Client::Stats Client::stats() const { return impl_->stats; }

void Client::CutWaitingDownloads() {
  impl_->downloads_cut = true;
  for (auto& [authority, pool] : impl_->pools) {
    if (!pool->for_downloads) continue;
    pool->idle.clear();
    pool->slots.Close();
    pool->session_arrived.Notify();
  }
  for (Connection* connection : impl_->active) {
    if (!connection->download_waiting) continue;
    beast::error_code ignored;
    connection->stream.socket().cancel(ignored);
    connection->stream.socket().close(ignored);
  }
}

void Client::Shutdown() {
  impl_->shut_down = true;
  impl_->resolver.Shutdown();
  for (auto& [authority, pool] : impl_->pools) {
    pool->idle.clear();
    pool->slots.Close();
    pool->session_arrived.Notify();  // a connection waiting for the first one's session goes on
  }
  for (Connection* connection : impl_->active) {
    beast::error_code ignored;
    connection->stream.socket().cancel(ignored);
    connection->stream.socket().close(ignored);
  }
}

Client::Slot::Slot(Slot&& other) noexcept : slots_(std::exchange(other.slots_, nullptr)) {}

Client::Slot& Client::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (slots_ != nullptr) slots_->Release();
    slots_ = std::exchange(other.slots_, nullptr);
  }
  return *this;
}

Client::Slot::~Slot() {
  if (slots_ != nullptr) slots_->Release();
}

net::awaitable<Client::Slot> Client::AcquireSlot(const Endpoint& endpoint, util::StopSignal* stop) {
  Impl& impl = *impl_;
  HostPool& pool = impl.PoolFor(endpoint);
  Slot slot;
  if (impl.shut_down || !co_await pool.slots.Acquire(stop)) co_return slot;
  slot.slots_ = &pool.slots;
  co_return slot;
}

net::awaitable<Result<Response>> Client::Fetch(Request request, Duration timeout,
                                               std::size_t body_limit, util::StopSignal* stop) {
  Slot slot = co_await AcquireSlot(request.endpoint, stop);
  if (!slot) co_return Failure(net::error::operation_aborted, "shutting down", false);
  co_return co_await Send(slot, std::move(request), timeout, body_limit, stop);
}

net::awaitable<Result<Response>> Client::Send(const Slot& slot, Request request, Duration timeout,
                                              std::size_t body_limit, util::StopSignal* stop) {
  const bool is_post = request.method == Request::Method::kPost;
  const std::string target = request.endpoint.target;
  Result<Response> result =
      co_await SendUnobserved(slot, std::move(request), timeout, body_limit, stop);
  // A request that never left (stopped, shut down, not this slot's host) is no API request.
  const NetworkError* error = std::get_if<NetworkError>(&result);
  const bool never_left =
      error != nullptr && error->code == net::error::operation_aborted && !error->maybe_delivered;
  if (impl_->options.on_response && !never_left) {
    const Response* response = std::get_if<Response>(&result);
    impl_->options.on_response(is_post, target, response ? response->status : 0);
  }
  co_return result;
}

net::awaitable<Result<Response>> Client::SendUnobserved(const Slot& slot, Request request,
                                                        Duration timeout, std::size_t body_limit,
                                                        util::StopSignal* stop) {
  Impl& impl = *impl_;
  const bool is_post = request.method == Request::Method::kPost;
  HostPool& pool = impl.PoolFor(request.endpoint);
  if (!slot || slot.slots_ != &pool.slots || impl.shut_down) {  // a slot of another host
    co_return Failure(net::error::operation_aborted, "not sent", false);
  }

  const std::optional<std::string> bytes =
      RequestBytes({.method = is_post ? "POST" : "GET",
                    .endpoint = request.endpoint,
                    .accept = "application/json",
                    .headers = request.headers,
                    .content_type = is_post ? "application/json" : "",
                    .body = is_post ? std::string_view(request.body) : std::string_view()});
  if (!bytes) {
    NetworkError error = Failure(net::error::invalid_argument,
                                 "a request to " + request.endpoint.Authority() +
                                     " with a control character in its target or headers",
                                 false);
    error.permanent = true;
    co_return error;
  }

  // At most two tries: a reused connection that turns out to be dead is replaced once, when that
  // cannot have delivered the request.
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = false;
    auto leased = co_await impl.Lease(pool, request.endpoint, attempt == 0, reused, nullptr, stop);
    if (stop != nullptr && stop->triggered()) {
      // Stopped while the connection was being opened (its lookup cut short, or a connection
      // that is sound, kept for whoever is next): not sent.
      if (auto* opened = std::get_if<std::unique_ptr<Connection>>(&leased)) {
        impl.Return(pool, std::move(*opened), /*reusable=*/true);
      }
      co_return Failure(net::error::operation_aborted, "not sent: stopped", false);
    }
    if (auto* error = std::get_if<NetworkError>(&leased)) co_return *error;
    std::unique_ptr<Connection> connection = std::move(std::get<0>(leased));
    Impl::ActiveGuard active(impl, connection.get());

    connection->stream.ExpiresAfter(timeout);
    std::size_t written = 0;
    const beast::error_code write_error = co_await connection->stream.WriteAll(*bytes, written);
    if (write_error) {
      if (reused && attempt == 0 && write_error != net::error::operation_aborted) continue;
      co_return Failure(write_error, "sending to " + request.endpoint.Authority(), written > 0);
    }

    std::optional<AnswerParser> parser;
    const beast::error_code read_error = co_await ReadFinalAnswer(
        connection->stream, connection->buffer, parser, body_limit, /*header_only=*/false);
    if (read_error) {
      // A dead kept-alive connection answers the first read with EOF or a reset. For a GET that
      // is safe to retry; a POST may already be with the server, so the caller must know.
      if (reused && attempt == 0 && !parser->got_some() && !is_post &&
          read_error != net::error::operation_aborted) {
        continue;
      }
      co_return Failure(read_error, "reading the response of " + request.endpoint.Authority(),
                        true);
    }
    Response response;
    response.status = parser->status();
    response.retry_after = parser->retry_after().value_or("");
    response.body = std::move(parser->body());
    impl.Return(pool, std::move(connection), parser->keep_alive() && response.status != 101);
    co_return response;
  }
  co_return Failure(net::error::connection_reset, "connection to " + request.endpoint.Authority(),
                    is_post);
}

net::awaitable<Result<DownloadOutcome>> Client::Download(Endpoint endpoint, BodySink& sink,
                                                         std::uint64_t max_bytes, Duration timeout,
                                                         const AddressPolicy& addresses) {
  Impl& impl = *impl_;
  HostPool& pool = impl.PoolFor(endpoint, /*for_downloads=*/true);
  const std::vector<Header> no_headers;
  const std::optional<std::string> bytes = RequestBytes({.method = "GET",
                                                         .endpoint = endpoint,
                                                         .accept = "",
                                                         .headers = no_headers,
                                                         .content_type = "",
                                                         .body = ""});
  if (!bytes) {
    // A URL with a control character in it (the download policy parsed it; this is the last
    // line of defence): not an image this client can ask for.
    NetworkError error =
        Failure(net::error::invalid_argument, "image URL with a control character in it", false);
    error.refused_by_policy = true;
    co_return error;
  }
  if (impl.shut_down || impl.downloads_cut || !co_await pool.slots.Acquire()) {
    co_return Failure(net::error::operation_aborted, "shutting down", false);
  }
  Impl::SlotGuard slot(pool);

  bool reused = false;
  auto leased = co_await impl.Lease(pool, endpoint, /*allow_reuse=*/true, reused, &addresses);
  // Cut while the connection was being opened: that, not what it did to the socket, is the answer.
  if (impl.downloads_cut) co_return Failure(net::error::operation_aborted, "shutting down", false);
  if (auto* error = std::get_if<NetworkError>(&leased)) co_return *error;
  std::unique_ptr<Connection> connection = std::move(std::get<0>(leased));
  connection->download_waiting = true;  // a reused one too, until its body begins
  Impl::ActiveGuard active(impl, connection.get());

  const auto deadline = std::chrono::steady_clock::now() + timeout;  // for the whole download
  connection->stream.ExpiresAt(deadline);
  std::size_t written = 0;
  const beast::error_code write_error = co_await connection->stream.WriteAll(*bytes, written);
  if (write_error) co_return Failure(write_error, "requesting " + endpoint.target, true);

  // The answer's header, too, must begin within download_stall: a host that takes the request
  // and says nothing held each download for the whole deadline (300 s by default).
  const Duration stall = impl.options.download_stall;
  const auto header_deadline = std::min(deadline, std::chrono::steady_clock::now() + stall);
  // What a download cut for going `stall` without a byte says (made only then).
  const auto stalled = [stall] {
    return " for " +
           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(stall).count()) +
           " s (timeouts.download_stall_s)";
  };
  connection->stream.ExpiresAt(header_deadline);
  beast::flat_buffer& buffer = connection->buffer;
  std::optional<DownloadParser> final_answer;
  const beast::error_code header_error = co_await ReadFinalAnswer(
      connection->stream, buffer, final_answer, max_bytes, /*header_only=*/true);
  if (header_error == beast::error::timeout && header_deadline < deadline) {
    co_return Failure(header_error, "no answer to " + endpoint.target + stalled(), true);
  }
  if (header_error) co_return Failure(header_error, "reading headers of " + endpoint.target, true);
  DownloadParser& parser = *final_answer;

  DownloadOutcome outcome;
  outcome.status = parser.status();
  if (outcome.status != 200) co_return outcome;  // the connection is dropped with its body
  // An encoded body (gzip, br: asked for identity, the host compressed it anyway) would be stored
  // and hashed as it came, not as the image. "identity" alone, in any case, is no encoding (the
  // parser gives a header's value without the spaces around it).
  if (const std::string& encoding = parser.content_encoding();
      !encoding.empty() && !beast::iequals(encoding, "identity")) {
    outcome.content_encoding = encoding;
    co_return outcome;  // dropped with its body, as above
  }
  // The image is coming: CutWaitingDownloads() lets it finish (Shutdown() still ends it).
  connection->download_waiting = false;

  // The body, a chunk at a time, straight to the sink: never the whole image in memory. Besides
  // the total deadline, each read must bring a byte within download_stall, and once that long
  // into the body the bytes must have come at download_min_bytes_per_s on average.
  const std::uint64_t min_rate = impl.options.download_min_bytes_per_s;
  const auto body_start = std::chrono::steady_clock::now();
  char chunk[kDownloadChunk];
  std::size_t filled = 0;  // bytes in `chunk` not yet handed to the sink
  // A body of announced length (what image hosts send) goes from TLS straight into `chunk`:
  // OpenSSL's copy of the plaintext is the only one, where through the parser each byte was
  // copied into the read buffer and again into the chunk. A chunked body, or one that runs to
  // the end of the connection, goes through the parser.
  const bool known_length = parser.content_length().has_value();
  // The parser's reads are sized by the buffer's free capacity, a few hundred bytes after the
  // headers (an image took a read, a parse and a write per few hundred bytes): room for a whole
  // TLS record per read. Only that path needs it; Return gives the room back.
  if (!known_length) buffer.reserve(kDownloadChunk);
  std::uint64_t remaining = known_length ? *parser.content_length() : 0;
  const auto body_done = [&] { return known_length ? remaining == 0 : parser.is_done(); };
  while (!body_done()) {
    // Records of a TLS stream come 16 KB at a time: they fill the chunk before it goes to the
    // sink, one write (and hash update) per 64 KB rather than one per record.
    const std::size_t room = sizeof chunk - filled;
    connection->stream.ExpiresAt(std::min(deadline, std::chrono::steady_clock::now() + stall));
    beast::error_code read_error;
    std::size_t got = 0;
    if (known_length && buffer.size() > 0) {
      // Body bytes that came with the headers.
      got = net::buffer_copy(net::buffer(chunk + filled, std::min<std::uint64_t>(room, remaining)),
                             buffer.data());
      buffer.consume(got);
    } else if (known_length) {
      auto [error, read] = co_await connection->stream.ReadSome(
          net::buffer(chunk + filled, std::min<std::uint64_t>(room, remaining)));
      // The connection ended before the announced length: what the parser calls that.
      read_error =
          error == net::error::eof ? beast::error_code(bhttp::error::partial_message) : error;
      got = read;
    } else {
      parser.SetRoom(chunk + filled, room);
      read_error = co_await ReadHttpSome(connection->stream, buffer, parser);
      if (read_error == bhttp::error::need_buffer) read_error = {};
      got = room - parser.room_left();
    }
    if (known_length) remaining -= got;
    const auto now = std::chrono::steady_clock::now();
    if (read_error == beast::error::timeout && now < deadline) {
      co_return Failure(read_error, "no byte of " + endpoint.target + stalled(), true);
    }
    if (read_error) co_return Failure(read_error, "reading the body of " + endpoint.target, true);
    filled += got;
    if ((filled == sizeof chunk || body_done()) && filled > 0) {
      if (!sink.Write(chunk, filled)) {
        co_return Failure(net::error::operation_aborted, "storing " + endpoint.target, true);
      }
      filled = 0;
    }
    outcome.bytes += got;
    const double seconds = std::chrono::duration<double>(now - body_start).count();
    if (min_rate > 0 && now - body_start >= stall && !body_done() &&
        static_cast<double>(outcome.bytes) < static_cast<double>(min_rate) * seconds) {
      co_return Failure(
          beast::error::timeout,
          endpoint.target + " came at " +
              std::to_string(
                  static_cast<std::uint64_t>(static_cast<double>(outcome.bytes) / seconds)) +
              " bytes/s, slower than download.min_bytes_per_s (" + std::to_string(min_rate) + ")",
          true);
    }
  }
  impl.Return(pool, std::move(connection), parser.keep_alive());
  co_return outcome;
}

}  // namespace nanobatch::http
