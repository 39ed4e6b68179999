#pragma once
// InputError: one problem found in a user's input (manifest, config, command line), with the
// place it was found so the user can go straight to it.
//
// Validation collects every InputError of a file before anything is spent, so that a user fixes
// a manifest in one pass rather than one error per run.
//
// Example:
//   InputError e{"prompts.jsonl", 12, "aspect_ratio", "\"17:9\" is not one of 1:1 2:3 ..."};
//   std::cerr << e.Format() << "\n";   // prompts.jsonl:12: aspect_ratio: "17:9" is not ...

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace nanobatch::util {

struct InputError {
  std::string path;   // the file (or "command line")
  int line = 0;       // 1-based; 0 when the error is not tied to a line
  std::string field;  // the key or flag concerned; "-" when none
  std::string message;

  // "FILE:LINE: field: message", the format interface.md fixes for `validate`.
  std::string Format() const;
};

// Collects errors up to a cap, counting (but not storing) the ones past it, so that a manifest
// with a million bad lines cannot exhaust memory.
class InputErrors {
 public:
  explicit InputErrors(std::size_t cap = 1000) : cap_(cap) {}

  void Add(InputError error);
  // Adds everything `other` holds (its stored errors in order, and its count of dropped ones)
  // and empties it.
  void Take(InputErrors& other);
  bool empty() const { return total_ == 0; }
  std::size_t total() const { return total_; }
  const std::vector<InputError>& stored() const { return stored_; }

  // Every stored error, one per line, then "... and N more errors" when some were dropped.
  void Print(std::ostream& out) const;

 private:
  std::size_t cap_;
  std::size_t total_ = 0;
  std::vector<InputError> stored_;
};

}  // namespace nanobatch::util
