// JSONL manifests, streamed: the file is read in fixed chunks, so memory stays bounded by the
// longest line whatever the file's size, and one bad line is reported without hiding the errors
// of the others. Every line means what it means parsed on its own (ParseJsonlLine); the complete
// lines of a chunk are parsed in one simdjson pass where they allow it (see ChunkParser).

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>
#include <xxh_x86dispatch.h>  // XXH3_64bits: the AVX2/AVX-512 kernel where the CPU has it

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runner/manifest/manifest.h"
#include "runner/manifest/meta_columns.h"
#include "runner/util/did_you_mean.h"
#include "runner/util/huge_pages.h"
#include "runner/util/input_file.h"

namespace nanobatch::manifest {
namespace {

// A prompt is at most 20,000 code points: at most 80 KB of UTF-8, or 120 KB written as \u
// escapes; with 14 image URLs a legitimate line stays far below this.
constexpr std::size_t kMaxLineBytes = 4 << 20;

}  // namespace

// XXH3: some 30 GB/s against FNV-1a's one byte per multiply (which alone held validation under
// 1 GB/s). The fingerprint lives only in memory (ItemStore), so it may change between versions.
// The dispatching entry point picks the CPU's widest kernel at run time (the plain one is built
// for SSE2, Debian's baseline, and took 6% of validating long prompts); same value either way.
std::uint64_t LineFingerprint(std::string_view line) {
  return XXH3_64bits(line.data(), line.size());
}

namespace {

// Spaces and tabs only, and perhaps the CR of a CRLF.
bool IsBlankLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

std::string_view TypeName(simdjson::dom::element_type type) {
  switch (type) {
    case simdjson::dom::element_type::ARRAY:
      return "an array";
    case simdjson::dom::element_type::OBJECT:
      return "an object";
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
      return "a number";
    case simdjson::dom::element_type::STRING:
      return "a string";
    case simdjson::dom::element_type::BOOL:
      return "a boolean";
    case simdjson::dom::element_type::NULL_VALUE:
      return "null";
  }
  return "an unknown type";
}

std::string_view TrimBlanks(std::string_view text) {
  const std::size_t first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const std::size_t last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

bool LooksLikeYamlKey(std::string_view text) {
  if (text.starts_with("- ")) text = TrimBlanks(text.substr(2));
  std::size_t i = 0;
  while (i < text.size() && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_')) {
    ++i;
  }
  return i > 0 && i < text.size() && text[i] == ':' && (i + 1 == text.size() || text[i + 1] == ' ');
}

// What a line that is not JSONL most likely is, said the way to fix it: the usual mistakes are a
// JSON array file, pretty-printed objects, commas between lines, and a YAML file named .jsonl.
// Decided by the line alone, so every line reads the same however the file around it is read.
std::string_view ShapeHint(std::string_view line) {
  const std::string_view text = TrimBlanks(line);
  if (text == "[" || text == "]" || text.starts_with("[{") || text.starts_with("[ ")) {
    return " (the file looks like a JSON array: a JSONL manifest holds one object a line, with no "
           "[ ] around them and no commas between; jq -c '.[]' FILE converts an array)";
  }
  if (text == "{" || text == "}" || text == "}," || text.starts_with("\"") ||
      (text.starts_with("{\"") && !text.ends_with("}") && !text.ends_with("},"))) {
    return " (an object spread over several lines? each item must be one object on one line; "
           "jq -c . FILE puts each object of a pretty-printed file on a line of its own)";
  }
  if (text.starts_with("{") && text.ends_with("},")) {
    return " (a comma after the object: JSONL lines are not separated by commas)";
  }
  if (text.starts_with("{") &&
      (text.find("}{") != std::string_view::npos || text.find("} {") != std::string_view::npos)) {
    return " (two objects on one line? each item must be on a line of its own)";
  }
  if (LooksLikeYamlKey(text) || text == "---") {
    return " (this looks like YAML: a YAML manifest must be named .yaml or .yml)";
  }
  return {};
}

// Where a line's strings break JSON's rules, and the rule, for the escapes and characters
// simdjson only reports as "Problem while parsing a string" or "unescaped characters": a \u that
// is no whole character (a lone surrogate, as a UTF-16 string cut in two leaves; fewer than 4 hex
// digits), an escape JSON has not, a raw control character. Empty when the strings are fine.
// The column counts characters (UTF-8 sequences), from 1.
std::string StringHint(std::string_view line) {
  // The 4 hex digits at `at` (-1 unless all 4 are there): the code unit of a \u escape.
  auto hex = [&](std::size_t at) -> int {
    if (at + 4 > line.size()) return -1;
    unsigned value = 0;
    const char* end = line.data() + at + 4;
    const auto [stop, error] = std::from_chars(line.data() + at, end, value, 16);
    return error == std::errc() && stop == end ? static_cast<int>(value) : -1;
  };
  auto at_column = [&](std::size_t at) {
    std::size_t column = 1;
    for (std::size_t i = 0; i < at; ++i) column += (line[i] & 0xC0) != 0x80 ? 1 : 0;
    return " (column " + std::to_string(column) + ": ";
  };
  bool in_string = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (!in_string) {
      in_string = c == '"';
      continue;
    }
    if (c == '"') {
      in_string = false;
    } else if (c < 0x20) {
      char code[8];
      std::snprintf(code, sizeof code, "U+%04X", c);
      return at_column(i) + "a raw control character, " + code +
             ", inside a string: JSON needs it escaped, as \\t, \\n or \\u00XX)";
    } else if (c == '\\') {
      if (i + 1 >= line.size()) break;
      const char escape = line[++i];
      if (escape != 'u') {
        if (std::string_view("\"\\/bfnrt").find(escape) == std::string_view::npos) {
          return at_column(i - 1) + "\\" + std::string(1, escape) +
                 " is no JSON escape; a backslash itself is written \\\\)";
        }
        continue;
      }
      const int unit = hex(i + 1);
      if (unit < 0) return at_column(i - 1) + "\\u must be followed by 4 hex digits)";
      if (unit >= 0xDC00 && unit <= 0xDFFF) {
        return at_column(i - 1) + std::string(line.substr(i - 1, 6)) +
               " is the second half of a UTF-16 surrogate pair, and no first half comes before "
               "it: the text was cut inside a character)";
      }
      if (unit >= 0xD800 && unit <= 0xDBFF) {
        const bool low_follows = i + 6 < line.size() && line[i + 5] == '\\' && line[i + 6] == 'u' &&
                                 hex(i + 7) >= 0xDC00 && hex(i + 7) <= 0xDFFF;
        if (!low_follows) {
          return at_column(i - 1) + std::string(line.substr(i - 1, 6)) +
                 " is the first half of a UTF-16 surrogate pair, and its second half "
                 "(\\uDC00 to \\uDFFF) does not follow: the text was cut inside a character)";
        }
        i += 6;  // the second half's \u; its digits are skipped with the first's
      }
      i += 4;
    }
  }
  return {};
}

// Parses one line with simdjson's DOM parser. (Its On-Demand API would skip building a tree, but
// in simdjson 3.0 On-Demand is compiled only for the build's baseline CPU, which on Debian means
// the portable fallback kernel; the DOM parser picks AVX2/AVX-512 kernels at run time.)
class LineParser {
 public:
  LineParser(const std::string& path, const ItemDefaults& defaults, util::InputErrors& errors,
             simdjson::dom::parser& parser, const IdReadHook& id_read)
      : path_(path), defaults_(defaults), errors_(errors), parser_(parser), id_read_(id_read) {}

  // The line's item, if it is one and valid, into `out` (left empty otherwise); its errors go to
  // `errors`. `line` must be followed by at least SIMDJSON_PADDING readable bytes; it starts at
  // byte `offset` of the file.
  void ParseLine(std::string_view line, int line_number, std::uint64_t offset,
                 std::optional<Item>& out) {
    out.reset();
    if (IsBlankLine(line)) return;
    std::string_view text = line;
    if (text.back() == '\r') text.remove_suffix(1);

    simdjson::dom::element document;
    if (auto error =
            parser_.parse(text.data(), text.size(), /*realloc_if_needed=*/false).get(document)) {
      line_number_ = line_number;
      failed_on_line_ = false;
      std::string message = std::string("invalid JSON: ") + simdjson::error_message(error);
      // A file whose lines end with CR alone (classic Mac) reads as one line of many items.
      if (text.find('\r') != std::string_view::npos) {
        message +=
            " (the line holds a carriage return: lines must end with LF or CRLF, not CR alone; "
            "tr '\\r' '\\n' converts such a file)";
      } else if (std::string hint = StringHint(text); !hint.empty()) {
        message += hint;
      } else {
        message += ShapeHint(text);
      }
      Fail("-", std::move(message));
      return;
    }
    TakeDocument(document, line, line_number, offset, out);
  }

  // The item `document` describes, into `out`; its errors to `errors`. `line` is the whole line
  // the document was parsed from, as the file holds it (a trailing CR included).
  void TakeDocument(simdjson::dom::element document, std::string_view line, int line_number,
                    std::uint64_t offset, std::optional<Item>& out) {
    out.reset();
    line_number_ = line_number;
    failed_on_line_ = false;
    simdjson::dom::object object;
    if (document.get_object().get(object)) {
      std::string message =
          "the line is " + std::string(TypeName(document.type())) + ", not a JSON object";
      if (document.is_array()) {
        message +=
            " (a JSONL manifest holds one object a line; jq -c '.[]' FILE converts a JSON array)";
      }
      Fail("-", std::move(message));
      return;
    }

    RawItem raw;
    raw.utf8_checked = true;  // simdjson refuses a line that is not well-formed UTF-8
    unsigned seen = 0;        // a bit per item key: no allocation per line
    for (const simdjson::dom::key_value_pair& field : object) {
      const std::string_view key = field.key;
      const int index = ItemKeyIndex(key);
      if (index < 0) {
        Fail(std::string(key), "unknown key (allowed: " + ItemKeysForMessage() + ")" +
                                   util::DidYouMeanSuffix(key, ItemKeyNames()));
        continue;
      }
      if (seen & (1u << index)) Fail(std::string(key), "appears twice in the same item");
      seen |= 1u << index;
      std::optional<std::string>* target = nullptr;
      switch (static_cast<ItemKey>(index)) {
        case ItemKey::kImageUrls:
          ReadStringArray(field.value, std::string(key), raw.image_urls);
          continue;
        case ItemKey::kMeta:
          ReadMeta(field.value, raw.meta_json);
          continue;
        case ItemKey::kId:
          target = &raw.id;
          break;
        case ItemKey::kPrompt:
          target = &raw.prompt;
          break;
        case ItemKey::kResolution:
          target = &raw.resolution;
          break;
        case ItemKey::kAspectRatio:
          target = &raw.aspect_ratio;
          break;
        case ItemKey::kOutputFormat:
          target = &raw.output_format;
          break;
      }
      ReadStringInto(field.value, key, *target);
    }
    if (failed_on_line_) return;
    if (raw.id && id_read_) id_read_(*raw.id);

    if (ValidateItemInto(std::move(raw), defaults_, {path_, line_number_}, errors_, out)) {
      ++items_;
      // A derived id is known only now: its slot is fetched while the next line is parsed.
      if (out->id_derived && id_read_) id_read_(out->id);
      out->source_offset = offset;
      out->source_length = static_cast<std::uint32_t>(line.size());
      out->source_fingerprint = LineFingerprint(line);
    }
  }

  std::size_t items() const { return items_; }

 private:
  void Fail(std::string field, std::string message) {
    errors_.Add({path_, line_number_, std::move(field), std::move(message)});
    failed_on_line_ = true;
  }

  // Constructs the string where it is kept: most fields fit std::string's inline buffer, where
  // every move through a temporary is one more copy (a tenth of the validation of short lines
  // went to such copies).
  void ReadStringInto(simdjson::dom::element value, std::string_view field,
                      std::optional<std::string>& target) {
    std::string_view text;
    if (value.get_string().get(text)) {
      Fail(std::string(field), "must be a string, not " + std::string(TypeName(value.type())));
      target.reset();
      return;
    }
    target.emplace(text);
  }

  std::optional<std::string> ReadString(simdjson::dom::element value, std::string_view field) {
    std::string_view text;
    if (value.get_string().get(text)) {
      Fail(std::string(field), "must be a string, not " + std::string(TypeName(value.type())));
      return std::nullopt;
    }
    return std::string(text);
  }

  // `"meta": {"label": "cat", "split": "train", "score": 0.5}`: the item's own columns.
  void ReadMeta(simdjson::dom::element value, std::string& target) {
    simdjson::dom::object object;
    if (value.get_object().get(object)) {
      Fail("meta", "must be an object of columns, not " + std::string(TypeName(value.type())));
      return;
    }
    MetaColumns meta;
    for (const simdjson::dom::key_value_pair& column : object) {
      const std::string_view name = column.key;
      std::optional<std::string> problem;
      switch (column.value.type()) {
        case simdjson::dom::element_type::STRING:
          problem = meta.AddString(name, column.value.get_string().value_unsafe());
          break;
        case simdjson::dom::element_type::INT64:
          problem = meta.AddInteger(name, column.value.get_int64().value_unsafe());
          break;
        case simdjson::dom::element_type::UINT64:
          problem = meta.AddUnsigned(name, column.value.get_uint64().value_unsafe());
          break;
        case simdjson::dom::element_type::DOUBLE:
          problem = meta.AddDouble(name, column.value.get_double().value_unsafe());
          break;
        case simdjson::dom::element_type::BOOL:
          problem = meta.AddBool(name, column.value.get_bool().value_unsafe());
          break;
        case simdjson::dom::element_type::NULL_VALUE:
          problem = meta.AddNull(name);
          break;
        default:
          problem = "must be a string, number, boolean or null, not " +
                    std::string(TypeName(column.value.type()));
      }
      if (problem) Fail("meta." + std::string(name), *problem);
    }
    target = meta.Take();
  }

  void ReadStringArray(simdjson::dom::element value, const std::string& field,
                       std::optional<std::vector<std::string>>& target) {
    simdjson::dom::array array;
    if (value.get_array().get(array)) {
      Fail(field, "must be an array of strings, not " + std::string(TypeName(value.type())));
      return;
    }
    std::vector<std::string> strings;
    std::size_t index = 0;
    for (simdjson::dom::element element : array) {
      auto text = ReadString(element, field + "[" + std::to_string(index++) + "]");
      if (text) strings.push_back(std::move(*text));
    }
    target = std::move(strings);
  }

  const std::string& path_;
  const ItemDefaults& defaults_;
  util::InputErrors& errors_;
  simdjson::dom::parser& parser_;
  const IdReadHook& id_read_;
  int line_number_ = 0;
  bool failed_on_line_ = false;
  std::size_t items_ = 0;
};

// Hands each valid item to the sink one line late, once the next line is parsed. The sink's id
// check (ItemStore's NameClaims) reads a slot of a table far larger than the cache, prefetched
// when the id is parsed (IdReadHook); one line later the slot has arrived (1,000,000 short
// lines: 11% less time). A line's errors wait with it, so errors stay in line order: the late
// item's (its id taken) come before the next line's.
class OneLineLate {
 public:
  OneLineLate(const ItemSink& sink, util::InputErrors& errors) : sink_(sink), errors_(errors) {}
  // Where the line being parsed puts its errors, and its item (two slots take turns, so no item
  // is moved on the way).
  util::InputErrors& line_errors() { return line_errors_; }
  std::optional<Item>& slot() { return slots_[current_]; }
  // After each line: the previous line's item to the sink, this line's errors out, its item held.
  void Next() {
    Deliver(slots_[current_ ^ 1]);
    errors_.Take(line_errors_);
    current_ ^= 1;
  }
  // Before an error of the reader's own (a line too long, a failed read) and at the end.
  void Flush() { Deliver(slots_[current_ ^ 1]); }

 private:
  void Deliver(std::optional<Item>& item) {
    if (!item) return;
    sink_(std::move(*item));
    item.reset();
  }

  const ItemSink& sink_;
  util::InputErrors& errors_;
  util::InputErrors line_errors_;
  std::array<std::optional<Item>, 2> slots_;
  std::size_t current_ = 0;
};

bool IsJsonWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Parses the complete lines of a chunk of the file. simdjson's parse_many indexes the whole chunk
// in one pass, where a parse per line paid that pass's set-up on every line (simdjson alone on
// 1,000,000 short lines: 0.039 s against 0.078; `validate` as a whole, 6% less time). But a stream
// of documents is not a file of lines: it would read two objects on one line, or one across two
// lines, where each of those lines alone is invalid. So a streamed document is taken only when it
// is exactly what its line would parse to alone: an object with nothing but whitespace before it on
// its line, no line break inside, and nothing but whitespace after it to the end of the line. At
// the first document that is not, or the stream's first error (anything invalid fails the rest of
// the pass: bad UTF-8, a control character in a string, an unclosed string), the rest of the chunk
// goes line by line, so every error reads exactly as ParseJsonlLine would report it.
class ChunkParser {
 public:
  ChunkParser(simdjson::dom::parser& json, LineParser& lines, OneLineLate& late)
      : json_(json), lines_(lines), late_(late) {
#ifdef SIMDJSON_THREADS_ENABLED
    json_.threaded = false;  // parse_many would index the next batch on a thread of its own
#endif
  }

  // [data, data + size) ends with '\n' and is followed by SIMDJSON_PADDING readable bytes; it
  // starts at byte `offset` of the file, after line `line_number`, which it advances.
  void Parse(const char* data, std::size_t size, std::uint64_t offset, int& line_number) {
    std::size_t taken = TakeStreamed(data, size, offset, line_number);
    while (taken < size) {
      const auto* newline = static_cast<const char*>(std::memchr(data + taken, '\n', size - taken));
      const std::size_t line_end = newline - data;
      ParseOneLine(data, taken, line_end, offset, line_number);
      taken = line_end + 1;
    }
  }

 private:
  // Takes the lines the stream reads as they would read alone; returns where the first line it
  // did not take starts.
  std::size_t TakeStreamed(const char* data, std::size_t size, std::uint64_t offset,
                           int& line_number) {
    // One batch for the whole chunk. The parser's buffers are sized for the largest chunk at
    // once: growing them a few bytes per chunk would map and fault in fresh pages every time.
    const std::size_t batch =
        size > kMaxLineBytes / 4 ? kMaxLineBytes : std::max(size, json_.capacity());
    simdjson::dom::document_stream stream;
    if (json_.parse_many(reinterpret_cast<const std::uint8_t*>(data), size, batch).get(stream)) {
      return 0;
    }
    std::size_t line_start = 0;  // of the first line not yet taken
    for (auto it = stream.begin(); it != stream.end(); ++it) {
      simdjson::dom::element document;
      if ((*it).get(document) || !document.is_object()) break;
      const std::size_t start = it.current_index();
      const std::string_view source = it.source();
      // Blank lines before it, passed without a parse: one would reuse the parser the stream is
      // reading, and break it.
      for (std::size_t i = line_start; i < start; ++i) {
        if (!IsJsonWhitespace(data[i])) return line_start;
        if (data[i] == '\n') {
          if (!IsBlankLine(std::string_view(data + line_start, i - line_start))) return line_start;
          ++line_number;
          late_.slot().reset();
          late_.Next();
          line_start = i + 1;
        }
      }
      if (start >= size || source.size() > size - start || !source.ends_with('}') ||
          std::memchr(data + start, '\n', source.size()) != nullptr) {
        break;
      }
      std::size_t line_end = start + source.size();
      while (line_end < size && data[line_end] != '\n' && IsJsonWhitespace(data[line_end])) {
        ++line_end;
      }
      if (line_end >= size || data[line_end] != '\n') break;
      ++line_number;
      lines_.TakeDocument(document, std::string_view(data + line_start, line_end - line_start),
                          line_number, offset + line_start, late_.slot());
      late_.Next();
      line_start = line_end + 1;
    }
    return line_start;
  }

  // The line [begin, end) of the chunk (its '\n' excluded), parsed alone.
  void ParseOneLine(const char* data, std::size_t begin, std::size_t end, std::uint64_t offset,
                    int& line_number) {
    ++line_number;
    lines_.ParseLine(std::string_view(data + begin, end - begin), line_number, offset + begin,
                     late_.slot());
    late_.Next();
  }

  simdjson::dom::parser& json_;
  LineParser& lines_;
  OneLineLate& late_;
};

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

}  // namespace

std::optional<Item> ParseJsonlLine(const std::string& path, std::string_view line, int line_number,
                                   std::uint64_t offset, const ItemDefaults& defaults,
                                   util::InputErrors& errors) {
  // One parser for every re-read (single-threaded): its buffers grow to the longest line once.
  static simdjson::dom::parser* shared = new simdjson::dom::parser(kMaxLineBytes);
  const IdReadHook no_hook;
  LineParser parser(path, defaults, errors, *shared, no_hook);
  std::string padded(line);
  padded.resize(line.size() + simdjson::SIMDJSON_PADDING);
  std::optional<Item> item;
  parser.ParseLine(std::string_view(padded.data(), line.size()), line_number, offset, item);
  return item;
}

ManifestStats ReadJsonlManifest(const std::string& path, const ItemDefaults& defaults,
                                const ItemSink& sink, util::InputErrors& errors,
                                const IdReadHook& id_read) {
  ManifestStats stats;
  std::string open_error;
  util::UniqueFd file = util::OpenInputFile(path, kMaxJsonlManifestBytes, open_error);
  if (!file) {
    errors.Add({path, 0, "-", open_error});
    return stats;
  }
  ::posix_fadvise(file.get(), 0, 0, POSIX_FADV_SEQUENTIAL);

  simdjson::dom::parser json(kMaxLineBytes);
  OneLineLate late(sink, errors);
  LineParser parser(path, defaults, late.line_errors(), json, id_read);
  // [begin, end) is unparsed data; the padding after kMaxLineBytes lets simdjson read past the
  // last line safely. Left uninitialised: zeroing it touched all 4 MB (a thousand page faults)
  // for a manifest of a few lines; only what read() fills is ever looked at. Huge pages: a
  // large manifest fills the whole window (two faults, not a thousand).
  const util::HugePageBuffer buffer(kMaxLineBytes + simdjson::SIMDJSON_PADDING);
  std::size_t begin = 0;
  std::size_t end = 0;
  bool at_eof = false;
  bool skipping_long_line = false;
  int line_number = 0;
  std::uint64_t buffer_offset = 0;  // file offset of buffer[0]

  ChunkParser chunks(json, parser, late);
  while (true) {
    if (skipping_long_line) {
      // The tail of a line already reported as too long.
      const auto* newline =
          static_cast<char*>(std::memchr(buffer.data() + begin, '\n', end - begin));
      if (newline != nullptr || (at_eof && end > begin)) {
        ++line_number;
        skipping_long_line = false;
        begin = newline ? newline - buffer.data() + 1 : end;
        continue;
      }
    } else if (const auto* last_newline =
                   static_cast<char*>(::memrchr(buffer.data() + begin, '\n', end - begin))) {
      const std::size_t chunk_end = last_newline - buffer.data() + 1;
      std::uint64_t offset = buffer_offset + begin;
      if (offset == 0 && std::string_view(buffer.data(), chunk_end).starts_with(kByteOrderMark)) {
        begin += kByteOrderMark.size();
        offset += kByteOrderMark.size();
      }
      chunks.Parse(buffer.data() + begin, chunk_end - begin, offset, line_number);
      begin = chunk_end;
      continue;
    } else if (at_eof && end > begin) {
      // The last line, with no newline after it.
      ++line_number;
      std::string_view line(buffer.data() + begin, end - begin);
      std::uint64_t offset = buffer_offset + begin;
      if (offset == 0 && line.starts_with(kByteOrderMark)) {
        line.remove_prefix(kByteOrderMark.size());
        offset += kByteOrderMark.size();
      }
      parser.ParseLine(line, line_number, offset, late.slot());
      late.Next();
      begin = end;
      continue;
    }
    if (at_eof) break;

    // No complete line in the buffer: move the partial line to the front and read more.
    std::memmove(buffer.data(), buffer.data() + begin, end - begin);
    buffer_offset += begin;
    end -= begin;
    begin = 0;
    if (end == kMaxLineBytes) {
      late.Flush();
      if (!skipping_long_line) {
        errors.Add({path, line_number + 1, "-",
                    "line is longer than " + std::to_string(kMaxLineBytes) + " bytes"});
      }
      skipping_long_line = true;
      buffer_offset += end;
      end = 0;
    }
    const ssize_t n = ::read(file.get(), buffer.data() + end, kMaxLineBytes - end);
    if (n < 0) {
      if (errno == EINTR) continue;
      late.Flush();
      errors.Add({path, line_number + 1, "-", std::string("read failed: ") + std::strerror(errno)});
      break;
    }
    if (n == 0) at_eof = true;
    end += static_cast<std::size_t>(n);
    stats.bytes += static_cast<std::uint64_t>(n);
    // A file that grows while it is read is still bounded.
    if (stats.bytes > kMaxJsonlManifestBytes) {
      late.Flush();
      errors.Add(
          {path, line_number + 1, "-",
           "is larger than the " + util::DescribeBytes(kMaxJsonlManifestBytes) + " accepted"});
      break;
    }
  }
  late.Flush();
  stats.lines = static_cast<std::size_t>(line_number);
  stats.items = parser.items();
  return stats;
}

}  // namespace nanobatch::manifest
