#include "runner/http/parsers.h"

#include <doctest/doctest.h>

#include <boost/asio/buffer.hpp>
#include <string>
#include <string_view>

namespace nanobatch::http {
namespace {

namespace bhttp = boost::beast::http;

// Feeds all of `bytes` to `parser`, then the end of the connection if it still needs more.
boost::beast::error_code Parse(AnswerParser& parser, std::string_view bytes) {
  boost::beast::error_code error;
  std::size_t offset = 0;
  for (int step = 0; step < 100 && offset < bytes.size() && !parser.is_done(); ++step) {
    offset += parser.put(boost::asio::buffer(bytes.data() + offset, bytes.size() - offset), error);
    if (error == bhttp::error::need_more) {
      error = {};
      break;
    }
    if (error) return error;
  }
  if (!parser.is_done()) parser.put_eof(error);
  return error;
}

TEST_CASE("answer parser: the status, the first Retry-After and the body, the rest dropped") {
  AnswerParser parser;
  LimitResponse(parser, 1 << 20);
  const auto error = Parse(parser,
                           "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                           "Retry-After: 7\r\nX-Other: x\r\nRetry-After: 99\r\n"
                           "Content-Length: 13\r\n\r\n{\"code\":429}\n");
  CHECK_FALSE(error);
  CHECK(parser.is_done());
  CHECK(parser.status() == 429);
  REQUIRE(parser.retry_after());
  CHECK(*parser.retry_after() == "7");
  CHECK(parser.body() == "{\"code\":429}\n");
  CHECK(parser.keep_alive());
}

TEST_CASE("answer parser: chunked and connection-delimited bodies, keep-alive as framed") {
  AnswerParser chunked;
  LimitResponse(chunked, 1 << 20);
  CHECK_FALSE(Parse(chunked,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  CHECK(chunked.status() == 200);
  CHECK(chunked.body() == "hello world");
  CHECK_FALSE(chunked.retry_after());
  CHECK(chunked.keep_alive());

  // A body that ends with the connection: the connection cannot be kept.
  AnswerParser to_eof;
  LimitResponse(to_eof, 1 << 20);
  CHECK_FALSE(Parse(to_eof, "HTTP/1.1 200 OK\r\n\r\nuntil the end"));
  CHECK(to_eof.is_done());
  CHECK(to_eof.body() == "until the end");
  CHECK_FALSE(to_eof.keep_alive());

  AnswerParser closing;
  LimitResponse(closing, 1 << 20);
  CHECK_FALSE(
      Parse(closing, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"));
  CHECK_FALSE(closing.keep_alive());

  AnswerParser old_http;
  LimitResponse(old_http, 1 << 20);
  CHECK_FALSE(Parse(old_http, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  CHECK_FALSE(old_http.keep_alive());
}

TEST_CASE("answer parser: a body past the limit is refused, announced or not") {
  AnswerParser announced;
  LimitResponse(announced, 8);
  CHECK(Parse(announced, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789") ==
        bhttp::error::body_limit);
  CHECK(announced.body().empty());

  AnswerParser chunked;
  LimitResponse(chunked, 8);
  CHECK(Parse(chunked,
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n") == bhttp::error::body_limit);
  CHECK(chunked.body().size() <= 8);

  AnswerParser to_eof;
  LimitResponse(to_eof, 8);
  CHECK(Parse(to_eof, "HTTP/1.1 200 OK\r\n\r\n123456789") == bhttp::error::body_limit);
  CHECK(to_eof.body().size() <= 8);
}

}  // namespace
}  // namespace nanobatch::http
