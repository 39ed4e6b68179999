#include "runner/util/json_text.h"

#include <boost/json.hpp>
#include <charconv>
#include <cmath>

#include "runner/util/json_writer.h"

namespace nanobatch::util {

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
    case boost::json::kind::double_: {
      const double number = value.get_double();
      if (!std::isfinite(number)) {
        out += "null";
        return;
      }
      char text[32];
      const auto [end, error] = std::to_chars(text, text + sizeof text, number);
      out.append(text, error == std::errc() ? end : text);
      return;
    }
    default:
      out += boost::json::serialize(value);  // integers, booleans, null
      return;
  }
}

std::string JsonText(const boost::json::value& value) {
  std::string out;
  AppendJsonText(out, value);
  return out;
}

}  // namespace nanobatch::util
