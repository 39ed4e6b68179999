#include "runner/ratelimit/budget.h"

#include <cstdio>
#include <cstdlib>

namespace nanobatch::ratelimit {
namespace {

// Accounting that goes wrong could spend money the user did not allow: stop the process.
void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fatal: budget accounting: %s\n", what);
    std::abort();
  }
}

}  // namespace

Budget::Budget(std::optional<std::uint64_t> limit, std::uint64_t spent, std::uint64_t reserved)
    : limit_(limit), spent_(spent), reserved_(reserved) {}

bool Budget::TryReserve(std::uint64_t credits) {
  if (limit_ && spent_ + reserved_ + credits > *limit_) return false;
  reserved_ += credits;
  return true;
}

void Budget::Spend(std::uint64_t credits) {
  Check(credits <= reserved_, "spending more than was reserved");
  reserved_ -= credits;
  spent_ += credits;
}

void Budget::Release(std::uint64_t credits) {
  Check(credits <= reserved_, "releasing more than was reserved");
  reserved_ -= credits;
}

bool Budget::CouldEverAfford(std::uint64_t credits) const {
  return !limit_ || spent_ + credits <= *limit_;
}

}  // namespace nanobatch::ratelimit
