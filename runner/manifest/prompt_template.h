#pragma once
// PromptTemplate: the prompt of a YAML `matrix:` entry, such as
// "{subject} in the style of {style}". `{name}` is replaced by the value of the axis `name`;
// `{{` and `}}` stand for literal braces. Parsing checks every placeholder against the axes, so a
// typo is an error at validation, never a prompt sent with "{stlye}" in it.
//
// Example:
//   std::string problem;
//   auto parsed = PromptTemplate::Parse("{subject}, {style}", {"subject", "style"}, problem);
//   parsed->Render({"a cat", "watercolor"}) == "a cat, watercolor"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nanobatch::manifest {

class PromptTemplate {
 public:
  // nullopt with `problem` set when a brace is unmatched or a placeholder names no axis.
  static std::optional<PromptTemplate> Parse(std::string_view text,
                                             const std::vector<std::string>& axes,
                                             std::string& problem);
  // `values[i]` is the value of axis i (in the order given to Parse).
  std::string Render(const std::vector<std::string_view>& values) const;
  // Whether the template uses axis i.
  bool Uses(std::size_t axis) const;

 private:
  struct Piece {
    std::string literal;  // text before the placeholder
    int axis = -1;        // -1: no placeholder (the last piece)
  };
  std::vector<Piece> pieces_;
};

}  // namespace nanobatch::manifest
