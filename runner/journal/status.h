#pragma once
// StatusJson: the object `status --json` prints (interface.md "status --json"), built from a
// journal's state; serve's GET /jobs/NAME answers with the same object, from the live state of a
// running job or a read-only look at a finished one.
//
// Example:
//   auto state = Journal::OpenReadOnly(out, error);
//   std::cout << util::JsonText(StatusJson(*state)) << "\n";

#include <boost/json/object.hpp>
#include <cstdint>
#include <string>

#include "runner/journal/state.h"

namespace nanobatch::journal {

boost::json::object StatusJson(const JournalState& state);

// "2026-11-25T07:32:43Z"; empty for 0.
std::string IsoTime(std::int64_t unix_time);

}  // namespace nanobatch::journal
