#include "runner/http/tls_stream.h"

#include <openssl/err.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <cerrno>
#include <cstdint>
#include <new>
#include <utility>

namespace nanobatch::http {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {
constexpr auto kAsTuple = net::as_tuple(net::use_awaitable);
}  // namespace

// What the deadline's timer shares with the stream: its handler may run after the stream is gone
// (the timer fired, its handler not yet run), so it holds this weakly.
struct TlsStream::Deadline {
  Deadline(tcp::socket* socket_in, net::steady_timer* timer_in)
      : socket(socket_in), timer(timer_in) {}
  static constexpr Clock::time_point kNever = Clock::time_point::max();
  tcp::socket* socket;
  net::steady_timer* timer;
  bool expired = false;
  Clock::time_point at = kNever;  // the deadline in force
  // When the timer's wait ends (kNever: no wait). It identifies the wait: a handler of an
  // earlier one (it fired, and was queued before the timer was moved) finds another time here.
  Clock::time_point armed = kNever;
};

TlsStream::TlsStream(net::any_io_executor executor, SSL_CTX* context)
    : socket_(executor),
      timer_(executor),
      deadline_(std::make_shared<Deadline>(&socket_, &timer_)) {
  ssl_ = SSL_new(context);
  BIO* bio = ssl_ != nullptr ? BIO_new(SocketMethod()) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl_);
    throw std::bad_alloc();
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // owned by ssl_ from here
  SSL_set_connect_state(ssl_);
  // A write of a request in parts is resumed from where it stopped, with the same bytes.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Whole segments per recv, not a record header then its body: one system call per read.
  SSL_set_read_ahead(ssl_, 1);
}

TlsStream::~TlsStream() {
  deadline_.reset();  // a handler still to run finds the stream gone
  SSL_free(ssl_);     // its BIO with it; the socket closes after
}

// ---- the socket as OpenSSL's BIO ----------------------------------------------------------

BIO_METHOD* TlsStream::SocketMethod() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nanobatch socket");
    if (made == nullptr) throw std::bad_alloc();
    BIO_meth_set_write_ex(made, &TlsStream::BioWrite);
    BIO_meth_set_read_ex(made, &TlsStream::BioRead);
    BIO_meth_set_ctrl(made, &TlsStream::BioControl);
    return made;
  }();
  return method;
}

int TlsStream::BioWrite(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  ssize_t sent;
  do {
    sent = ::send(self->socket_.native_handle(), data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent >= 0) {
    *written = static_cast<std::size_t>(sent);
    return 1;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    BIO_set_retry_write(bio);
  } else {
    self->socket_errno_ = errno;
  }
  return 0;
}

int TlsStream::BioRead(BIO* bio, char* data, std::size_t size, std::size_t* read) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  ssize_t got;
  do {
    got = ::recv(self->socket_.native_handle(), data, size, MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got > 0) {
    *read = static_cast<std::size_t>(got);
    return 1;
  }
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    BIO_set_retry_read(bio);
  } else {
    self->socket_errno_ = got < 0 ? errno : 0;  // 0: the peer closed the connection
  }
  return 0;
}

long TlsStream::BioControl(BIO* /*bio*/, int command, long /*number*/, void* /*pointer*/) {
  // Writes go straight to the socket: nothing to flush, nothing pending in this BIO.
  return command == BIO_CTRL_FLUSH ? 1 : 0;
}

// ---- deadlines ------------------------------------------------------------------------------

// The timer is moved only when a deadline comes earlier than its wait ends. A later deadline
// (each request's, in turn) leaves the wait in place, and when it ends it waits again for the
// rest: a request costs no timer operation, where cancelling and re-arming cost two, and the
// cancelled wait's handler ran too.
void TlsStream::ExpiresAt(Clock::time_point deadline) {
  deadline_->expired = false;
  deadline_->at = deadline;
  if (deadline < deadline_->armed) Arm(deadline_, deadline);
}

void TlsStream::ExpiresNever() {
  deadline_->expired = false;
  deadline_->at = Deadline::kNever;  // a wait in place ends without effect
}

void TlsStream::Arm(const std::shared_ptr<Deadline>& deadline, Clock::time_point when) {
  deadline->armed = when;
  deadline->timer->expires_at(when);  // cancels the wait in place, if any
  deadline->timer->async_wait(
      [weak = std::weak_ptr<Deadline>(deadline), when](const ErrorCode& error) {
        if (error) return;  // cancelled: moved earlier, or the stream is closing
        auto shared = weak.lock();
        if (!shared || shared->armed != when) return;  // gone, or moved since it fired
        shared->armed = Deadline::kNever;
        if (shared->at == Deadline::kNever) return;  // no deadline now: no wait either
        if (Clock::now() < shared->at) {
          Arm(shared, shared->at);  // the deadline moved later while this wait ran
          return;
        }
        shared->expired = true;
        ErrorCode ignored;
        shared->socket->cancel(ignored);  // what waits ends (operation_aborted: a timeout)
      });
}

bool TlsStream::expired() const { return deadline_->expired; }

// ---- operations -----------------------------------------------------------------------------

net::awaitable<TlsStream::ErrorCode> TlsStream::Connect(
    const std::vector<tcp::endpoint>& endpoints) {
  if (expired()) co_return boost::beast::error::timeout;
  auto [error, endpoint] = co_await net::async_connect(socket_, endpoints, kAsTuple);
  if (error == net::error::operation_aborted && expired()) co_return boost::beast::error::timeout;
  co_return error;
}

net::awaitable<TlsStream::ErrorCode> TlsStream::AwaitReady(int ssl_error) {
  if (expired()) co_return boost::beast::error::timeout;
  const auto wait =
      ssl_error == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read;
  auto [error] = co_await socket_.async_wait(wait, kAsTuple);
  if (error == net::error::operation_aborted && expired()) co_return boost::beast::error::timeout;
  co_return error;
}

void TlsStream::ClearStaleErrors() {
  // SSL_get_error takes any error in this thread's queue for the call's own; one left there by
  // some other OpenSSL user would turn a "wait for the socket" into a failure. Peeking is cheap,
  // clearing is not (Asio's stream clears before every call).
  if (ERR_peek_error() != 0) ERR_clear_error();
}

TlsStream::ErrorCode TlsStream::ErrorCodeOf(int ssl_error) {
  ErrorCode error;
  switch (ssl_error) {
    case SSL_ERROR_ZERO_RETURN:
      error = net::error::eof;  // the peer's close_notify
      break;
    case SSL_ERROR_SYSCALL:
      // A socket error, or (errno 0) a connection that ended without a TLS close_notify.
      error = socket_errno_ != 0 ? ErrorCode(socket_errno_, boost::system::system_category())
                                 : ErrorCode(net::ssl::error::stream_truncated);
      break;
    case SSL_ERROR_SSL: {
      const unsigned long code = ERR_get_error();
      if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        error = net::ssl::error::stream_truncated;
      } else {
        error = ErrorCode(static_cast<int>(code), net::error::get_ssl_category());
      }
      break;
    }
    default:
      error = ErrorCode(static_cast<int>(ERR_get_error()), net::error::get_ssl_category());
      break;
  }
  ERR_clear_error();  // the rest of this failure's entries
  socket_errno_ = 0;
  return error;
}

template <typename Attempt>
net::awaitable<TlsStream::ErrorCode> TlsStream::Retry(const Attempt& attempt) {
  for (;;) {
    if (expired()) co_return boost::beast::error::timeout;
    ClearStaleErrors();
    const int result = attempt();
    if (result == 1) co_return ErrorCode();
    const int ssl_error = SSL_get_error(ssl_, result);
    if (ssl_error != SSL_ERROR_WANT_READ && ssl_error != SSL_ERROR_WANT_WRITE) {
      co_return ErrorCodeOf(ssl_error);
    }
    const ErrorCode waited = co_await AwaitReady(ssl_error);
    if (waited) co_return waited;
  }
}

net::awaitable<TlsStream::ErrorCode> TlsStream::Handshake() {
  const auto handshake = [this] { return SSL_do_handshake(ssl_); };
  co_return co_await Retry(handshake);
}

net::awaitable<TlsStream::ErrorCode> TlsStream::WriteAll(std::string_view bytes,
                                                         std::size_t& written) {
  written = 0;
  std::size_t sent = 0;
  // Named, not a temporary inside the co_await (GCC 12).
  const auto write = [&] {
    return SSL_write_ex(ssl_, bytes.data() + written, bytes.size() - written, &sent);
  };
  while (written < bytes.size()) {
    const ErrorCode error = co_await Retry(write);
    if (error) co_return error;
    written += sent;
  }
  awaiting_answer_ = true;
  co_return ErrorCode();
}

net::awaitable<std::pair<TlsStream::ErrorCode, std::size_t>> TlsStream::ReadSome(
    net::mutable_buffer buffer) {
  using Result = std::pair<ErrorCode, std::size_t>;
  if (std::exchange(awaiting_answer_, false) && !HasBuffered()) {
    const ErrorCode waited = co_await AwaitReady(SSL_ERROR_WANT_READ);
    if (waited) co_return Result(waited, 0);
  }
  std::size_t got = 0;
  const auto read = [&] { return SSL_read_ex(ssl_, buffer.data(), buffer.size(), &got); };
  const ErrorCode error = co_await Retry(read);
  co_return Result(error, error ? 0 : got);
}

}  // namespace nanobatch::http
