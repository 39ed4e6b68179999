#pragma once
// The Beast parser settings of nanobatch's HTTP, in one place: the client's (API answers and
// downloads) and the server's (webhooks, serve's API). The fuzz targets in runner/fuzz feed bytes
// through these same set-ups, so what is fuzzed is what runs.
//
// Beast is heavy: only the client, the server and the fuzzers include this.
//
// Example:
//   bhttp::response_parser<bhttp::string_body> parser;
//   http::LimitResponse(parser, api::kApiBodyLimit);

#include <algorithm>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace nanobatch::http {

// Headers a server may send us (the rest is a broken or hostile server), and headers a client
// of our server may send.
inline constexpr std::uint32_t kMaxResponseHeaderBytes = 64 * 1024;
inline constexpr std::uint32_t kMaxRequestHeaderBytes = 16 * 1024;

template <typename Parser>
void LimitResponse(Parser& parser, std::uint64_t body_limit) {
  parser.header_limit(kMaxResponseHeaderBytes);
  parser.body_limit(body_limit);
}

template <typename Parser>
void LimitRequest(Parser& parser, std::uint64_t body_limit) {
  parser.header_limit(kMaxRequestHeaderBytes);
  parser.body_limit(body_limit);
}

// What the client's two response parsers share: the status, kept, and Beast's basic_parser
// callbacks that neither needs. A body's bytes, of announced length or chunked, go to Body().
class ResponseParser : public boost::beast::http::basic_parser<false> {
 public:
  int status() const { return status_; }

 protected:
  using string_view = boost::beast::string_view;
  using error_code = boost::beast::error_code;

  // The body's next bytes; returns how many were taken (fewer, with an error, to stop).
  virtual std::size_t Body(string_view bytes, error_code& error) = 0;

 private:
  void on_request_impl(boost::beast::http::verb, string_view, string_view, int,
                       error_code&) override {}  // never called: this parses responses
  void on_response_impl(int code, string_view, int, error_code&) override { status_ = code; }
  void on_field_impl(boost::beast::http::field, string_view, string_view, error_code&) override {}
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(string_view bytes, error_code& error) override {
    return Body(bytes, error);
  }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view bytes, error_code& error) override {
    return Body(bytes, error);
  }
  void on_finish_impl(error_code&) override {}

  int status_ = 0;
};

// An API answer as Client::Send reads it: the status, the first Retry-After header and the body.
// Every other header is parsed and checked by Beast, then dropped: its response_parser kept each
// one in a list of fields (an allocation per header) that nothing read. Limits as any parser
// (LimitResponse); keep_alive() is basic_parser's, false for a body that ends with the connection.
class AnswerParser : public ResponseParser {
 public:
  const std::optional<std::string>& retry_after() const { return retry_after_; }
  std::string& body() { return body_; }

 private:
  void on_field_impl(boost::beast::http::field name, string_view, string_view value,
                     error_code&) override {
    if (name == boost::beast::http::field::retry_after && !retry_after_) {
      retry_after_.emplace(value.data(), value.size());
    }
  }
  // The announced length is within the body limit here: the parser refused a larger one.
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    if (length) body_.reserve(static_cast<std::size_t>(*length));
  }
  std::size_t Body(string_view bytes, error_code&) override {
    body_.append(bytes.data(), bytes.size());
    return bytes.size();
  }

  std::optional<std::string> retry_after_;
  std::string body_;
};

// A download's answer as Client::Download reads it: the status, then the body into room the
// caller lends (SetRoom), as response_parser<buffer_body> does but keeping no header (Beast's
// kept each one as an allocated field, every image). A body that does not fit in the room left
// ends the put with http::error::need_buffer, as buffer_body's does; room_left() says how much
// of the room the body has not filled. Limits as any parser (LimitResponse); keep_alive() is
// basic_parser's, false for a body that ends with the connection. The one header kept is
// Content-Encoding: an encoded body is not the image its bytes would be taken for.
class DownloadParser : public ResponseParser {
 public:
  void SetRoom(char* data, std::size_t size) {
    room_ = data;
    room_left_ = size;
  }
  std::size_t room_left() const { return room_left_; }
  // The Content-Encoding headers' values, joined with ", " (at most kMaxEncodingBytes kept).
  const std::string& content_encoding() const { return content_encoding_; }
  static constexpr std::size_t kMaxEncodingBytes = 128;

 private:
  void on_field_impl(boost::beast::http::field name, string_view, string_view value,
                     error_code&) override {
    if (name != boost::beast::http::field::content_encoding) return;
    if (!content_encoding_.empty()) content_encoding_ += ", ";
    content_encoding_.append(value.data(), value.size());
    if (content_encoding_.size() > kMaxEncodingBytes) content_encoding_.resize(kMaxEncodingBytes);
  }
  std::size_t Body(string_view bytes, error_code& error) override {
    const std::size_t taken = std::min(bytes.size(), room_left_);
    if (taken > 0) std::memcpy(room_, bytes.data(), taken);
    room_ += taken;
    room_left_ -= taken;
    if (taken < bytes.size()) error = boost::beast::http::error::need_buffer;
    return taken;
  }

  char* room_ = nullptr;
  std::size_t room_left_ = 0;
  std::string content_encoding_;
};

}  // namespace nanobatch::http
