#include "runner/http/url.h"

#include <algorithm>
#include <boost/url/parse.hpp>
#include <cctype>
#include <charconv>

namespace nanobatch::http {
namespace {

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::optional<std::uint16_t> ParsePort(std::string_view text) {
  if (text.empty()) return std::nullopt;
  unsigned port = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
    if (port > 65535) return std::nullopt;
  }
  if (port == 0) return std::nullopt;
  return static_cast<std::uint16_t>(port);
}

std::string Endpoint::Authority() const {
  std::string authority;
  AppendAuthority(authority);
  return authority;
}

void Endpoint::AppendAuthority(std::string& out) const {
  const bool ipv6 = host.find(':') != std::string::npos;
  char port_digits[8];
  const char* port_end = std::to_chars(port_digits, port_digits + sizeof port_digits, port).ptr;
  const auto port_size = static_cast<std::size_t>(port_end - port_digits);
  out.reserve(out.size() + host.size() + 3 + port_size);
  if (ipv6) out.push_back('[');
  out.append(host);
  if (ipv6) out.push_back(']');
  out.push_back(':');
  out.append(port_digits, port_size);
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
    // Read here, not with port_number(): Boost.URL 1.81 keeps the low 16 bits of a port of five
    // digits, so https://host:99999 was port 34463.
    const auto port = ParsePort(url->port());
    if (!port) return fail("the URL's port is not a number from 1 to 65535");
    endpoint.port = *port;
  }
  endpoint.target = std::string(url->encoded_path());
  if (endpoint.target.empty()) endpoint.target = "/";
  if (url->has_query()) endpoint.target += "?" + std::string(url->encoded_query());
  return endpoint;
}

std::optional<HostPort> ParseHostPort(std::string_view text) {
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(text.substr(1, close - 1));
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
  } else {
    const auto colon = text.find(':');
    out.host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = text.substr(colon + 1);
      if (port_text.empty()) return std::nullopt;
    }
  }
  if (out.host.empty() || out.host.size() > 253) return std::nullopt;
  const bool v6 = !text.empty() && text.front() == '[';
  for (char c : out.host) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || (v6 && c == ':');
    if (!ok) return std::nullopt;
  }
  if (!port_text.empty()) {
    const auto port = ParsePort(port_text);
    if (!port) return std::nullopt;
    out.port = *port;
  }
  return out;
}

DownloadRefusal CheckDownload(const Endpoint& endpoint, const Endpoint& api,
                              const std::vector<std::string>& allowed_hosts, std::string* why) {
  if (!endpoint.https) {
    if (why != nullptr) *why = "the image URL is not https";
    return DownloadRefusal::kNotHttps;
  }
  if (EqualsIgnoringCase(endpoint.host, api.host) && endpoint.port == api.port) {
    return DownloadRefusal::kNone;
  }
  for (const std::string& entry : allowed_hosts) {
    const std::optional<HostPort> allowed = ParseHostPort(entry);
    if (allowed && EqualsIgnoringCase(endpoint.host, allowed->host) &&
        endpoint.port == allowed->port) {
      return DownloadRefusal::kNone;
    }
  }
  if (why != nullptr) {
    *why = "the image host " + endpoint.Authority() +
           " is not allowed: add it to download.allowed_hosts or pass --allow-download-host " +
           (endpoint.port == 443 ? endpoint.host : endpoint.Authority());
  }
  return DownloadRefusal::kHostNotAllowed;
}

}  // namespace nanobatch::http
