#pragma once
// ServerText: the one door through which text a server sent (error codes and messages, task
// states, URLs quoted in errors) reaches a log line, the journal or an output file. A hostile or
// careless server may echo the request's Authorization header, send megabytes, control
// characters or invalid UTF-8; what comes out of here is free of the API key and of anything
// that looks like a bearer token, printable, valid UTF-8, and at most `max_bytes` long.
//
// The key is registered once at start (RegisterSecret). Log() also passes every line through
// Redact() as the last line of defence, so a message built from unscrubbed text still cannot
// print the key.
//
// Example:
//   util::RegisterSecret(api_key);
//   error.message = util::ServerText(raw_message);       // "... Bearer [redacted] ..."

#include <cstddef>
#include <string>
#include <string_view>

namespace nanobatch::util {

inline constexpr std::size_t kServerTextMaxBytes = 300;

// Adds `secret` to what Redact() removes (process-wide; the key is process-wide too). Secrets
// shorter than 8 bytes are ignored: redacting them would mangle ordinary words.
void RegisterSecret(std::string secret);

// Whether `text` holds a registered secret. For what a server sends that is kept as it is (task
// ids, image URLs), not quoted: a server that echoes the key there gets its answer refused, so
// the key reaches neither the journal nor the output files.
bool HoldsSecret(std::string_view text);

// `text` with every registered secret, every "Bearer <token>" and every "sk-<token>" replaced
// by "[redacted]". Everything else is left as it is.
std::string Redact(std::string_view text);

// Redact(), then bytes that are not printable valid UTF-8 (controls, invalid sequences) replaced
// by '?', then cut to `max_bytes` on a character boundary (with "..." when cut).
std::string ServerText(std::string_view raw, std::size_t max_bytes = kServerTextMaxBytes);

// The second half of ServerText, without redaction: bytes that are not printable valid UTF-8
// replaced by '?' (tabs and line ends by a space), cut to `max_bytes` on a character boundary.
// For text quoted from a user's own input (InputErrors), which must not drive a terminal either.
std::string PrintableText(std::string_view text, std::size_t max_bytes);

}  // namespace nanobatch::util
