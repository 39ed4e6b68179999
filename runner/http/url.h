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

  // "host:port" ("[v6]:port"), the connection pool's key and the Host header.
  std::string Authority() const;
  // The same, appended to `out` (no allocation when it has the room).
  void AppendAuthority(std::string& out) const;
};

// A URL's port as written: digits only (leading zeros allowed), 1 to 65535; nullopt otherwise.
// Every URL nanobatch takes (base URL, callback URL, a manifest's image URLs, the API's image
// URLs) has its port checked by this: Boost.URL's port_number() keeps the low 16 bits of a
// five-digit port (https://host:99999 was port 34463).
std::optional<std::uint16_t> ParsePort(std::string_view text);

// Parses an absolute http or https URL with a host; nullopt (and `why`) otherwise.
std::optional<Endpoint> ParseUrl(std::string_view url, std::string* why = nullptr);

// An allowed download host as configured: "host" (port 443), "host:port", "[v6]" or
// "[v6]:port"; nullopt when it is none of these (a scheme, a path, a bad port).
struct HostPort {
  std::string host;
  std::uint16_t port = 443;
};
std::optional<HostPort> ParseHostPort(std::string_view text);

// Why a download is refused: a URL that is not https can never be fetched; a host (or port) not
// allowed can be, once the user allows it (download.allowed_hosts, --allow-download-host).
enum class DownloadRefusal { kNone, kNotHttps, kHostNotAllowed };

// Whether nanobatch may download from `endpoint`: https only, and host and port are the API's
// own (`api`) or one of `allowed_hosts`, each "host" (port 443) or "host:port" (host compared
// case-insensitively). `why` says which rule failed, naming the host and the setting.
DownloadRefusal CheckDownload(const Endpoint& endpoint, const Endpoint& api,
                              const std::vector<std::string>& allowed_hosts, std::string* why);

}  // namespace nanobatch::http
