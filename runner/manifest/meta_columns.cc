#include "runner/manifest/meta_columns.h"

#include <array>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <regex>

#include "runner/util/json_text.h"
#include "runner/util/utf8.h"

namespace nanobatch::manifest {
namespace {

constexpr std::size_t kMaxNameLength = 64;

// metadata.jsonl's and failed.jsonl's own columns, and names kept for image facts.
constexpr std::array<std::string_view, 23> kReserved = {
    "file_name",     "id",           "prompt",       "task_id", "resolution",  "aspect_ratio",
    "output_format", "sha256",       "bytes",        "credits", "image_index", "image_urls",
    "width",         "height",       "image_format", "flag",    "error_code",  "message",
    "attempts",      "failed_tasks", "meta",         "repeat",  "mismatch"};

bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameCharacter(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

std::optional<std::string> CheckName(std::string_view name) {
  if (name.empty()) return std::string("a column name is empty");
  if (name.size() > kMaxNameLength) {
    return "column name is " + std::to_string(name.size()) + " characters; at most 64";
  }
  if (!IsNameStart(name.front())) return "column name must start with a letter or _";
  for (char c : name) {
    if (!IsNameCharacter(c)) return std::string("column name has a character outside [A-Za-z0-9_]");
  }
  if (ReservedColumn(name)) {
    return "\"" + std::string(name) + "\" is a column nanobatch writes itself; choose another name";
  }
  return std::nullopt;
}

}  // namespace

bool ReservedColumn(std::string_view name) {
  for (std::string_view reserved : kReserved) {
    if (reserved == name) return true;
  }
  return false;
}

bool MetaColumns::Has(std::string_view name) const {
  const std::string quoted = "\"" + std::string(name) + "\":";
  // Names are plain identifiers, so a member's name is found exactly at a member's start.
  for (std::size_t at = json_.find(quoted); at != std::string::npos;
       at = json_.find(quoted, at + 1)) {
    if (at == 0 || json_[at - 1] == ',') return true;
  }
  return false;
}

std::optional<std::string> MetaColumns::Add(std::string_view name, std::string_view json_value) {
  if (auto problem = CheckName(name)) return problem;
  if (Has(name)) return "column \"" + std::string(name) + "\" is given twice";
  if (columns_ >= kMaxMetaColumns) {
    return "more than " + std::to_string(kMaxMetaColumns) + " columns";
  }
  if (json_.size() + name.size() + json_value.size() + 6 > kMaxMetaBytes) {
    return "the columns of one item exceed " + std::to_string(kMaxMetaBytes) + " bytes of JSON";
  }
  if (columns_ > 0) json_ += ',';
  json_ += '"';
  json_.append(name);
  json_ += "\":";
  json_.append(json_value);
  ++columns_;
  return std::nullopt;
}

std::optional<std::string> MetaColumns::AddString(std::string_view name, std::string_view value) {
  if (!util::CountCodePoints(value)) return std::string("is not valid UTF-8");
  return Add(name, boost::json::serialize(boost::json::string(value)));
}

std::optional<std::string> MetaColumns::AddInteger(std::string_view name, std::int64_t value) {
  return Add(name, std::to_string(value));
}

std::optional<std::string> MetaColumns::AddUnsigned(std::string_view name, std::uint64_t value) {
  return Add(name, std::to_string(value));
}

std::optional<std::string> MetaColumns::AddDouble(std::string_view name, double value) {
  if (!std::isfinite(value)) return std::string("a number must be finite");
  return Add(name, util::JsonText(boost::json::value(value)));
}

std::optional<std::string> MetaColumns::AddBool(std::string_view name, bool value) {
  return Add(name, value ? "true" : "false");
}

std::optional<std::string> MetaColumns::AddNull(std::string_view name) { return Add(name, "null"); }

std::optional<std::string> MetaColumns::AddYamlScalar(std::string_view name,
                                                      const std::string& text, bool quoted) {
  if (!quoted) {
    // YAML 1.2's core schema, which is what a reader of the file expects the value to be.
    static const std::regex kTrue("true|True|TRUE"), kFalse("false|False|FALSE"),
        kNull("null|Null|NULL|~|"), kInteger("[-+]?[0-9]+"),
        kDecimal("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
    if (std::regex_match(text, kTrue)) return AddBool(name, true);
    if (std::regex_match(text, kFalse)) return AddBool(name, false);
    if (std::regex_match(text, kNull)) return AddNull(name);
    if (std::regex_match(text, kInteger)) {
      errno = 0;
      char* end = nullptr;
      const long long value = std::strtoll(text.c_str(), &end, 10);
      if (errno == 0 && end == text.c_str() + text.size()) return AddInteger(name, value);
      return AddString(name, text);  // out of range: kept exactly as written
    }
    if (std::regex_match(text, kDecimal)) {
      char* end = nullptr;
      const double value = std::strtod(text.c_str(), &end);
      if (end == text.c_str() + text.size() && std::isfinite(value)) return AddDouble(name, value);
      return AddString(name, text);
    }
  }
  return AddString(name, text);
}

std::string MetaColumns::Take() {
  std::string out;
  if (columns_ > 0) out = "{" + json_ + "}";
  json_.clear();
  columns_ = 0;
  return out;
}

}  // namespace nanobatch::manifest
