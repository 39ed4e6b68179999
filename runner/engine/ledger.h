#pragma once
// Ledger: the one owner of credit arithmetic and of the budget check. Every path that may spend
// (a first submission, a resubmission after a failed task or a lost answer, a retry after an
// API error) holds its credits here first; nothing else adds or compares credits.
//
// Credits move through three places: *held* here (an item is scheduled; nothing is recorded
// yet), then *reserved* by the journal (the intent is durable: the POST may go out), then
// *spent* (a task, or a submission of unknown fate) or given back (a failed task is refunded,
// an answer said no task was created). The journal's totals are the durable part; the ledger
// adds what is held in memory, so that no two items can pass the budget with the same credits.
// Pure arithmetic: the durable totals are passed in by the caller (Service::DurableCredits: the
// sum over the journals of every job on the service, and what finished jobs spent).
//
// Example:
//   Ledger ledger(/*budget=*/1000);
//   switch (ledger.Hold(price, {totals.credits_spent, totals.credits_reserved})) { ... }
//   ledger.Recorded(price);   // the intent is in the journal now

#include <cstdint>
#include <optional>

namespace nanobatch::engine {

class Ledger {
 public:
  struct Durable {
    std::uint64_t spent = 0;
    std::uint64_t reserved = 0;
  };
  enum class Hold {
    kHeld,         // the credits are held for this submission
    kWaitRefunds,  // over budget now, but reserved credits may come back: wait and ask again
    kExhausted,    // the budget cannot fit this submission whatever comes back
  };

  explicit Ledger(std::optional<std::uint64_t> budget) : budget_(budget) {}

  Hold TryHold(std::uint32_t credits, Durable durable);
  // Held credits not used: the submission was not sent.
  void Release(std::uint32_t credits);
  // The intent is recorded: the journal reserves the credits from now on.
  void Recorded(std::uint32_t credits);
  // The API answered with an error (no task created): the journal releases the intent, and the
  // credits are held again here for the next attempt of the same submission.
  void HoldAgain(std::uint32_t credits) { held_ += credits; }

  std::uint64_t held() const { return held_; }
  const std::optional<std::uint64_t>& budget() const { return budget_; }
  // serve's SIGHUP reload: held credits stay held; the next TryHold checks the new budget.
  void set_budget(std::optional<std::uint64_t> budget) { budget_ = budget; }

 private:
  std::optional<std::uint64_t> budget_;
  std::uint64_t held_ = 0;
};

}  // namespace nanobatch::engine
