#pragma once
// Unguessable tokens from the operating system's CSPRNG (OpenSSL RAND_bytes): 128 bits as 32
// lowercase hex digits, for URLs that must not be forged (webhook callbacks).
//
// Example:
//   std::string token = util::RandomToken();   // "9f86d081884c7d659a2feaa0c55ad015"

#include <string>

namespace nanobatch::util {

// Aborts if the CSPRNG fails: a predictable token would be worse than no run.
std::string RandomToken();

}  // namespace nanobatch::util
