#include "runner/util/json_writer.h"

#include <charconv>
#include <cstdint>
#include <cstring>

namespace nanobatch::util {
namespace {

// What a byte becomes inside a JSON string: 0 for itself, 'u' for \u00xx, else the letter after
// the backslash (boost::json's table, so that both write the same bytes).
constexpr char EscapeOf(unsigned char c) {
  switch (c) {
    case '\b':
      return 'b';
    case '\t':
      return 't';
    case '\n':
      return 'n';
    case '\f':
      return 'f';
    case '\r':
      return 'r';
    case '"':
      return '"';
    case '\\':
      return '\\';
    default:
      return c < 0x20 ? 'u' : 0;
  }
}

template <typename Integer>
void AppendDecimal(std::string& out, Integer value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  const char* const data = text.data();
  std::size_t plain = 0;  // start of the run of bytes copied as they are
  std::size_t i = 0;
  while (i < text.size()) {
    // Eight bytes a step while none needs escaping (most text): a byte below 0x20, a '"' or a
    // '\' sets its high bit in `special` (the classic "has a zero / a smaller byte" tricks).
    if (i + 8 <= text.size()) {
      std::uint64_t word;
      std::memcpy(&word, data + i, sizeof word);
      constexpr std::uint64_t kOnes = 0x0101010101010101ull;
      constexpr std::uint64_t kHigh = 0x8080808080808080ull;
      const std::uint64_t quote = word ^ (kOnes * '"');
      const std::uint64_t backslash = word ^ (kOnes * '\\');
      const std::uint64_t special =
          ((word - kOnes * 0x20) | (quote - kOnes) | (backslash - kOnes)) & ~word & kHigh;
      if (special == 0) {
        i += 8;
        continue;
      }
    }
    const auto c = static_cast<unsigned char>(data[i]);
    const char escape = EscapeOf(c);
    ++i;
    if (escape == 0) continue;
    out.append(data + plain, i - 1 - plain);
    plain = i;
    out.push_back('\\');
    out.push_back(escape);
    if (escape == 'u') {
      out.append("00");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0F]);
    }
  }
  out.append(data + plain, text.size() - plain);
  out.push_back('"');
}

void JsonObjectWriter::RawNamed(std::string_view name, std::string_view json) {
  if (!keys_.empty()) out_.push_back(',');
  keys_.push_back(name);
  AppendJsonString(out_, name);
  out_.push_back(':');
  out_.append(json);
}

void JsonObjectWriter::Number(JsonName key, std::uint64_t value) {
  Key(key);
  AppendDecimal(out_, value);
}

}  // namespace nanobatch::util
