#include "runner/util/json_text.h"

#include <boost/json.hpp>
#include <charconv>
#include <cmath>

#include "runner/util/json_writer.h"

namespace nanobatch::util {
namespace {

// Shortest text that reads back as `number` (integers as plain decimals), appended in place: a
// gallery of 100,000 items has half a million of them.
template <typename Number>
void AppendNumber(std::string& out, Number number) {
  char text[32];
  const auto [end, error] = std::to_chars(text, text + sizeof text, number);
  out.append(text, error == std::errc() ? end : text);
}

}  // namespace

void AppendJsonText(std::string& out, const boost::json::value& value) {
  switch (value.kind()) {
    case boost::json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& member : value.get_object()) {
        if (!first) out += ',';
        first = false;
        AppendJsonString(out, member.key());
        out += ':';
        AppendJsonText(out, member.value());
      }
      out += '}';
      return;
    }
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& element : value.get_array()) {
        if (!first) out += ',';
        first = false;
        AppendJsonText(out, element);
      }
      out += ']';
      return;
    }
    case boost::json::kind::string:
      AppendJsonString(out, value.get_string());
      return;
    case boost::json::kind::double_:
      if (!std::isfinite(value.get_double())) {
        out += "null";
        return;
      }
      AppendNumber(out, value.get_double());
      return;
    case boost::json::kind::int64:
      AppendNumber(out, value.get_int64());
      return;
    case boost::json::kind::uint64:
      AppendNumber(out, value.get_uint64());
      return;
    case boost::json::kind::bool_:
      out += value.get_bool() ? "true" : "false";
      return;
    case boost::json::kind::null:
      out += "null";
      return;
  }
}

std::string JsonText(const boost::json::value& value) {
  std::string out;
  AppendJsonText(out, value);
  return out;
}

}  // namespace nanobatch::util
