#include "runner/util/json_text.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>

namespace nanobatch::util {
namespace {

namespace json = boost::json;

TEST_CASE("json text: doubles as people read them, everything else as Boost.JSON writes it") {
  CHECK(JsonText(json::object{{"duration_s", 18.5}}) == R"({"duration_s":18.5})");
  CHECK(JsonText(600.0) == "600");
  CHECK(JsonText(7.5) == "7.5");
  CHECK(JsonText(0.1) == "0.1");
  CHECK(JsonText(-0.25) == "-0.25");
  CHECK(JsonText(1e21) == "1e+21");
  CHECK(JsonText(std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(JsonText(std::numeric_limits<double>::infinity()) == "null");
  const json::value mixed = json::parse(
      R"({"a":[1,-2,18446744073709551615,true,false,null],"s":"q\"\\\n\u0001é","o":{}})");
  CHECK(JsonText(mixed) == json::serialize(mixed));
}

TEST_CASE("json text: every double is JSON and reads back as itself") {
  std::mt19937_64 random(20261128);
  std::uniform_real_distribution<double> exponent(-300, 300);
  for (int i = 0; i < 20000; ++i) {
    const double number = std::pow(10.0, exponent(random)) * (i % 2 ? 1 : -1);
    const std::string text = JsonText(number);
    REQUIRE_MESSAGE(json::parse(text).is_number(), text);  // JSON
    // Read back exactly (Boost.JSON 1.74's own parser may be an ulp off: strtod is not).
    CHECK_MESSAGE(std::strtod(text.c_str(), nullptr) == number, text);
  }
}

}  // namespace
}  // namespace nanobatch::util
