#include "runner/http/request_bytes.h"

#include <boost/beast/http.hpp>
#include <optional>
#include <sstream>

#include "doctest/doctest.h"
#include "runner/version.h"

namespace nanobatch::http {
namespace {

namespace bhttp = boost::beast::http;

Endpoint ApiEndpoint(std::string target) {
  Endpoint endpoint;
  endpoint.host = "api.example.com";
  endpoint.port = 8443;
  endpoint.target = std::move(target);
  return endpoint;
}

// A GET with no Accept, no headers and no body (a download's request).
std::optional<std::string> PlainGet(const Endpoint& endpoint) {
  const std::vector<Header> none;
  return RequestBytes({.method = "GET",
                       .endpoint = endpoint,
                       .accept = "",
                       .headers = none,
                       .content_type = "",
                       .body = ""});
}

// What Beast's serializer writes for the same request, as the client sent it before.
template <typename Message>
std::string Serialized(Message& message) {
  std::ostringstream out;
  out << message;
  return out.str();
}

TEST_CASE("a POST is byte for byte what Beast's serializer writes") {
  const Endpoint endpoint = ApiEndpoint("/v1/images/generations");
  const std::vector<Header> headers{{"Authorization", "Bearer sk-test"}};
  const std::string body = R"({"prompt":"a cat"})";
  auto bytes = RequestBytes({.method = "POST",
                             .endpoint = endpoint,
                             .accept = "application/json",
                             .headers = headers,
                             .content_type = "application/json",
                             .body = body});
  REQUIRE(bytes);

  bhttp::request<bhttp::string_body> message{bhttp::verb::post, endpoint.target, 11};
  message.set(bhttp::field::host, endpoint.Authority());
  message.set(bhttp::field::user_agent, std::string("nanobatch/") + kVersion);
  message.set(bhttp::field::accept_encoding, "identity");
  message.set(bhttp::field::accept, "application/json");
  message.set("Authorization", "Bearer sk-test");
  message.set(bhttp::field::content_type, "application/json");
  message.body() = body;
  message.keep_alive(true);
  message.prepare_payload();
  CHECK(*bytes == Serialized(message));
}

TEST_CASE("a GET has no body headers and parses back as the same request") {
  const Endpoint endpoint = ApiEndpoint("/images/t-0.png?x=1");
  auto bytes = PlainGet(endpoint);
  REQUIRE(bytes);

  bhttp::request<bhttp::empty_body> message{bhttp::verb::get, endpoint.target, 11};
  message.set(bhttp::field::host, endpoint.Authority());
  message.set(bhttp::field::user_agent, std::string("nanobatch/") + kVersion);
  message.set(bhttp::field::accept_encoding, "identity");
  message.keep_alive(true);
  CHECK(*bytes == Serialized(message));

  bhttp::request_parser<bhttp::string_body> parser;
  boost::beast::error_code error;
  parser.put(boost::asio::buffer(*bytes), error);
  REQUIRE_FALSE(error);
  REQUIRE(parser.is_done());
  CHECK(parser.get().method() == bhttp::verb::get);
  CHECK(parser.get().target() == "/images/t-0.png?x=1");
  CHECK(parser.get()[bhttp::field::host] == "api.example.com:8443");
  CHECK(parser.get()[bhttp::field::accept_encoding] == "identity");
  CHECK(parser.get().keep_alive());
  CHECK(parser.get().body().empty());
}

TEST_CASE("an IPv6 host is bracketed in Host") {
  Endpoint endpoint = ApiEndpoint("/");
  endpoint.host = "::1";
  auto bytes = PlainGet(endpoint);
  REQUIRE(bytes);
  CHECK(bytes->find("\r\nHost: [::1]:8443\r\n") != std::string::npos);
}

TEST_CASE("anything that could end a line or smuggle a header is refused, not sent") {
  const std::vector<Header> none;
  auto refused = [&](std::string_view method, std::string target,
                     const std::vector<Header>& headers, std::string_view content_type = "",
                     std::string_view body = "") {
    const Endpoint endpoint = ApiEndpoint(std::move(target));
    return !RequestBytes({.method = method,
                          .endpoint = endpoint,
                          .accept = "application/json",
                          .headers = headers,
                          .content_type = content_type,
                          .body = body})
                .has_value();
  };
  CHECK_FALSE(refused("GET", "/ok", {{"X-Trace", "a b\tc"}}));
  CHECK(refused("GET", "/a\r\nX-Evil: 1", none));
  CHECK(refused("GET", "/a b", none));
  CHECK(refused("GET", "", none));
  CHECK(refused("GET", "/ok", {{"Authorization", "Bearer k\r\nX-Evil: 1"}}));
  CHECK(refused("GET", "/ok", {{"Authorization", std::string("Bearer k\0x", 10)}}));
  CHECK(refused("GET", "/ok", {{"X Evil", "1"}}));
  CHECK(refused("GET", "/ok", {{"X-Evil:", "1"}}));
  CHECK(refused("GET", "/ok", {{"", "1"}}));
  CHECK(refused("GE T", "/ok", none));
  CHECK(refused("POST", "/ok", none, "application/json\r\nX-Evil: 1", "{}"));
  CHECK(refused("POST", "/ok", none, "", "{}"));  // a body needs a content type

  Endpoint bad_host = ApiEndpoint("/ok");
  bad_host.host = "example.com\r\nX-Evil: 1";
  CHECK_FALSE(PlainGet(bad_host));
}

}  // namespace
}  // namespace nanobatch::http
