#include "runner/http/request_bytes.h"

#include <algorithm>

#include "runner/version.h"

namespace nanobatch::http {
namespace {

// RFC 9110 token characters: what a method or a header name may be made of.
bool IsToken(std::string_view text) {
  constexpr std::string_view kSeparators = "\"(),/:;<=>?@[\\]{}";
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return c > ' ' && c < 0x7f && kSeparators.find(c) == std::string_view::npos;
  });
}

// A header value or a target: no byte that ends a line or is otherwise a control character
// (a value's spaces and tabs are allowed; a target has none).
bool IsFieldValue(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return (byte < ' ' && c != '\t') || byte == 0x7f;
  });
}

bool IsTarget(std::string_view text) {
  return !text.empty() && std::none_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= ' ' || byte == 0x7f;
  });
}

}  // namespace

std::optional<std::string> RequestBytes(const RequestParts& parts) {
  // The authority is the host with brackets, ':' and digits around it: checking the host
  // checks it all, and it is appended in place rather than built apart.
  if (!IsToken(parts.method) || !IsTarget(parts.endpoint.target) ||
      !IsFieldValue(parts.endpoint.host) || !IsFieldValue(parts.accept) ||
      !IsFieldValue(parts.content_type) || (parts.content_type.empty() && !parts.body.empty())) {
    return std::nullopt;
  }
  std::size_t size =
      160 + parts.endpoint.target.size() + parts.endpoint.host.size() + 8 + parts.body.size();
  for (const Header& header : parts.headers) {
    if (!IsToken(header.name) || !IsFieldValue(header.value)) return std::nullopt;
    size += header.name.size() + header.value.size() + 4;
  }
  std::string bytes;
  bytes.reserve(size);
  bytes.append(parts.method).append(" ").append(parts.endpoint.target).append(" HTTP/1.1\r\n");
  bytes.append("Host: ");
  parts.endpoint.AppendAuthority(bytes);
  bytes.append("\r\n");
  bytes.append("User-Agent: nanobatch/").append(kVersion).append("\r\n");
  // Without it a server may use any content coding (RFC 9110, 12.5.3): a gzipped submit answer
  // would be one whose task id cannot be read, a gzipped image one that fails its checks.
  bytes.append("Accept-Encoding: identity\r\n");
  if (!parts.accept.empty()) bytes.append("Accept: ").append(parts.accept).append("\r\n");
  for (const Header& header : parts.headers) {
    bytes.append(header.name).append(": ").append(header.value).append("\r\n");
  }
  if (!parts.content_type.empty()) {
    bytes.append("Content-Type: ").append(parts.content_type).append("\r\n");
    bytes.append("Content-Length: ").append(std::to_string(parts.body.size())).append("\r\n");
  }
  bytes.append("\r\n");
  if (!parts.content_type.empty()) bytes.append(parts.body);
  return bytes;
}

}  // namespace nanobatch::http
