#include "runner/util/server_text.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace nanobatch::util {
namespace {

constexpr std::string_view kRedacted = "[redacted]";

std::vector<std::string>& Secrets() {
  static auto* secrets = new std::vector<std::string>();
  return *secrets;
}

bool IsTokenByte(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' ||
         c == '=';
}

bool StartsWithIgnoringCase(std::string_view text, std::size_t at, std::string_view prefix) {
  if (text.size() - at < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[at + i])) != prefix[i]) return false;
  }
  return true;
}

// Replaces "<prefix><token>" (prefix matched case-insensitively, at a word start) by
// "<prefix>[redacted]"; `min_token` keeps ordinary words such as "sk-ip" out of it.
std::string RedactPattern(std::string_view text, std::string_view prefix, std::size_t min_token) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const bool word_start = i == 0 || !IsTokenByte(static_cast<unsigned char>(text[i - 1]));
    if (word_start && StartsWithIgnoringCase(text, i, prefix)) {
      std::size_t end = i + prefix.size();
      // "Bearer   token": any run of spaces between the scheme and the token.
      while (prefix.back() == ' ' && end < text.size() && text[end] == ' ') ++end;
      std::size_t token_end = end;
      while (token_end < text.size() && IsTokenByte(static_cast<unsigned char>(text[token_end])))
        ++token_end;
      if (token_end - end >= min_token) {
        out.append(text.substr(i, prefix.size()));
        out.append(kRedacted);
        i = token_end;
        continue;
      }
    }
    out.push_back(text[i]);
    ++i;
  }
  return out;
}

// Length of the valid UTF-8 sequence at `at`, or 0.
std::size_t Utf8SequenceAt(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[at + k]); };
  const unsigned char lead = byte(0);
  std::size_t length;
  std::uint32_t code;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() - at < length) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(k) & 0x3F);
  }
  if ((length == 3 && code < 0x800) || (length == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
      (code >= 0xD800 && code <= 0xDFFF)) {
    return 0;
  }
  return length;
}

}  // namespace

void RegisterSecret(std::string secret) {
  if (secret.size() < 8) return;
  auto& secrets = Secrets();
  if (std::find(secrets.begin(), secrets.end(), secret) == secrets.end()) {
    secrets.push_back(std::move(secret));
  }
}

bool HoldsSecret(std::string_view text) {
  for (const std::string& secret : Secrets()) {
    if (text.find(secret) != std::string_view::npos) return true;
  }
  return false;
}

std::string Redact(std::string_view text) {
  std::string out(text);
  for (const std::string& secret : Secrets()) {
    std::size_t at = 0;
    while ((at = out.find(secret, at)) != std::string::npos) {
      out.replace(at, secret.size(), kRedacted);
      at += kRedacted.size();
    }
  }
  out = RedactPattern(out, "bearer ", 1);
  return RedactPattern(out, "sk-", 8);
}

std::string ServerText(std::string_view raw, std::size_t max_bytes) {
  // Redact before cutting, so that a cut can never leave the head of a secret behind; a body is
  // already capped by the HTTP layer, so this pass is bounded.
  return PrintableText(Redact(raw), max_bytes);
}

std::string PrintableText(std::string_view redacted, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(redacted.size(), max_bytes + 3));
  std::size_t i = 0;
  while (i < redacted.size()) {
    const std::size_t length = Utf8SequenceAt(redacted, i);
    const unsigned char c = static_cast<unsigned char>(redacted[i]);
    const bool printable = length > 1 || (length == 1 && c >= 0x20 && c != 0x7F);
    const std::size_t take = printable ? length : 1;
    if (out.size() + (printable ? take : 1) > max_bytes) {
      out += "...";
      break;
    }
    if (printable) {
      out.append(redacted, i, take);
    } else {
      out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : '?');
    }
    i += take;
  }
  return out;
}

}  // namespace nanobatch::util
