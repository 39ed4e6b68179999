#include "runner/manifest/meta_columns.h"

#include <doctest/doctest.h>

namespace nanobatch::manifest {
namespace {

TEST_CASE("meta columns: values of every kind come out as one JSON object in the order given") {
  MetaColumns meta;
  CHECK_FALSE(meta.AddString("label", "a \"cat\"\n"));
  CHECK_FALSE(meta.AddInteger("seed", -3));
  CHECK_FALSE(meta.AddUnsigned("big", 18446744073709551615ull));
  CHECK_FALSE(meta.AddDouble("score", 0.25));
  CHECK_FALSE(meta.AddBool("keep", true));
  CHECK_FALSE(meta.AddNull("note"));
  CHECK(meta.size() == 6);
  CHECK(meta.Take() ==
        "{\"label\":\"a \\\"cat\\\"\\n\",\"seed\":-3,\"big\":18446744073709551615,"
        "\"score\":0.25,\"keep\":true,\"note\":null}");
  CHECK(meta.Take().empty());  // taken: the builder is empty again
}

TEST_CASE("meta columns: bad names, reserved names, repeats and oversize are refused") {
  MetaColumns meta;
  CHECK(meta.AddString("", "x"));
  CHECK(meta.AddString("9lives", "x"));
  CHECK(meta.AddString("with space", "x"));
  CHECK(meta.AddString(std::string(65, 'a'), "x"));
  CHECK(meta.AddString("prompt", "x")->find("nanobatch writes itself") != std::string::npos);
  CHECK(meta.AddString("file_name", "x"));
  CHECK(meta.AddString("width", "x"));
  CHECK(meta.AddString("bad_utf8", "\xff"));
  CHECK(meta.AddDouble("nan", 0.0 / 0.0));
  CHECK_FALSE(meta.AddString("split", "train"));
  CHECK(meta.AddString("split", "test")->find("twice") != std::string::npos);
  CHECK_FALSE(meta.AddString("_split2", "x"));
  CHECK(meta.Has("split"));
  CHECK_FALSE(meta.Has("spl"));
  CHECK(meta.AddString("big", std::string(kMaxMetaBytes, 'x')));
  for (std::size_t i = meta.size(); i < kMaxMetaColumns; ++i) {
    CHECK_FALSE(meta.AddInteger("c" + std::to_string(i), 1));
  }
  CHECK(meta.AddInteger("one_too_many", 1));
  CHECK(meta.size() == kMaxMetaColumns);
}

TEST_CASE("meta columns: YAML plain scalars follow the core schema, quoted ones are strings") {
  MetaColumns meta;
  CHECK_FALSE(meta.AddYamlScalar("a", "true", false));
  CHECK_FALSE(meta.AddYamlScalar("b", "true", true));
  CHECK_FALSE(meta.AddYamlScalar("c", "42", false));
  CHECK_FALSE(meta.AddYamlScalar("d", "-1.5e3", false));
  CHECK_FALSE(meta.AddYamlScalar("e", "~", false));
  CHECK_FALSE(meta.AddYamlScalar("f", "0042", true));
  CHECK_FALSE(meta.AddYamlScalar("g", "99999999999999999999999", false));
  CHECK_FALSE(meta.AddYamlScalar("h", "1.2.3", false));
  CHECK(meta.Take() ==
        "{\"a\":true,\"b\":\"true\",\"c\":42,\"d\":-1500,\"e\":null,\"f\":\"0042\","
        "\"g\":\"99999999999999999999999\",\"h\":\"1.2.3\"}");
}

}  // namespace
}  // namespace nanobatch::manifest
