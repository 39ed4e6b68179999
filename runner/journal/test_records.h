#pragma once
// Journal records for tests: an item taken through to done, as the engine records it.
//
// Example:
//   AppendFinishedItem(*journal, "a");   // intent, submitted, completed, downloaded

#include <string>

#include "runner/journal/journal.h"

namespace nanobatch::journal {

// Appends an intent (prompt "a long prompt for ID", 16 credits), its task "task-ID", the
// completed URL "https://f.example/ID.png" and the downloaded image "ID.png" of 1234 bytes.
void AppendFinishedItem(Journal& journal, const std::string& id);

}  // namespace nanobatch::journal
