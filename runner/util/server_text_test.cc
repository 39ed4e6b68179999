#include "runner/util/server_text.h"

#include <doctest/doctest.h>

#include <string>

namespace nanobatch::util {
namespace {

TEST_CASE("server text: the registered key, bearer tokens and sk- tokens are redacted") {
  RegisterSecret("sk-unique-key-7f3a9c");
  const std::string echoed =
      "bad header Authorization: Bearer sk-unique-key-7f3a9c; key sk-unique-key-7f3a9c again; "
      "bearer abc.def; other sk-0123456789abcdef";
  const std::string out = ServerText(echoed, 1000);
  CHECK(out.find("unique-key") == std::string::npos);
  CHECK(out.find("abc.def") == std::string::npos);
  CHECK(out.find("0123456789abcdef") == std::string::npos);
  CHECK(out.find("[redacted]") != std::string::npos);
  // The key with no prefix at all is still found.
  CHECK(Redact("xxsk-unique-key-7f3a9cxx").find("unique-key") == std::string::npos);
}

TEST_CASE("server text: ordinary words and task ids are left alone") {
  CHECK(ServerText("task 397ce9f2-aa failed: upstream_error") ==
        "task 397ce9f2-aa failed: upstream_error");
  CHECK(ServerText("ask-me desk-lamp") == "ask-me desk-lamp");
}

TEST_CASE("server text: control characters and invalid UTF-8 become printable; CJK stays") {
  CHECK(ServerText(std::string("a\r\nb\x01\x7f") + "\xff\xfe" + "猫") == "a  b????猫");
  CHECK(ServerText("\xed\xa0\x80") == "???");  // a UTF-16 surrogate is not UTF-8
}

TEST_CASE("server text: capped on a character boundary, cut after redaction") {
  const std::string long_text(10'000, 'x');
  CHECK(ServerText(long_text, 50).size() == 53);
  const std::string cjk = "猫猫猫猫";  // 3 bytes each
  CHECK(ServerText(cjk, 7) == "猫猫...");
  // A secret straddling the cut is redacted first, so no head of it survives.
  RegisterSecret("sk-straddling-secret-123");
  const std::string out = ServerText(std::string(40, 'a') + "sk-straddling-secret-123", 45);
  CHECK(out.find("sk-str") == std::string::npos);
}

}  // namespace
}  // namespace nanobatch::util
