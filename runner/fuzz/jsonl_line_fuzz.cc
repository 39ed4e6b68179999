// A JSONL manifest line, parsed and validated exactly as `validate` and `run` do. Whatever the
// bytes, an item that comes out obeys every rule of interface.md, its submit body is valid JSON
// carrying the same prompt, and every error is one printable line.

#include <boost/json.hpp>
#include <cstdint>
#include <string_view>

#include "runner/api/codec.h"
#include "runner/fuzz/fuzz_check.h"
#include "runner/fuzz/printable.h"
#include "runner/manifest/item.h"
#include "runner/manifest/manifest.h"

namespace nanobatch::fuzz {
namespace {

bool IsBlank(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

}  // namespace
}  // namespace nanobatch::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nanobatch;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  util::InputErrors errors;
  const manifest::ItemDefaults defaults;
  auto item = manifest::ParseJsonlLine("fuzz.jsonl", line, 7, 0, defaults, errors);
  FUZZ_CHECK(item.has_value() || !errors.empty() || fuzz::IsBlank(line));
  for (const util::InputError& error : errors.stored()) {
    FUZZ_CHECK(error.line == 7);
    FUZZ_CHECK(fuzz::IsPrintable(error.Format(), 4096));
  }
  if (!item) return 0;
  FUZZ_CHECK(errors.empty());
  FUZZ_CHECK(!manifest::CheckId(item->id));
  FUZZ_CHECK(!manifest::CheckPrompt(item->prompt));  // UTF-8 checked again, independently
  FUZZ_CHECK(!manifest::CheckResolution(item->resolution));
  FUZZ_CHECK(!manifest::CheckAspectRatio(item->aspect_ratio));
  FUZZ_CHECK(!manifest::CheckOutputFormat(item->output_format));
  FUZZ_CHECK(item->image_urls.size() <= 14);
  for (const std::string& url : item->image_urls) FUZZ_CHECK(!manifest::CheckImageUrl(url));
  if (item->id_derived) FUZZ_CHECK(item->id == manifest::DeriveId(*item));
  const std::string body = api::EncodeSubmit(*item, "nano-banana-2");
  boost::system::error_code parse_error;
  const boost::json::value parsed = boost::json::parse(body, parse_error);
  FUZZ_CHECK(!parse_error);
  FUZZ_CHECK(parsed.at("input").at("prompt").as_string() == item->prompt);
  return 0;
}
