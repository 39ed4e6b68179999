#pragma once
// TlsStream: a TLS client connection whose socket OpenSSL reads and writes itself, the event loop
// only saying when the socket is ready. Asio's ssl::stream puts a BIO pair between the two: every
// byte is copied once more, every record goes through an engine round (with OpenSSL's error queue
// cleared each time), and Beast's tcp_stream arms a timer for every read and write. A request and
// its answer here are one write and usually one read, each a system call, and one deadline.
//
// OpenSSL reads with read-ahead, so bytes that came after an answer (from a server that sent
// something nobody asked for) are in its buffer: HasBuffered() says so, and a connection with
// any is not reused (Client's IsQuiet). Reads and writes go through a BIO of this class's own:
// recv and send with MSG_DONTWAIT and MSG_NOSIGNAL (a peer's reset is an error code,
// never a SIGPIPE, whatever the process does with the signal).
//
// Errors are those Asio's stream gives for the same events, so that callers classify them alike:
// net::error::eof for a TLS close_notify, net::ssl::error::stream_truncated for a connection that
// ended without one, OpenSSL's packed error codes in net::error::get_ssl_category() for a
// handshake or record failure, system errors for the socket, beast::error::timeout for a
// deadline (as beast::tcp_stream).
//
// Example:
//   TlsStream stream(executor, ssl_ctx);
//   stream.ExpiresAfter(10s);
//   if (auto error = co_await stream.Connect(endpoints)) ...
//   if (auto error = co_await stream.Handshake()) ...
//   std::size_t written = 0;
//   auto error = co_await stream.WriteAll(request_bytes, written);
//   auto [read_error, got] = co_await stream.ReadSome(buffer.prepare(4096));

#include <openssl/ssl.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace nanobatch::http {

class TlsStream {
 public:
  using Clock = std::chrono::steady_clock;
  using ErrorCode = boost::system::error_code;

  // A client connection of `context` (its verification, sessions and suites), not yet connected.
  // Throws std::bad_alloc when OpenSSL cannot make one.
  TlsStream(boost::asio::any_io_executor executor, SSL_CTX* context);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  boost::asio::ip::tcp::socket& socket() { return socket_; }
  SSL* native_handle() { return ssl_; }

  // The deadline of what follows, until the next call: an operation waiting when it passes, or
  // started after it passed, ends with beast::error::timeout. The timer's wait may outlive the
  // deadline (ExpiresNever leaves it to end by itself): an owner that ends its event loop closes
  // the stream first.
  void ExpiresAt(Clock::time_point deadline);
  void ExpiresAfter(Clock::duration timeout) { ExpiresAt(Clock::now() + timeout); }
  void ExpiresNever();

  // The first of `endpoints` that accepts (as boost::asio::async_connect).
  boost::asio::awaitable<ErrorCode> Connect(
      const std::vector<boost::asio::ip::tcp::endpoint>& endpoints);
  // The client's side of the TLS handshake (SNI, name checks and sessions set on native_handle()).
  boost::asio::awaitable<ErrorCode> Handshake();
  // All of `bytes`; `written` says how many went before an error (a request may have been
  // delivered in part).
  boost::asio::awaitable<ErrorCode> WriteAll(std::string_view bytes, std::size_t& written);
  // At least one byte of plaintext into `buffer`, or an error.
  boost::asio::awaitable<std::pair<ErrorCode, std::size_t>> ReadSome(
      boost::asio::mutable_buffer buffer);

  // Whether bytes already read from the socket wait in OpenSSL's buffers (a record, decrypted
  // or not).
  bool HasBuffered() const { return SSL_has_pending(ssl_) == 1; }

 private:
  struct Deadline;
  static int BioWrite(BIO* bio, const char* data, std::size_t size, std::size_t* written);
  static int BioRead(BIO* bio, char* data, std::size_t size, std::size_t* read);
  static long BioControl(BIO* bio, int command, long number, void* pointer);
  static BIO_METHOD* SocketMethod();

  // Makes the timer's wait end at `when` (the deadline in force, or earlier).
  static void Arm(const std::shared_ptr<Deadline>& deadline, Clock::time_point when);
  bool expired() const;
  static void ClearStaleErrors();
  // The error an OpenSSL call's SSL_get_error (other than a wait) stands for.
  ErrorCode ErrorCodeOf(int ssl_error);
  // Waits until the socket is ready for what `ssl_error` (SSL_ERROR_WANT_READ or _WRITE) asks.
  boost::asio::awaitable<ErrorCode> AwaitReady(int ssl_error);
  // Calls `attempt` (an OpenSSL call: 1 on success) until it succeeds, waiting for the socket
  // whenever OpenSSL asks; or the error it failed with, or the deadline's.
  template <typename Attempt>
  boost::asio::awaitable<ErrorCode> Retry(const Attempt& attempt);

  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<Deadline> deadline_;  // shared with the timer's handler, which may run later
  SSL* ssl_ = nullptr;
  int socket_errno_ = 0;  // the last failed recv or send's errno, for SSL_ERROR_SYSCALL
  // A request was just written: its answer cannot have come yet, so the next read waits for the
  // socket before it tries (one recv that would find nothing saved per exchange).
  bool awaiting_answer_ = false;
};

}  // namespace nanobatch::http
