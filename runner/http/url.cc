#include "runner/http/url.h"

#include <algorithm>
#include <boost/url/parse.hpp>
#include <cctype>

namespace nanobatch::http {
namespace {

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string Endpoint::Authority() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<Endpoint> ParseUrl(std::string_view text, std::string* why) {
  auto fail = [&](const char* reason) -> std::optional<Endpoint> {
    if (why != nullptr) *why = reason;
    return std::nullopt;
  };
  auto url = boost::urls::parse_absolute_uri(text);
  if (!url) return fail("not an absolute URL");
  Endpoint endpoint;
  if (url->scheme_id() == boost::urls::scheme::https) {
    endpoint.https = true;
    endpoint.port = 443;
  } else if (url->scheme_id() == boost::urls::scheme::http) {
    endpoint.https = false;
    endpoint.port = 80;
  } else {
    return fail("not an http(s) URL");
  }
  if (url->has_userinfo()) return fail("URLs with user info are not accepted");
  switch (url->host_type()) {
    case boost::urls::host_type::ipv6:
      endpoint.host = url->host_ipv6_address().to_string();
      break;
    case boost::urls::host_type::name:
    case boost::urls::host_type::ipv4:
      endpoint.host = url->host();
      break;
    default:
      return fail("the URL has no usable host");
  }
  if (endpoint.host.empty()) return fail("the URL has no host");
  if (url->has_port()) {
    if (url->port_number() == 0) return fail("the URL's port is invalid");
    endpoint.port = url->port_number();
  }
  endpoint.target = std::string(url->encoded_path());
  if (endpoint.target.empty()) endpoint.target = "/";
  if (url->has_query()) endpoint.target += "?" + std::string(url->encoded_query());
  return endpoint;
}

bool IsAllowedDownload(const Endpoint& endpoint, std::string_view api_host,
                       const std::vector<std::string>& allowed_hosts, std::string* why) {
  if (!endpoint.https) {
    if (why != nullptr) *why = "image URL is not https";
    return false;
  }
  if (EqualsIgnoringCase(endpoint.host, api_host)) return true;
  for (const std::string& host : allowed_hosts) {
    if (EqualsIgnoringCase(endpoint.host, host)) return true;
  }
  if (why != nullptr) {
    *why = "image host " + endpoint.host + " is not allowed (see download.allowed_hosts)";
  }
  return false;
}

}  // namespace nanobatch::http
