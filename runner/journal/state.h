#pragma once
// JournalState: what the journal's records say about every item, built by applying records in
// order. The same Apply() serves recovery (replaying the file) and the live run (each record is
// applied as it is appended), so the two can never disagree.
//
// Credits: an item's credits are *reserved* while a submit intent or a task is open, *spent* once
// its task completed, or when its fate is unknown (an abandoned intent, a task past its deadline):
// counting the unknown as spent keeps the budget a promise. A failed task gives them back.
//
// Example:
//   JournalState state;
//   for (const proto::Record& r : records) state.Apply(r);
//   const proto::ItemSnapshot* item = state.Find("cat-001");

#include <google/protobuf/arena.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto/journal.pb.h"

namespace nanobatch::journal {

using Phase = proto::ItemSnapshot::Phase;

struct Totals {
  std::uint64_t items = 0;  // items the journal knows
  std::uint64_t queued = 0;
  std::uint64_t intent = 0;
  std::uint64_t submitted = 0;
  std::uint64_t completed = 0;  // finished, images not all on disk
  std::uint64_t done = 0;
  std::uint64_t gave_up = 0;
  std::uint64_t departed = 0;  // no longer in the manifest; not in the counts above
  std::uint64_t images = 0;
  std::uint64_t credits_spent = 0;
  std::uint64_t credits_reserved = 0;
  std::uint64_t possible_duplicates = 0;
  std::uint64_t failed_tasks = 0;
  std::int64_t first_unix_time = 0;
  std::int64_t last_unix_time = 0;
};

class JournalState {
 public:
  void Apply(const proto::Record& record);
  // Room for about `items` items, so that replaying a large journal does not rehash repeatedly.
  void Reserve(std::size_t items) {
    items_.reserve(items);
    by_id_.reserve(items);
  }

  const proto::ItemSnapshot* Find(std::string_view id) const;
  // Every item, in the order the journal first mentioned it.
  const std::vector<proto::ItemSnapshot*>& items() const { return items_; }
  const Totals& totals() const { return totals_; }
  // Items given up on, by their error code.
  std::map<std::string, std::uint64_t> FailuresByCode() const;
  // The last RunStarted record, if any.
  const proto::RunStarted* last_run() const { return has_run_ ? &last_run_ : nullptr; }
  // Unix times of the last images completed (for the recent rate), at most 4096.
  const std::deque<std::int64_t>& recent_done_times() const { return recent_done_; }
  std::uint64_t records() const { return records_; }

  // Records that rebuild this state exactly: one ItemSnapshot per item, then the last
  // RunStarted, handed to `sink` one at a time (compaction streams them to disk).
  void ForEachSnapshotRecord(const std::function<void(const proto::Record&)>& sink) const;

 private:
  proto::ItemSnapshot& Item(const std::string& id, std::int64_t unix_time);
  void Count(const proto::ItemSnapshot& item, int sign);

  // Item states live on an arena: a million-record replay allocates in bulk and frees at once.
  std::unique_ptr<google::protobuf::Arena> arena_ = std::make_unique<google::protobuf::Arena>();
  std::vector<proto::ItemSnapshot*> items_;
  std::unordered_map<std::string, proto::ItemSnapshot*> by_id_;
  Totals totals_;
  std::deque<std::int64_t> recent_done_;
  proto::RunStarted last_run_;
  bool has_run_ = false;
  std::uint64_t records_ = 0;
};

}  // namespace nanobatch::journal
