#pragma once
// Recorder: the one writer of a job's journal and output files. Everything the engine learns
// goes through it first: records are appended (and applied to the journal's state at once) and
// made durable by Commit(), a group commit (disk::GroupCommit): one write and fdatasync, on the
// service's disk worker, for every record appended before it began; callers whose records came
// later are carried by the next one. The loop never waits for the disk, and the slower the disk,
// the more records share a sync. A journal that cannot be written halts the service (exit 3:
// free space, then run again).
//
// The same group commit syncs the output directory when images were renamed into it since the
// last one (NoteRenamed): an item is reported done (its metadata.jsonl lines) only after a
// commit that began after its images' renames, so one directory fsync covers every image
// published in the group. Under a busy stream of commits a sync starts at most every
// kCommitInterval, so that groups grow even on a fast disk.
//
// Only what recovery needs is waited for: an intent before its POST (money), a task id once
// known (money), an item's images before it is reported done. A completed task or a downloaded
// image's record rides along with the next commit: lost in a crash, it costs a poll or a
// download, never credits.
//
// Example:
//   recorder.AppendIntent(run, token);
//   if (!co_await recorder.Commit()) co_return;   // durable, or stopping

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <set>
#include <string>

#include "runner/disk/group_commit.h"
#include "runner/engine/item_run.h"
#include "runner/engine/service.h"
#include "runner/journal/journal.h"
#include "runner/output/output_files.h"

namespace nanobatch::engine {

class Recorder {
 public:
  // Under a busy stream of commits, a sync at most every kCommitInterval, or as soon as
  // kFullGroup records wait: at 160 images/s the interval keeps syncs under 1.5 per item, at
  // 1,300/s the group size does, and no waiter holds its connection long.
  static constexpr std::chrono::milliseconds kCommitInterval{25};
  static constexpr std::size_t kFullGroup = 32;
  static_assert(kFullGroup <= Service::kMinConnectionsPerHost,
                "submissions waiting for a commit (one per API connection) must be able to fill "
                "a group, or every one of them waits out kCommitInterval");

  // `log_prefix` names the job in log lines ("job NAME: ", or empty for `run`): ItemLabel.
  Recorder(Service& service, journal::Journal& journal, std::string log_prefix);
  const std::string& log_prefix() const { return log_prefix_; }

  boost::asio::awaitable<bool> Commit();
  void Append(proto::Record record) { journal_.Append(std::move(record)); }
  const proto::ItemSnapshot* Snapshot(const ItemRun& run) const {
    return journal_.state().Find(run.id);
  }
  // The item's phase in the journal (QUEUED if it has none yet).
  proto::ItemSnapshot::Phase PhaseOf(const ItemRun& run) const {
    const proto::ItemSnapshot* snapshot = Snapshot(run);
    return snapshot ? snapshot->phase() : proto::ItemSnapshot::QUEUED;
  }
  journal::Journal& journal() { return journal_; }
  // An image was renamed into directory `dir` (the output directory, or a shard directory): the
  // next commit syncs it.
  void NoteRenamed(int dir) { renamed_.insert(dir); }
  output::OutputFiles& outputs() { return outputs_; }

  // The intent is recorded once the rate limiter lets its POST go: a crash can then leave open
  // only the intents whose POST was about to go out or was out, which is the window the API
  // leaves (no idempotency key). The ledger's held credits become the journal's reservation.
  void AppendIntent(const ItemRun& run, const std::string& callback_token);
  void RecordSubmitted(const ItemRun& run, const std::string& task_id, bool revealed);
  // The submission was not sent, or the API answered that no task was created.
  void RecordNotSent(const ItemRun& run, const std::string& code, const std::string& message);
  // The submission's fate is unknown (no usable answer): its credits count as spent.
  void RecordAbandoned(const std::string& item_id, const std::string& why);
  // The item failed for good: recorded, its failed.jsonl line written, finalized. `code` and
  // `message` are copied: they often come from the item's own snapshot, which Finalize releases.
  void RecordGaveUp(const ItemRun& run, std::string code, std::string message);
  // The item's images are all on disk: its metadata.jsonl lines, then finalized.
  void RecordDone(const ItemRun& run);
  // The settled item `item_id` is to be generated again, paid again on purpose: its images are
  // moved to `.previous/` as `<name>.<attempt>.<ext>` (on a disk worker), then Redone is
  // appended (the caller commits). False, the service halted, when the disk refused.
  boost::asio::awaitable<bool> Redo(const std::string& item_id, bool mismatch,
                                    const std::string& reason);

 private:
  Service& service_;
  journal::Journal& journal_;
  const std::string log_prefix_;
  output::OutputFiles outputs_;
  std::function<int()> BeginSync();
  bool EndSync(int result, std::string& error);

  std::set<int> renamed_;  // directories renamed into since the last commit began
  disk::GroupCommit syncs_;
};

}  // namespace nanobatch::engine
