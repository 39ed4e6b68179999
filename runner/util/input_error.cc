#include "runner/util/input_error.h"

#include <utility>

#include "runner/util/server_text.h"

namespace nanobatch::util {

std::string InputError::Format() const {
  std::string out = path;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  out += field.empty() ? "-" : field;
  out += ": ";
  out += message;
  return out;
}

void InputErrors::Add(InputError error) {
  ++total_;
  if (stored_.size() >= cap_) return;
  // Messages quote the input (a manifest's values, a config's keys): what is printed stays one
  // line of printable UTF-8 whatever those hold (escape sequences, NULs, invalid bytes; found by
  // fuzzing the manifest and config readers).
  error.path = PrintableText(error.path, 4096);
  error.field = PrintableText(error.field, 256);
  error.message = PrintableText(error.message, 2048);
  stored_.push_back(std::move(error));
}

void InputErrors::Take(InputErrors& other) {
  if (other.total_ == 0) return;
  const std::size_t dropped = other.total_ - other.stored_.size();
  for (InputError& error : other.stored_) {
    ++total_;
    if (stored_.size() < cap_) stored_.push_back(std::move(error));  // scrubbed by other.Add
  }
  total_ += dropped;
  other.stored_.clear();
  other.total_ = 0;
}

void InputErrors::Print(std::ostream& out) const {
  for (const InputError& error : stored_) out << error.Format() << "\n";
  if (total_ > stored_.size()) {
    out << "... and " << (total_ - stored_.size()) << " more errors\n";
  }
}

}  // namespace nanobatch::util
