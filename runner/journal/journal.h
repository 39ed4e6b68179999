#pragma once
// Journal: the durable memory of one output directory, under `<out>/.nanobatch/`.
//
// Open() opens the output directory (fs::OutputDir: nothing inside is followed through a link),
// takes its lock (flock: one runner per directory; a second gets a clear
// error), reads journal.log, recovers from a torn tail (truncating it, with a warning), refuses a
// journal corrupt in the middle unless told to salvage, and replays everything into a
// JournalState. Append() applies a record to that state at once and queues its bytes; Sync()
// makes every queued record durable with one write + fdatasync (group commit). After any write
// error the journal refuses further appends: a record after a hole would read as corruption.
//
// A full disk must not cost credits: the records that matter most then are the task ids of the
// submits already sent (without them the next run pays for those items again). So the journal
// keeps kReserveAhead bytes allocated past its end (fallocate, keeping the file's size), renewed
// with each batch that leaves less than half of it. A renewal refused for lack of space sets
// space_error(): the caller stops starting new work, while the bytes already allocated take the
// task ids of the submits in flight and the outcomes of the tasks already running. A filesystem
// that cannot allocate ahead (EOPNOTSUPP) appends as before.
//
// OpenReadOnly() is for `status`: no lock, no writes, safe next to a live run.
//
// Example:
//   std::string error;
//   auto journal = Journal::Open(out_dir, {.salvage = false}, error);
//   journal->Append(record);
//   if (!journal->Sync(error)) { stop, exit 3 }

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/journal.pb.h"
#include "runner/fs/output_dir.h"
#include "runner/journal/state.h"

namespace nanobatch::journal {

// Allocates `length` bytes of the file `fd` from `offset` on without changing its size; 0 or an
// errno. The default is fallocate(FALLOC_FL_KEEP_SIZE); tests pass a full disk.
using ReserveSpace = int (*)(int fd, std::uint64_t offset, std::uint64_t length);
int FallocateKeepSize(int fd, std::uint64_t offset, std::uint64_t length);

struct OpenOptions {
  bool salvage = false;  // use every readable record of a journal corrupt in the middle
  ReserveSpace reserve = FallocateKeepSize;
};

// Why Open() failed, for the exit status: a lock held, a corrupt journal or an output path that
// is not a usable directory needs the user's decision (exit 2); an I/O error such as a full disk
// is resumable once fixed (exit 3).
enum class OpenFailure { kNone, kLocked, kCorrupt, kNotADirectory, kIo };

struct Recovery {
  std::uint64_t torn_tail_bytes = 0;  // dropped from the end
  std::uint64_t salvaged_bytes = 0;   // skipped in the middle (with salvage)
  std::uint64_t records = 0;
  bool compacted = false;
  std::vector<std::string> warnings;  // for the log, one line each
};

class Journal {
 public:
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Errors (lock held by another runner, corruption, I/O) are returned in `error`.
  static std::unique_ptr<Journal> Open(const std::string& out_dir, OpenOptions options,
                                       std::string& error, OpenFailure* failure = nullptr);
  // Reads the state without the lock and without changing anything.
  static std::unique_ptr<JournalState> OpenReadOnly(const std::string& out_dir, std::string& error);

  // Applies `record` to state() now and queues it for the next Sync(). The caller sets no time:
  // Append stamps the record with the wall clock (for humans and `status`, never for logic).
  void Append(proto::Record record);
  // Writes and fdatasyncs everything queued, on the caller's thread. False (with `error`) on
  // failure, and for ever after. Not while a batch is in flight.
  bool Sync(std::string& error);
  // The same off the event loop, in two halves around a blocking call (disk::GroupCommit's
  // hooks): BeginBatch() moves the queued records into the batch in flight and returns the call
  // that writes and fdatasyncs them (it touches only the descriptor and that batch, which stay
  // unchanged until EndBatch); EndBatch() applies its result (0 or an errno). Records appended
  // meanwhile queue for the next batch; one batch is in flight at a time.
  std::function<int()> BeginBatch();
  bool EndBatch(int result, std::string& error);
  bool batch_in_flight() const { return batch_in_flight_; }
  // An item is finished (done or given up) and its output lines are written: its whole
  // snapshot is appended as one record, and the state keeps only a compact entry pointing at it.
  // Memory then follows the items in flight, not the items finished.
  void Finalize(const std::string& item_id);

  // Rewrites the journal as one snapshot record per item (temporary file, fsync, rename, fsync
  // of the directory), when the file is much larger than its live state and no batch is in
  // flight. Returns whether it did; after a failed attempt (`error` says why) the next waits
  // until the file has doubled.
  bool MaybeCompact(std::string& error);
  bool Compact(std::string& error);

  const JournalState& state() const { return state_; }
  // Room for `items` items in the state (a run knows its manifest's size): no reallocation, and
  // no doubling past what is needed, as a million items are recorded.
  void ReserveItems(std::size_t items) { state_.Reserve(items); }
  const Recovery& recovery() const { return recovery_; }
  std::uint64_t file_bytes() const { return file_bytes_; }
  std::size_t pending_records() const { return pending_records_; }
  bool failed() const { return failed_; }
  // ENOSPC (or EDQUOT, EFBIG) when the last batch could not allocate kReserveAhead past the
  // journal's end; 0 once a later one could.
  int space_error() const { return space_error_; }
  static constexpr std::uint64_t kReserveAhead = std::uint64_t{4} << 20;
  // The output directory the journal belongs to (opened, locked): images, temporary downloads
  // and the output files are all reached through it.
  const fs::OutputDir& dir() const { return *dir_; }

 private:
  Journal() = default;
  bool LoadSnapshot(std::uint64_t offset, proto::ItemSnapshot& out) const;
  // Frames serialized_ as the next record of the queue.
  void QueueSerialized();
  // The whole frame (header and payload, unchecked) at `offset`: from the file, or from the
  // batch in flight or the queue when not written yet.
  bool FrameAt(std::uint64_t offset, std::string& frame) const;

  std::unique_ptr<fs::OutputDir> dir_;
  std::string path_;  // for messages
  int fd_ = -1;
  int read_fd_ = -1;  // journal.log, for reading compact items back
  int lock_fd_ = -1;
  JournalState state_;
  Recovery recovery_;
  std::string pending_;
  std::string serialized_;  // Append's scratch: the record being framed
  std::size_t pending_records_ = 0;
  std::string in_flight_;  // the batch on its way to the disk (read-only until EndBatch)
  bool batch_in_flight_ = false;
  std::uint64_t file_bytes_ = 0;
  std::uint64_t records_since_compaction_ = 0;
  std::uint64_t records_in_file_ = 0;           // records in journal.log now
  std::uint64_t records_after_compaction_ = 0;  // records the last compaction wrote
  bool failed_ = false;
  // Space allocated ahead (see the top): up to reserved_end_ (0: nothing known), renewed by a
  // batch through reserve_ (null where the filesystem cannot). The batch in flight's renewal:
  // the offset it reserves up to (0: none) and its result, written by the blocking call and read
  // in EndBatch, as the batch's bytes are.
  ReserveSpace reserve_ = nullptr;
  std::uint64_t reserved_end_ = 0;
  std::uint64_t batch_reserve_end_ = 0;
  int batch_reserve_error_ = 0;
  int space_error_ = 0;
};

}  // namespace nanobatch::journal
