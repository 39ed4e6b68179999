#include "runner/engine/ledger.h"

#include <cstdio>
#include <cstdlib>

namespace nanobatch::engine {

Ledger::Hold Ledger::TryHold(std::uint32_t credits, Durable durable) {
  if (!budget_ || durable.spent + durable.reserved + held_ + credits <= *budget_) {
    held_ += credits;
    return Hold::kHeld;
  }
  // Only reserved or held credits can come back (a failed task is refunded, a refused submit
  // is released); spent credits never do.
  if (durable.reserved + held_ == 0 || durable.spent + credits > *budget_) return Hold::kExhausted;
  return Hold::kWaitRefunds;
}

void Ledger::Release(std::uint32_t credits) {
  if (credits > held_) {
    // Releasing what was never held would let the budget be overspent later: a bug.
    std::fprintf(stderr, "fatal: ledger released %u credits with %llu held\n", credits,
                 static_cast<unsigned long long>(held_));
    std::abort();
  }
  held_ -= credits;
}

void Ledger::Recorded(std::uint32_t credits) { Release(credits); }

}  // namespace nanobatch::engine
