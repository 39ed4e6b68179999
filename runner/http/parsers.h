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

#include <boost/beast/http.hpp>
#include <cstdint>
#include <optional>
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

}  // namespace nanobatch::http
