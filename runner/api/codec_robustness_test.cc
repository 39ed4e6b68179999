// Whatever the network sends, decoding returns a value: a bounded, seeded stream of mutated and
// random bodies goes through every decoder (run under ASan in a fuzzing build, this is also the
// seed corpus's harness). A crash or an exception fails the test.
#include <doctest/doctest.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include "runner/api/codec.h"

namespace nanobatch::api {
namespace {

const std::vector<std::string> kSeeds = {
    R"({"code":200,"msg":"success","data":{"taskId":"397ce9f2-1"}})",
    R"({"id":"t","status":"completed","output":{"urls":["https://f/a.png"],"metadata":{"costTime":70}}})",
    R"({"id":"t","status":"failed","error":{"code":"upstream_error","message":"x"}})",
    R"({"error":{"code":"insufficient_credits","message":"m","type":"billing_error"}})",
    R"({"code":200,"data":{"credits":12}})",
};

std::string Mutate(std::string text, std::mt19937_64& random) {
  std::uniform_int_distribution<int> op(0, 3);
  std::uniform_int_distribution<int> byte(0, 255);
  const int edits = 1 + static_cast<int>(random() % 4);
  for (int i = 0; i < edits && !text.empty(); ++i) {
    const std::size_t at = random() % text.size();
    switch (op(random)) {
      case 0:
        text[at] = static_cast<char>(byte(random));
        break;
      case 1:
        text.erase(at, 1 + random() % 8);
        break;
      case 2:
        text.insert(at, 1, "{}[]\",:\\0"[random() % 9]);
        break;
      case 3:
        text = text.substr(0, at);
        break;
    }
  }
  return text;
}

TEST_CASE("codec robustness: 20,000 mutated and random bodies decode without crashing") {
  std::mt19937_64 random(20261125);
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body = i % 10 == 0 ? std::string(random() % 64, static_cast<char>(random()))
                                   : Mutate(kSeeds[random() % kSeeds.size()], random);
    const int status = std::array<int, 6>{200, 400, 404, 429, 500, 503}[random() % 6];
    CHECK_NOTHROW(DecodeSubmitResponse(status, body, i % 3 ? "" : body.substr(0, 5)));
    CHECK_NOTHROW(DecodeTaskResponse(status, body, ""));
    CHECK_NOTHROW(DecodeCredits(body));
    ++decoded;
  }
  CHECK(decoded == 20000);
}

}  // namespace
}  // namespace nanobatch::api
