#include "runner/manifest/prompt_template.h"

namespace nanobatch::manifest {

std::optional<PromptTemplate> PromptTemplate::Parse(std::string_view text,
                                                    const std::vector<std::string>& axes,
                                                    std::string& problem) {
  PromptTemplate parsed;
  Piece piece;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        piece.literal += '}';
        ++i;
        continue;
      }
      problem = "a '}' at character " + std::to_string(i + 1) +
                " closes nothing (write }} for a literal brace)";
      return std::nullopt;
    }
    if (c != '{') {
      piece.literal += c;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      piece.literal += '{';
      ++i;
      continue;
    }
    const std::size_t close = text.find('}', i + 1);
    if (close == std::string_view::npos) {
      problem = "the '{' at character " + std::to_string(i + 1) +
                " is not closed (write {{ for a literal brace)";
      return std::nullopt;
    }
    const std::string_view name = text.substr(i + 1, close - i - 1);
    int axis = -1;
    for (std::size_t a = 0; a < axes.size(); ++a) {
      if (axes[a] == name) axis = static_cast<int>(a);
    }
    if (axis < 0) {
      std::string known;
      for (const std::string& a : axes) known += (known.empty() ? "" : " ") + a;
      problem = "{" + std::string(name) + "} names no axis of the matrix (axes: " + known + ")";
      return std::nullopt;
    }
    piece.axis = axis;
    parsed.pieces_.push_back(std::move(piece));
    piece = Piece{};
    i = close;
  }
  parsed.pieces_.push_back(std::move(piece));
  return parsed;
}

std::string PromptTemplate::Render(const std::vector<std::string_view>& values) const {
  std::string out;
  for (const Piece& piece : pieces_) {
    out += piece.literal;
    if (piece.axis >= 0) out.append(values.at(static_cast<std::size_t>(piece.axis)));
  }
  return out;
}

bool PromptTemplate::Uses(std::size_t axis) const {
  for (const Piece& piece : pieces_) {
    if (piece.axis == static_cast<int>(axis)) return true;
  }
  return false;
}

}  // namespace nanobatch::manifest
