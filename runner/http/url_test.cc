#include "runner/http/url.h"

#include <doctest/doctest.h>

namespace nanobatch::http {
namespace {

TEST_CASE("url: https URLs are taken apart, with default and explicit ports") {
  auto a = ParseUrl("https://file.aivideoapi.ai/images/2026/04/05/abc123.png");
  REQUIRE(a);
  CHECK(a->https);
  CHECK(a->host == "file.aivideoapi.ai");
  CHECK(a->port == 443);
  CHECK(a->target == "/images/2026/04/05/abc123.png");
  CHECK(a->Authority() == "file.aivideoapi.ai:443");

  auto b = ParseUrl("https://127.0.0.1:8443");
  REQUIRE(b);
  CHECK(b->port == 8443);
  CHECK(b->target == "/");

  auto c = ParseUrl("http://[::1]:9000/x?y=1");
  REQUIRE(c);
  CHECK_FALSE(c->https);
  CHECK(c->host == "::1");
  CHECK(c->target == "/x?y=1");
  CHECK(c->Authority() == "[::1]:9000");
}

TEST_CASE("url: what is not an absolute http(s) URL with a host is refused, with a reason") {
  std::string why;
  CHECK_FALSE(ParseUrl("ftp://a/b", &why));
  CHECK(why == "not an http(s) URL");
  CHECK_FALSE(ParseUrl("/relative", &why));
  CHECK_FALSE(ParseUrl("https://user:pw@host/x", &why));
  CHECK_FALSE(ParseUrl("https:///nohost", &why));
  CHECK_FALSE(ParseUrl("https://host:0/", &why));
  CHECK_FALSE(ParseUrl("not a url at all", &why));
}

TEST_CASE("url: downloads only over https from the API host or an allowed host") {
  const std::vector<std::string> allowed = {"file.aivideoapi.ai", "localhost"};
  std::string why;
  CHECK(IsAllowedDownload(*ParseUrl("https://FILE.aivideoapi.ai/a.png"), "api.aivideoapi.ai",
                          allowed, &why));
  CHECK(IsAllowedDownload(*ParseUrl("https://api.aivideoapi.ai/a.png"), "api.aivideoapi.ai", {},
                          &why));
  CHECK(IsAllowedDownload(*ParseUrl("https://localhost:9/a.png"), "127.0.0.1", allowed, &why));
  CHECK_FALSE(IsAllowedDownload(*ParseUrl("http://file.aivideoapi.ai/a.png"), "api.aivideoapi.ai",
                                allowed, &why));
  CHECK(why == "image URL is not https");
  CHECK_FALSE(IsAllowedDownload(*ParseUrl("https://evil.example/a.png"), "api.aivideoapi.ai",
                                allowed, &why));
  CHECK(why.find("evil.example is not allowed") != std::string::npos);
  // A look-alike suffix is a different host.
  CHECK_FALSE(IsAllowedDownload(*ParseUrl("https://file.aivideoapi.ai.evil.example/a"), "x",
                                allowed, &why));
}

}  // namespace
}  // namespace nanobatch::http
