#include "runner/http/parsers.h"

#include <doctest/doctest.h>

#include <boost/asio/buffer.hpp>
#include <string>
#include <string_view>

namespace nanobatch::http {
namespace {

namespace bhttp = boost::beast::http;

// Feeds all of `bytes` to `parser`, then the end of the connection if it still needs more.
boost::beast::error_code Parse(bhttp::basic_parser<false>& parser, std::string_view bytes) {
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

// What a download delivers through rooms of `room` bytes, each handed on when the parser asks
// for more room (need_buffer) and at the end, as Client::Download does with its chunk.
struct Downloaded {
  std::string body;
  boost::beast::error_code error;
};
Downloaded Download(DownloadParser& parser, std::string_view bytes, std::size_t room) {
  Downloaded out;
  std::string chunk(room, '\0');
  auto hand_on = [&] {
    out.body.append(chunk.data(), room - parser.room_left());
    parser.SetRoom(chunk.data(), room);
  };
  parser.SetRoom(chunk.data(), room);
  std::size_t offset = 0;
  for (int step = 0; step < 10000 && !parser.is_done(); ++step) {
    boost::beast::error_code error;
    if (offset < bytes.size()) {
      offset +=
          parser.put(boost::asio::buffer(bytes.data() + offset, bytes.size() - offset), error);
    } else {
      parser.put_eof(error);
    }
    if (error == bhttp::error::need_buffer) {
      hand_on();
      continue;
    }
    if (error == bhttp::error::need_more && offset < bytes.size()) continue;
    if (error) {
      out.error = error;
      break;
    }
  }
  hand_on();
  return out;
}

TEST_CASE("download parser: the status, then the body through the caller's room") {
  const std::string image(1000, 'x');
  for (const std::size_t room : {std::size_t{1}, std::size_t{7}, std::size_t{64 << 10}}) {
    CAPTURE(room);
    DownloadParser parser;
    LimitResponse(parser, 1 << 20);
    const Downloaded got = Download(parser,
                                    "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
                                    "Content-Length: 1000\r\n\r\n" +
                                        image,
                                    room);
    CHECK_FALSE(got.error);
    CHECK(parser.status() == 200);
    CHECK(got.body == image);
    CHECK(parser.keep_alive());
  }

  DownloadParser chunked;
  LimitResponse(chunked, 1 << 20);
  const Downloaded pieces = Download(chunked,
                                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                                     4);
  CHECK_FALSE(pieces.error);
  CHECK(pieces.body == "hello world");
  CHECK(chunked.keep_alive());
  CHECK(chunked.content_encoding().empty());

  // Content-Encoding, the one header kept: every one of them, joined, and capped.
  DownloadParser encoded;
  LimitResponse(encoded, 1 << 20);
  CHECK_FALSE(Download(encoded,
                       "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n"
                       "content-encoding: br\r\n\r\nxx",
                       16)
                  .error);
  CHECK(encoded.content_encoding() == "gzip, br");
  // Without the spaces around the value (the client compares it to "identity" as it is).
  DownloadParser spaced;
  LimitResponse(spaced, 1 << 20);
  CHECK_FALSE(Download(spaced,
                       "HTTP/1.1 200 OK\r\nContent-Encoding:   Identity \t\r\n"
                       "Content-Length: 0\r\n\r\n",
                       16)
                  .error);
  CHECK(spaced.content_encoding() == "Identity");
  DownloadParser long_encoding;
  LimitResponse(long_encoding, 1 << 20);
  Download(long_encoding,
           "HTTP/1.1 200 OK\r\nContent-Encoding: " + std::string(5000, 'z') +
               "\r\nContent-Length: 0\r\n\r\n",
           16);
  CHECK(long_encoding.content_encoding().size() == DownloadParser::kMaxEncodingBytes);

  // A body that ends with the connection: the connection cannot be kept.
  DownloadParser to_eof;
  LimitResponse(to_eof, 1 << 20);
  const Downloaded rest = Download(to_eof, "HTTP/1.1 200 OK\r\n\r\nuntil the end", 5);
  CHECK_FALSE(rest.error);
  CHECK(rest.body == "until the end");
  CHECK_FALSE(to_eof.keep_alive());

  DownloadParser missing;
  LimitResponse(missing, 1 << 20);
  CHECK_FALSE(Download(missing, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 8).error);
  CHECK(missing.status() == 404);
}

TEST_CASE("download parser: a body past the limit is refused, announced or not") {
  DownloadParser announced;
  LimitResponse(announced, 8);
  const Downloaded too_long =
      Download(announced, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789", 4);
  CHECK(too_long.error == bhttp::error::body_limit);
  CHECK(too_long.body.empty());

  DownloadParser chunked;
  LimitResponse(chunked, 8);
  const Downloaded pieces = Download(chunked,
                                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
                                     3);
  CHECK(pieces.error == bhttp::error::body_limit);
  CHECK(pieces.body.size() <= 8);
}

}  // namespace
}  // namespace nanobatch::http
