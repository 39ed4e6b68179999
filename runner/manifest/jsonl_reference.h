#pragma once
// What a JSONL manifest means, by definition: each line parsed alone (ParseJsonlLine), in order,
// the first line's byte-order mark dropped. ReadJsonlManifest parses whole chunks of lines in one
// pass for speed; manifest_robustness_test and the jsonl_manifest fuzz target hold it to this.
//
// Example:
//   JsonlReading expected = ReadJsonlLineByLine(path, content, defaults);
//   JsonlReading actual = ReadJsonlWhole(path, defaults);
//   std::string difference = DescribeDifference(expected, actual);  // empty when they agree

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "runner/manifest/item.h"
#include "runner/util/input_error.h"

namespace nanobatch::manifest {

struct JsonlReading {
  std::vector<Item> items;
  util::InputErrors errors;
  std::size_t lines = 0;
};

// `content` is the file at `path` (named in the errors), which is not opened.
JsonlReading ReadJsonlLineByLine(const std::string& path, std::string_view content,
                                 const ItemDefaults& defaults);

// ReadJsonlManifest's reading of the file at `path`.
JsonlReading ReadJsonlWhole(const std::string& path, const ItemDefaults& defaults);

// The first difference between two readings, for a test's message; empty when there is none.
std::string DescribeDifference(const JsonlReading& expected, const JsonlReading& actual);

}  // namespace nanobatch::manifest
