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
  // The shortest and longest ports.
  CHECK(ParseUrl("https://h:1/")->Authority() == "h:1");
  CHECK(ParseUrl("https://[2001:db8::1]:65535/")->Authority() == "[2001:db8::1]:65535");
}

TEST_CASE("url: what is not an absolute http(s) URL with a host is refused, with a reason") {
  std::string why;
  CHECK_FALSE(ParseUrl("ftp://a/b", &why));
  CHECK(why == "not an http(s) URL");
  CHECK_FALSE(ParseUrl("/relative", &why));
  CHECK_FALSE(ParseUrl("https://user:pw@host/x", &why));
  CHECK_FALSE(ParseUrl("https:///nohost", &why));
  CHECK_FALSE(ParseUrl("https://host:0/", &why));
  // Past 65535: Boost.URL's port_number() keeps the low 16 bits of a five-digit port (99999 was
  // read as 34463) and gives 0 for longer ones.
  for (const char* url : {"https://host:99999/", "https://host:65536/", "https://host:70000/",
                          "https://host:123456789012/", "https://host:/"}) {
    CAPTURE(url);
    CHECK_FALSE(ParseUrl(url, &why));
    CHECK(why == "the URL's port is not a number from 1 to 65535");
  }
  CHECK(ParseUrl("https://host:00443/")->port == 443);
  CHECK_FALSE(ParseUrl("not a url at all", &why));
}

TEST_CASE("url: downloads only over https from the API's host and port or an allowed one") {
  const std::vector<std::string> allowed = {"file.aivideoapi.ai", "localhost:8443", "[::1]:9"};
  const Endpoint api = *ParseUrl("https://api.aivideoapi.ai");
  std::string why;
  auto check = [&](std::string_view url) {
    return CheckDownload(*ParseUrl(url), api, allowed, &why);
  };
  CHECK(check("https://FILE.aivideoapi.ai/a.png") == DownloadRefusal::kNone);
  CHECK(check("https://api.aivideoapi.ai/a.png") == DownloadRefusal::kNone);
  CHECK(check("https://localhost:8443/a.png") == DownloadRefusal::kNone);
  CHECK(check("https://[::1]:9/a.png") == DownloadRefusal::kNone);
  CHECK(check("http://file.aivideoapi.ai/a.png") == DownloadRefusal::kNotHttps);
  CHECK(check("https://evil.example/a.png") == DownloadRefusal::kHostNotAllowed);
  CHECK(why.find("evil.example:443 is not allowed") != std::string::npos);
  CHECK(why.find("--allow-download-host evil.example") != std::string::npos);
  // The API's host on another port, an allowed host on another port: refused.
  CHECK(check("https://api.aivideoapi.ai:8443/a.png") == DownloadRefusal::kHostNotAllowed);
  CHECK(why.find("--allow-download-host api.aivideoapi.ai:8443") != std::string::npos);
  CHECK(check("https://localhost:9999/a.png") == DownloadRefusal::kHostNotAllowed);
  CHECK(check("https://file.aivideoapi.ai:444/a.png") == DownloadRefusal::kHostNotAllowed);
  // A look-alike suffix is a different host.
  CHECK(check("https://file.aivideoapi.ai.evil.example/a") == DownloadRefusal::kHostNotAllowed);
}

TEST_CASE("url: allowed hosts are host or host:port, nothing else") {
  CHECK(ParseHostPort("localhost")->port == 443);
  CHECK(ParseHostPort("localhost:8443")->port == 8443);
  CHECK(ParseHostPort("[::1]:9")->host == "::1");
  CHECK(ParseHostPort("localhost:08443")->port == 8443);
  for (const char* bad :
       {"", "https://x", "x/y", "x:", "x:0", "x:65536", "x:99999", "x:1a", "[::1", "a b"}) {
    CHECK_MESSAGE(!ParseHostPort(bad).has_value(), bad);
  }
}

}  // namespace
}  // namespace nanobatch::http
