#include "runner/manifest/prompt_template.h"

#include <doctest/doctest.h>

namespace nanobatch::manifest {
namespace {

TEST_CASE("prompt template: placeholders are replaced, doubled braces are literal") {
  std::string problem;
  auto parsed = PromptTemplate::Parse("{subject} in {{the}} style of {style}, {subject}!",
                                      {"subject", "style", "unused"}, problem);
  REQUIRE(parsed);
  CHECK(parsed->Render({"a cat", "ukiyo-e", "x"}) == "a cat in {the} style of ukiyo-e, a cat!");
  CHECK(parsed->Uses(0));
  CHECK(parsed->Uses(1));
  CHECK_FALSE(parsed->Uses(2));
  auto plain = PromptTemplate::Parse("no placeholders", {}, problem);
  REQUIRE(plain);
  CHECK(plain->Render({}) == "no placeholders");
}

TEST_CASE("prompt template: an unknown name or an unmatched brace is an error that says which") {
  std::string problem;
  CHECK_FALSE(PromptTemplate::Parse("{subject} in {stlye}", {"subject", "style"}, problem));
  CHECK(problem == "{stlye} names no axis of the matrix (axes: subject style)");
  CHECK_FALSE(PromptTemplate::Parse("a {subject", {"subject"}, problem));
  CHECK(problem.find("is not closed") != std::string::npos);
  CHECK_FALSE(PromptTemplate::Parse("a } b", {}, problem));
  CHECK(problem.find("closes nothing") != std::string::npos);
  CHECK_FALSE(PromptTemplate::Parse("{}", {"a"}, problem));
}

}  // namespace
}  // namespace nanobatch::manifest
