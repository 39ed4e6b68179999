#include "runner/util/json_writer.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <random>
#include <vector>

namespace nanobatch::util {
namespace {

namespace json = boost::json;

std::string Written(std::string_view text) {
  std::string out;
  AppendJsonString(out, text);
  return out;
}

TEST_CASE("json_writer: strings are escaped as boost::json::serialize escapes them") {
  CHECK(Written("plain") == "\"plain\"");
  CHECK(Written("a\"b\\c/d") == R"("a\"b\\c/d")");
  CHECK(Written(std::string("\b\t\n\f\r\x01\x1f\x7f", 8)) ==
        "\"\\b\\t\\n\\f\\r\\u0001\\u001f\x7f\"");
  CHECK(Written(std::string("\0", 1)) == "\"\\u0000\"");
  CHECK(Written("猫 café") == "\"猫 café\"");
  // Every byte value, and random strings weighted toward the ones that are escaped: the same
  // bytes as boost::json (which passes bytes >= 0x20 through, valid UTF-8 or not).
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  CHECK(Written(all) == json::serialize(json::string(all)));
  std::mt19937 random(7);
  const std::string interesting = std::string("\"\\/\b\t\n\f\r\x01\x1f\x7f\x80\xff a", 15);
  for (int round = 0; round < 2000; ++round) {
    std::string text(random() % 40, ' ');
    for (char& c : text) {
      c = random() % 2 ? interesting[random() % interesting.size()] : static_cast<char>(random());
    }
    REQUIRE(Written(text) == json::serialize(json::string(text)));
  }
}

TEST_CASE("json_writer: an object's members in order, as boost::json writes the same object") {
  std::string out = "prefix ";
  JsonObjectWriter object(out);
  object.String("id", "cat \"1\"");
  object.Number("bytes", 18446744073709551615ull);
  object.Number("zero", 0);
  const std::vector<std::string> urls{"https://a.example/1.png", "b\n"};
  object.StringArray("urls", urls);
  object.StringArray("none", std::vector<std::string>());
  object.Raw("meta", R"({"k":[1,2]})");
  object.RawNamed("a \"name\"\n", "7");  // known at run time: escaped
  object.Key("input");
  {
    JsonObjectWriter inner(out);
    inner.String("prompt", "x");
    inner.Close();
  }
  object.Close();
  CHECK(object.Has("urls"));
  CHECK(object.Has("input"));
  CHECK(object.Has("a \"name\"\n"));
  CHECK_FALSE(object.Has("prompt"));  // a member of the nested object, not of this one
  json::object expected;
  expected["id"] = "cat \"1\"";
  expected["bytes"] = 18446744073709551615ull;
  expected["zero"] = 0u;
  expected["urls"] = json::array{"https://a.example/1.png", "b\n"};
  expected["none"] = json::array();
  expected["meta"] = json::parse(R"({"k":[1,2]})");
  expected["a \"name\"\n"] = 7;
  expected["input"] = json::object{{"prompt", "x"}};
  CHECK(out == "prefix " + json::serialize(expected));
  JsonObjectWriter empty(out);
  empty.Close();
  CHECK(out.substr(out.size() - 2) == "{}");
}

}  // namespace
}  // namespace nanobatch::util
