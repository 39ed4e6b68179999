// A config file, loaded and validated as `run` and `serve` do: no input crashes the loader or
// the validation, and every error is printable.

#include <cstdint>
#include <string>

#include "runner/config/config.h"
#include "runner/fuzz/fuzz_check.h"
#include "runner/fuzz/printable.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nanobatch;
  const std::string text(reinterpret_cast<const char*>(data), size);
  config::Config config;
  util::InputErrors errors;
  if (config::LoadConfigText("fuzz.yaml", text, config, errors)) {
    config::ValidateConfig(config, errors);
  }
  for (const util::InputError& error : errors.stored()) {
    FUZZ_CHECK(fuzz::IsPrintable(error.Format(), 4096));
  }
  return 0;
}
