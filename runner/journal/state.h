#pragma once
// JournalState: what the journal's records say about every item, built by applying records in
// order. The same Apply() serves recovery (replaying the file) and the live run (each record is
// applied as it is appended), so the two can never disagree.
//
// Credits: an item's credits are *reserved* while a submit intent or a task is open, *spent* once
// its task completed, or when its fate is unknown (an abandoned intent, a task past its deadline):
// counting the unknown as spent keeps the budget a promise. A failed task gives them back.
//
// Memory follows the items that are not finished. A finished item (done or given up) whose
// snapshot record is in the journal file is kept *compact*: its id, where that record is, and
// what the totals count (about 70 bytes), not its prompt, URLs and images (about 1.3 KB as a
// message). Find() reads a compact item's snapshot back through the loader the journal
// provides; a record applied to a compact item brings it back into memory first.
//
// Example:
//   JournalState state;
//   for (const proto::Record& r : records) state.Apply(r);
//   const proto::ItemSnapshot* item = state.Find("cat-001");

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/journal.pb.h"
#include "runner/journal/finished_snapshot.h"

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
  std::uint64_t flagged_images = 0;  // images recorded with a mismatch (Downloaded.mismatch)
  std::uint64_t credits_spent = 0;
  std::uint64_t credits_reserved = 0;
  std::uint64_t possible_duplicates = 0;
  std::uint64_t failed_tasks = 0;
  std::int64_t first_unix_time = 0;
  std::int64_t last_unix_time = 0;

  bool operator==(const Totals&) const = default;
};

class JournalState {
 public:
  // Reads the snapshot record at a journal offset (SetLoader). False if it cannot.
  using Loader = std::function<bool(std::uint64_t offset, proto::ItemSnapshot& out)>;

  JournalState();
  ~JournalState();
  JournalState(const JournalState&) = delete;
  JournalState& operator=(const JournalState&) = delete;

  // `offset`: where the record's frame is in the journal file, when known (replay, append); a
  // finished item's snapshot record there lets the item be kept compact.
  // Records that are not well formed (IsWellFormed) are ignored.
  void Apply(const proto::Record& record, std::optional<std::uint64_t> offset = std::nullopt);
  // The same, taking the record's text where it can instead of copying it into the item (the
  // record is left valid, its text unspecified): the records of every item's path (its intent,
  // task id, URLs and images) would otherwise be copied string by string.
  void Apply(proto::Record&& record, std::optional<std::uint64_t> offset = std::nullopt);
  // Apply of a record that holds only `snapshot`, a finished item's, written at `offset` with
  // `unix_time` (ReadFinishedSnapshotRecord): the same state as parsing and applying it, with
  // nothing parsed or copied; the item is compact from now on.
  void ApplyFinishedSnapshot(const FinishedSnapshot& snapshot, std::int64_t unix_time,
                             std::uint64_t offset);
  // Whether `record` can be applied: every enum value in it is one this version knows.
  static bool IsWellFormed(const proto::Record& record);
  void SetLoader(Loader loader) { loader_ = std::move(loader); }
  // Room for about `items` items, so that replaying a large journal does not rehash repeatedly.
  void Reserve(std::size_t items);

  // The item's whole snapshot, or nullptr if unknown (or compact and unreadable). For a compact
  // item the snapshot is read back into a slot of the state: the pointer is valid until the
  // next call of Find, ForEachItem or Apply.
  const proto::ItemSnapshot* Find(std::string_view id) const;
  std::size_t size() const;
  // Calls `visit` with every item's snapshot, in the order the journal first mentioned them
  // (compact items read back one at a time).
  void ForEachItem(const std::function<void(const proto::ItemSnapshot&)>& visit) const;
  // Cheap facts of item `index` (0 .. size()-1), without reading anything back.
  std::string_view IdAt(std::uint32_t index) const;
  bool DepartedAt(std::uint32_t index) const;
  std::uint32_t ImagesAt(std::uint32_t index) const;
  std::optional<std::uint32_t> IndexOf(std::string_view id) const;

  // Keeps finished item `index` compact from now on: its current snapshot is the record at
  // `offset` of the journal (compaction moved it there). No effect on an unfinished item.
  void MakeCompactAt(std::uint32_t index, std::uint64_t offset);
  // Journal::Finalize's two halves. FinishedInMemory: the snapshot of item `id` when it is in
  // memory and finished (done or given up), else nullptr; valid until the next change, and the
  // item's index in `index`. ApplyOwnSnapshot: what Apply does with a record of exactly the
  // snapshot of item `index`, written at `offset` with `unix_time`, without copying the snapshot
  // onto itself: the item is kept compact from now on (no effect unless it is in memory and
  // finished).
  const proto::ItemSnapshot* FinishedInMemory(std::string_view id, std::uint32_t& index) const;
  void ApplyOwnSnapshot(std::uint32_t index, std::int64_t unix_time, std::uint64_t offset);
  std::size_t compact_items() const { return compact_; }

  const Totals& totals() const { return totals_; }
  // Items given up on, by their error code.
  std::map<std::string, std::uint64_t> FailuresByCode() const;
  // The last RunStarted record, if any.
  const proto::RunStarted* last_run() const { return has_run_ ? &last_run_ : nullptr; }
  // Unix times of the last items done (for the recent rate), at most kRecentDoneTimes of them.
  static constexpr std::size_t kRecentDoneTimes = 4096;
  const std::deque<std::int64_t>& recent_done_times() const { return recent_done_; }
  std::uint64_t records() const { return records_; }

  // Records that rebuild this state exactly: one ItemSnapshot per item, then the last
  // RunStarted, handed to `sink` one at a time with the item's index (compaction streams them to
  // disk, then tells the new offsets with MakeCompact).
  using RecordSink = std::function<void(const proto::Record&, std::optional<std::uint32_t>)>;
  void ForEachSnapshotRecord(const RecordSink& sink) const;
  // The same records, except that an item already compact (its snapshot a record of the journal
  // file) is handed to `compact_sink` by that record's offset and the item's index instead of
  // being read back: compaction copies its frame as it is, rather than parse and re-encode it.
  // Without a `compact_sink`, every item is read back (ForEachSnapshotRecord).
  void ForEachSnapshot(
      const RecordSink& sink,
      const std::function<void(std::uint64_t offset, std::uint32_t index)>& compact_sink) const;

 private:
  struct Slot;
  // The slot of item `id`, a new one (queued, with a snapshot in memory first seen at
  // `unix_time`, unless `live` is false) if the item is not known yet.
  Slot& SlotFor(std::string_view id, std::int64_t unix_time, bool live = true);
  // The item's snapshot in memory, read back first if it was compact.
  proto::ItemSnapshot& Live(Slot& slot);
  bool Load(const Slot& slot, proto::ItemSnapshot& out) const;
  void Count(const Slot& slot, int sign);
  void NoteTime(std::int64_t unix_time);
  // An item became done at `unix_time` (for the recent rate).
  void NoteDone(std::int64_t unix_time);
  void Compact(Slot& slot, std::uint64_t offset);
  // Makes `slot` compact with the counts of `item`, a finished snapshot recorded at `offset`.
  void CompactFrom(Slot& slot, const FinishedSnapshot& item, std::uint64_t offset);
  // Apply's part for a finished item's snapshot at `offset`, once the record is counted.
  void ApplyFinished(const FinishedSnapshot& snapshot, std::uint64_t offset);
  std::uint16_t CodeIndex(std::string_view code);
  std::optional<std::uint32_t> Lookup(std::string_view id) const;
  void Index(std::uint32_t slot);

  // A deque: a million items grow it in small blocks, never by a doubling copy.
  std::deque<Slot> slots_;
  std::string ids_;                   // every id's bytes, back to back
  std::vector<std::uint32_t> table_;  // open addressing: slot + 1, 0 = empty
  std::vector<std::string> codes_;    // error codes of compact items, interned
  std::size_t compact_ = 0;
  mutable proto::ItemSnapshot loaded_;  // Find's slot for a compact item
  Loader loader_;
  Totals totals_;
  std::deque<std::int64_t> recent_done_;
  proto::RunStarted last_run_;
  bool has_run_ = false;
  std::uint64_t records_ = 0;
};

}  // namespace nanobatch::journal
