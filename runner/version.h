#pragma once
// The release of nanobatch, printed by --version and sent as the User-Agent.

namespace nanobatch {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace nanobatch
