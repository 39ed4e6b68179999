#include "runner/util/input_error.h"

#include <doctest/doctest.h>

#include <sstream>

namespace nanobatch::util {
namespace {

TEST_CASE("input errors: what is printed is one line of printable UTF-8, whatever it quotes") {
  InputErrors errors;
  errors.Add({"m.jsonl", 3, "prompt\x1b[2J", "\"red \x1b[31m\x07\" is bad\nsecond line \xff"});
  REQUIRE(errors.stored().size() == 1);
  const std::string line = errors.stored()[0].Format();
  CHECK(line == "m.jsonl:3: prompt?[2J: \"red ?[31m?\" is bad second line ?");
  std::ostringstream printed;
  errors.Print(printed);
  CHECK(printed.str() == line + "\n");
}

TEST_CASE("input errors: past the cap they are counted, not stored") {
  InputErrors errors(2);
  for (int i = 0; i < 5; ++i) errors.Add({"c.yaml", i + 1, "-", "bad"});
  CHECK(errors.total() == 5);
  CHECK(errors.stored().size() == 2);
  std::ostringstream printed;
  errors.Print(printed);
  CHECK(printed.str().find("... and 3 more errors") != std::string::npos);
}

TEST_CASE("input errors: taking another's errors keeps their order, the cap and the count") {
  InputErrors errors(3);
  errors.Add({"m.jsonl", 1, "-", "first"});
  InputErrors line(2);
  for (int i = 0; i < 4; ++i) line.Add({"m.jsonl", 2, "f" + std::to_string(i), "bad"});
  errors.Take(line);
  CHECK(line.empty());
  CHECK(line.stored().empty());
  CHECK(errors.total() == 5);  // 1 + the 2 stored + the 2 dropped of `line`
  REQUIRE(errors.stored().size() == 3);
  CHECK(errors.stored()[1].field == "f0");
  CHECK(errors.stored()[2].field == "f1");
  errors.Take(line);  // empty: nothing changes
  CHECK(errors.total() == 5);
}

}  // namespace
}  // namespace nanobatch::util
