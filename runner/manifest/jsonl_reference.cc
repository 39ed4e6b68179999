#include "runner/manifest/jsonl_reference.h"

#include <cstdint>
#include <utility>

#include "runner/manifest/manifest.h"

namespace nanobatch::manifest {

JsonlReading ReadJsonlLineByLine(const std::string& path, std::string_view content,
                                 const ItemDefaults& defaults) {
  JsonlReading reading;
  std::size_t begin = 0;
  while (begin < content.size()) {
    std::size_t end = content.find('\n', begin);
    if (end == std::string_view::npos) end = content.size();
    ++reading.lines;
    std::string_view line = content.substr(begin, end - begin);
    std::uint64_t offset = begin;
    if (reading.lines == 1 && line.starts_with("\xEF\xBB\xBF")) {
      line.remove_prefix(3);
      offset += 3;
    }
    auto item = ParseJsonlLine(path, line, static_cast<int>(reading.lines), offset, defaults,
                               reading.errors);
    if (item) reading.items.push_back(std::move(*item));
    begin = end + 1;
  }
  return reading;
}

JsonlReading ReadJsonlWhole(const std::string& path, const ItemDefaults& defaults) {
  JsonlReading reading;
  const ManifestStats stats = ReadJsonlManifest(
      path, defaults, [&](Item&& item) { reading.items.push_back(std::move(item)); },
      reading.errors);
  reading.lines = stats.lines;
  return reading;
}

namespace {

std::string DescribeItem(const Item& item) {
  std::string out = "line " + std::to_string(item.line) + " id \"" + item.id + "\" prompt \"" +
                    item.prompt + "\" " + item.resolution + " " + item.aspect_ratio + " " +
                    item.output_format + " meta " + item.meta_json + " urls";
  for (const std::string& url : item.image_urls) out += " " + url;
  out += " at " + std::to_string(item.source_offset) + "+" + std::to_string(item.source_length) +
         " fingerprint " + std::to_string(item.source_fingerprint) +
         (item.id_derived ? " derived" : "");
  return out;
}

}  // namespace

std::string DescribeDifference(const JsonlReading& expected, const JsonlReading& actual) {
  if (expected.lines != actual.lines) {
    return std::to_string(expected.lines) + " lines expected, " + std::to_string(actual.lines) +
           " read";
  }
  const auto& want_errors = expected.errors.stored();
  const auto& got_errors = actual.errors.stored();
  for (std::size_t i = 0; i < want_errors.size() || i < got_errors.size(); ++i) {
    const std::string want = i < want_errors.size() ? want_errors[i].Format() : "(none)";
    const std::string got = i < got_errors.size() ? got_errors[i].Format() : "(none)";
    if (want != got) {
      return "error " + std::to_string(i) + ": expected " + want + "; read " + got;
    }
  }
  for (std::size_t i = 0; i < expected.items.size() || i < actual.items.size(); ++i) {
    const std::string want = i < expected.items.size() ? DescribeItem(expected.items[i]) : "(none)";
    const std::string got = i < actual.items.size() ? DescribeItem(actual.items[i]) : "(none)";
    if (want != got) return "item " + std::to_string(i) + ": expected " + want + "; read " + got;
  }
  return {};
}

}  // namespace nanobatch::manifest
