#pragma once
// Budget: the credit budget of a run. Credits are reserved before a submit (the API pre-deducts
// them), spent when the task completes, released when it fails (the API refunds them). The
// invariant, checked on every change: spent + reserved <= limit. Pure arithmetic.
//
// Example:
//   Budget budget(/*limit=*/1000, /*spent=*/0);
//   if (!budget.TryReserve(16)) { stop submitting; }
//   ... budget.Spend(16);   or   budget.Release(16);

#include <cstdint>
#include <optional>

namespace nanobatch::ratelimit {

class Budget {
 public:
  // `spent` and `reserved` carry over from earlier runs of the same output directory (the
  // journal); reserved credits belong to tasks still in flight.
  Budget(std::optional<std::uint64_t> limit, std::uint64_t spent = 0, std::uint64_t reserved = 0);

  // Reserves `credits` if the limit allows; false (and nothing reserved) otherwise.
  bool TryReserve(std::uint64_t credits);
  // A reserved amount was charged for good (task completed, or its fate is unknown).
  void Spend(std::uint64_t credits);
  // A reserved amount was not charged after all (refunded, or never submitted).
  void Release(std::uint64_t credits);
  // Whether `credits` more could ever be reserved once everything in flight is released.
  bool CouldEverAfford(std::uint64_t credits) const;

  std::optional<std::uint64_t> limit() const { return limit_; }
  std::uint64_t spent() const { return spent_; }
  std::uint64_t reserved() const { return reserved_; }

 private:
  std::optional<std::uint64_t> limit_;
  std::uint64_t spent_;
  std::uint64_t reserved_;
};

}  // namespace nanobatch::ratelimit
