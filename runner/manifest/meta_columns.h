#pragma once
// MetaColumns: a manifest item's own columns (`meta:` in YAML, `"meta": {...}` in JSONL), such as
// `label`, `split` or `seed_prompt_id`. They are never sent to the API and do not change what is
// paid for (nor a derived id); they travel with the item into the journal and come out as extra
// columns of metadata.jsonl and failed.jsonl, so a dataset's labels sit next to its images.
//
// Built one column at a time by either manifest reader; each Add* returns a message for a column
// that is not allowed, so the reader can name the place. The result is the canonical JSON object
// text of the columns, in the order written (empty when there are none).
//
// Rules: a name is [A-Za-z_][A-Za-z0-9_]{0,63}, given once, and not one of the columns nanobatch
// writes itself (ReservedColumn); a value is a string, a number, a boolean or null (the columns
// of a table, not documents); at most kMaxMetaColumns columns and kMaxMetaBytes of JSON an item.
//
// Example:
//   MetaColumns meta;
//   if (auto problem = meta.AddString("label", "cat")) errors.Add(...);
//   item.meta_json = meta.Take();   // {"label":"cat"}

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nanobatch::manifest {

inline constexpr std::size_t kMaxMetaColumns = 32;
inline constexpr std::size_t kMaxMetaBytes = 16 << 10;

// The columns metadata.jsonl and failed.jsonl have of their own (and a few kept for later).
bool ReservedColumn(std::string_view name);

class MetaColumns {
 public:
  std::optional<std::string> AddString(std::string_view name, std::string_view value);
  std::optional<std::string> AddInteger(std::string_view name, std::int64_t value);
  std::optional<std::string> AddUnsigned(std::string_view name, std::uint64_t value);
  std::optional<std::string> AddDouble(std::string_view name, double value);
  std::optional<std::string> AddBool(std::string_view name, bool value);
  std::optional<std::string> AddNull(std::string_view name);
  // A YAML scalar as written: plain (unquoted) scalars follow YAML's core schema (true/false,
  // null/~, integers, decimals); quoted ones are strings.
  std::optional<std::string> AddYamlScalar(std::string_view name, const std::string& text,
                                           bool quoted);

  std::size_t size() const { return columns_; }
  bool Has(std::string_view name) const;
  // The JSON object text ("" without columns); the builder is empty afterwards.
  std::string Take();

 private:
  std::optional<std::string> Add(std::string_view name, std::string_view json_value);

  std::string json_;  // the members so far, without braces
  std::size_t columns_ = 0;
};

}  // namespace nanobatch::manifest
