#pragma once
// Endpoint: an absolute http(s) URL taken apart with Boost.URL (no string surgery), in the form
// the HTTP client connects with.
//
// Example:
//   auto endpoint = ParseUrl("https://file.aivideoapi.ai/images/a.png");
//   endpoint->host == "file.aivideoapi.ai"; endpoint->port == 443; endpoint->target ==
//   "/images/a.png"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nanobatch::http {

struct Endpoint {
  bool https = true;
  std::string host;  // without brackets for IPv6 literals
  std::uint16_t port = 443;
  std::string target;  // path and query, at least "/"

  // "host:port", the connection pool's key and the Host header.
  std::string Authority() const;
};

// Parses an absolute http or https URL with a host; nullopt (and `why`) otherwise.
std::optional<Endpoint> ParseUrl(std::string_view url, std::string* why = nullptr);

// Whether nanobatch may download from `endpoint`: https only, and the host is the API's own or
// one of `allowed_hosts` (case-insensitive). `why` says which rule failed.
bool IsAllowedDownload(const Endpoint& endpoint, std::string_view api_host,
                       const std::vector<std::string>& allowed_hosts, std::string* why);

}  // namespace nanobatch::http
