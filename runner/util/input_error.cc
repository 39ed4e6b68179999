#include "runner/util/input_error.h"

#include <utility>

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
  if (stored_.size() < cap_) stored_.push_back(std::move(error));
}

void InputErrors::Print(std::ostream& out) const {
  for (const InputError& error : stored_) out << error.Format() << "\n";
  if (total_ > stored_.size()) {
    out << "... and " << (total_ - stored_.size()) << " more errors\n";
  }
}

}  // namespace nanobatch::util
