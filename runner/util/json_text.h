#pragma once
// JsonText: a boost::json value as JSON text, with numbers as people and tools read them.
//
// Boost.JSON (1.74, Debian 12's) writes every double in exponent form: a duration of 18.5 s is
// "1.85E1", a rate of 600 a minute "6E2", a manifest's `cfg: 7.5` in metadata.jsonl "7.5E0". Valid
// JSON, but not what a user reading report.json or status --json expects, nor what a careless
// script's number parsing accepts. Here a double is its shortest text that reads back as the same
// double (std::to_chars): "18.5", "600", "7.5"; only very large or small ones use an exponent
// ("1e+21"). NaN and infinities, which JSON cannot hold, are null. Strings are escaped as
// boost::json::serialize escapes them; everything else is written as it does.
//
// Example:
//   JsonText(boost::json::object{{"duration_s", 18.5}})   // {"duration_s":18.5}

#include <boost/json/value.hpp>
#include <string>

namespace nanobatch::util {

std::string JsonText(const boost::json::value& value);
void AppendJsonText(std::string& out, const boost::json::value& value);

}  // namespace nanobatch::util
