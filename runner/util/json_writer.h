#pragma once
// JsonObjectWriter: one flat JSON object appended to a string, member by member, in the order
// written. For the lines nanobatch itself composes (the output files' lines, a submit's body):
// building a boost::json object for each and serializing it cost more than everything else done
// to record an image (one value and one allocation per column, then a walk over them).
//
// The bytes are boost::json::serialize's for the same members in the same order (the test checks
// it on random text): strings escape '"', '\' and the control characters (\b \t \n \f \r, else
// \u00xx) and pass every other byte through; integers are plain decimals.
//
// Example:
//   std::string line;
//   JsonObjectWriter object(line);
//   object.String("id", "cat-1");
//   object.Number("bytes", 1234);
//   object.Close();  // {"id":"cat-1","bytes":1234}

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace nanobatch::util {

// `text` as a JSON string, quotes included, appended to `out`.
void AppendJsonString(std::string& out, std::string_view text);

// Never defined: JsonName's constructor calls it for a name that would need escaping, which a
// constant evaluation cannot do, so such a name fails to compile.
void JsonNameNeedsEscaping();

// A member name written in the program: checked when it is compiled (consteval) to need no
// escaping, so that it is copied as it is rather than scanned every time it is written (the
// output lines and submit bodies write about twenty a task). A name known only at run time goes
// through RawNamed, which escapes it.
class JsonName {
 public:
  template <std::size_t N>
  consteval JsonName(const char (&name)[N]) : text_(name, N - 1) {  // implicit: from literals
    for (std::size_t i = 0; i + 1 < N; ++i) {
      const auto c = static_cast<unsigned char>(name[i]);
      if (c < 0x20 || c == '"' || c == '\\') JsonNameNeedsEscaping();
    }
  }
  std::string_view text() const { return text_; }

 private:
  std::string_view text_;
};

class JsonObjectWriter {
 public:
  explicit JsonObjectWriter(std::string& out) : out_(out) { out_.push_back('{'); }
  JsonObjectWriter(const JsonObjectWriter&) = delete;
  JsonObjectWriter& operator=(const JsonObjectWriter&) = delete;

  void String(JsonName key, std::string_view value) {
    Key(key);
    AppendJsonString(out_, value);
  }
  void Number(JsonName key, std::uint64_t value);
  // An array of strings, from any range of things that convert to std::string_view.
  template <typename Strings>
  void StringArray(JsonName key, const Strings& values) {
    Key(key);
    out_.push_back('[');
    bool first = true;
    for (const auto& value : values) {
      if (!first) out_.push_back(',');
      first = false;
      AppendJsonString(out_, std::string_view(value));
    }
    out_.push_back(']');
  }
  // A value that is already JSON text (a serialized boost::json value), copied as it is.
  void Raw(JsonName key, std::string_view json) {
    Key(key);
    out_.append(json);
  }
  // The same, for a name known only at run time (escaped as a string is).
  void RawNamed(std::string_view name, std::string_view json);
  // Starts a member whose value is written next (a nested JsonObjectWriter on the same string).
  void Key(JsonName key) {
    if (!keys_.empty()) out_.push_back(',');
    keys_.push_back(key.text());
    out_.push_back('"');
    out_.append(key.text());
    out_.append("\":", 2);
  }
  void Close() { out_.push_back('}'); }

  // Whether a member of this name was written. The names are kept as views: a name must stay
  // alive while Has() may still be asked about it.
  bool Has(std::string_view key) const {
    return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
  }

 private:
  std::string& out_;
  boost::container::small_vector<std::string_view, 24> keys_;
};

}  // namespace nanobatch::util
