#include "runner/journal/journal.h"

#include <fcntl.h>
#include <google/protobuf/arena.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include "runner/journal/finished_snapshot.h"
#include "runner/journal/frame.h"
#include "runner/util/input_file.h"

namespace nanobatch::journal {
namespace {

// The whole frame at `offset` of the file `fd` (header and payload, unchecked): false if the file
// ends first or the length is impossible. An item's snapshot is usually well under a page: one
// read takes the header and the payload together, a second only for a longer frame.
bool ReadFrameAt(int fd, std::uint64_t offset, std::string& frame) {
  constexpr std::size_t kFirstRead = 4096;
  frame.resize(kFirstRead);
  std::size_t done = 0;
  // Reads on into frame[done, size) until at least `wanted` bytes are in.
  const auto read_until = [&](std::size_t wanted) {
    while (done < wanted) {
      const ssize_t n =
          ::pread(fd, frame.data() + done, frame.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  };
  if (!read_until(kFrameHeaderSize)) return false;
  const std::uint32_t length = FramePayloadLength(std::string_view(frame.data(), kFrameHeaderSize));
  if (length > kMaxPayload) return false;
  const std::size_t whole = kFrameHeaderSize + length;
  if (frame.size() < whole) frame.resize(whole);
  if (!read_until(whole)) return false;
  frame.resize(whole);
  return true;
}

// The item snapshot a whole record frame holds, if its checksum holds and it is one.
bool SnapshotOfFrame(std::string_view frame, proto::ItemSnapshot& out) {
  auto payload = RecordFrameAt(frame);
  proto::Record record;
  if (!payload || !record.ParseFromArray(payload->data(), static_cast<int>(payload->size())) ||
      !record.has_item_snapshot() || !JournalState::IsWellFormed(record)) {
    return false;
  }
  out = std::move(*record.mutable_item_snapshot());
  return true;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The journal's bytes, mapped read-only: a million-record journal is replayed without copying
// its hundred megabytes first.
class MappedFile {
 public:
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }
  // False (with `error`) on failure; a missing file maps as empty.
  bool Map(int dir, const std::string& name, const std::string& path, std::string& error) {
    const int fd = fs::OpenFileAt(dir, name, O_RDONLY);
    if (fd < 0) {
      if (errno == ENOENT) return true;
      error = Errno("opening " + path);
      return false;
    }
    struct stat info;
    if (::fstat(fd, &info) != 0) {
      error = Errno("reading " + path);
      ::close(fd);
      return false;
    }
    size_ = static_cast<std::size_t>(info.st_size);
    if (size_ > 0) {
      void* data = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (data == MAP_FAILED) {
        error = Errno("mapping " + path);
        size_ = 0;
        ::close(fd);
        return false;
      }
      data_ = data;
      ::madvise(data_, size_, MADV_SEQUENTIAL);
    }
    ::close(fd);
    return true;
  }
  std::string_view bytes() const {
    return data_ == nullptr ? std::string_view()
                            : std::string_view(static_cast<const char*>(data_), size_);
  }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

// Applies the frames of a journal to a state, fed in one piece (a mapped file) or in windows (a
// file read in chunks): what it learned (the header seen, the record arena) carries over.
class Replayer {
 public:
  Replayer(JournalState& state, Recovery& recovery) : state_(state), recovery_(recovery) {
    record_ = google::protobuf::Arena::CreateMessage<proto::Record>(&arena_);
  }

  // The frames of `bytes`, which start at byte `base` of the file. `mapped`: `bytes` is a
  // private read-only mapping, whose pages are given back as the replay leaves them behind (a
  // 400 MB journal then never sits whole in memory).
  FrameScan Feed(std::string_view bytes, std::uint64_t base, bool salvage, bool mapped) {
    constexpr std::size_t kReleaseBytes = 32 << 20;
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    std::size_t released = 0;  // bytes from the start already given back
    auto release_behind = [&](const char* position) {
      const std::size_t done = static_cast<std::size_t>(position - bytes.data());
      if (!mapped || done < released + kReleaseBytes) return;
      const std::size_t end = done / page * page;
      ::madvise(const_cast<char*>(bytes.data()) + released, end - released, MADV_DONTNEED);
      released = end;
    };
    return ScanFrames(bytes, salvage, [&](FrameType type, std::string_view payload) {
      if (type == FrameType::kHeader) {
        header_seen_ = payload == kHeaderPayload;
        foreign_ = foreign_ || !header_seen_;
        return header_seen_;
      }
      if (!header_seen_ && !salvage) {
        foreign_ = true;
        return false;
      }
      const auto frame_offset =
          base + static_cast<std::uint64_t>(payload.data() - bytes.data()) - kFrameHeaderSize;
      // A finished item's snapshot (one per finished item; after a compaction, nearly every
      // record) is read for its counts alone, without building the message.
      std::int64_t unix_time = 0;
      if (const auto finished = ReadFinishedSnapshotRecord(payload, unix_time)) {
        release_behind(payload.data());
        state_.ApplyFinishedSnapshot(*finished, unix_time, frame_offset);
        ++recovery_.records;
        return true;
      }
      // Records are parsed on an arena, reset every few thousand: parsing a different event
      // kind into one message would otherwise free and allocate its sub-message every time.
      if (++parsed_on_arena_ == 4096) {
        arena_.Reset();
        record_ = google::protobuf::Arena::CreateMessage<proto::Record>(&arena_);
        parsed_on_arena_ = 0;
      }
      if (!record_->ParseFromArray(payload.data(), static_cast<int>(payload.size())) ||
          !JournalState::IsWellFormed(*record_)) {
        return false;  // a bad frame: corruption (or, at the end, a torn tail)
      }
      release_behind(payload.data());
      state_.Apply(std::move(*record_), frame_offset);  // parsed anew for the next frame
      ++recovery_.records;
      return true;
    });
  }

  bool foreign() const { return foreign_; }

 private:
  JournalState& state_;
  Recovery& recovery_;
  google::protobuf::Arena arena_;
  proto::Record* record_ = nullptr;
  std::size_t parsed_on_arena_ = 0;
  bool header_seen_ = false;
  bool foreign_ = false;
};

std::string NotAJournal(const std::string& path) {
  return path +
         " is not a nanobatch journal (or its header is damaged); run with --salvage to use "
         "whatever can be read";
}

std::string CorruptAt(const std::string& path, std::uint64_t offset) {
  return path + " is corrupt at byte " + std::to_string(offset) +
         " (valid records follow it); nothing was changed. Run again with --salvage to continue "
         "from every record that can still be read";
}

// Replays `bytes` (the whole file, mapped) into `state`. Returns false (with `error`) for
// mid-file corruption without salvage, or a journal that is not one.
bool Replay(std::string_view bytes, const std::string& path, bool salvage, JournalState& state,
            Recovery& recovery, FrameScan& scan, std::string& error) {
  // An item takes some 400 to 1,000 bytes of journal: room for the fewest it could be (the
  // state grows past a low guess; a high one would hold memory for items that do not exist).
  state.Reserve(bytes.size() / 1000);
  Replayer replayer(state, recovery);
  scan = replayer.Feed(bytes, 0, salvage, /*mapped=*/true);
  if (replayer.foreign() && scan.frames == 0 && !bytes.empty() && !salvage) {
    error = NotAJournal(path);
    return false;
  }
  if (scan.corruption_offset && !salvage) {
    error = CorruptAt(path, *scan.corruption_offset);
    return false;
  }
  return true;
}

}  // namespace

int FallocateKeepSize(int fd, std::uint64_t offset, std::uint64_t length) {
  while (::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                     static_cast<off_t>(length)) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

Journal::~Journal() {
  // The space allocated ahead is given back (a truncation to the same size frees the blocks
  // past the end on ext4, XFS and tmpfs): a finished output directory keeps no 4 MiB unused.
  // Not after a failed write, whose torn tail the next start checks.
  if (fd_ >= 0) {
    if (!failed_ && !batch_in_flight_ && reserved_end_ > file_bytes_) {
      static_cast<void>(::ftruncate(fd_, static_cast<off_t>(file_bytes_)));
    }
    ::close(fd_);
  }
  if (read_fd_ >= 0) ::close(read_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::unique_ptr<Journal> Journal::Open(const std::string& out_dir, OpenOptions options,
                                       std::string& error, OpenFailure* failure) {
  OpenFailure ignored;
  OpenFailure& why = failure != nullptr ? *failure : ignored;
  why = OpenFailure::kIo;
  std::unique_ptr<Journal> journal(new Journal());
  journal->reserve_ = options.reserve;
  fs::OpenProblem problem;
  journal->dir_ = fs::OutputDir::Open(out_dir, /*create=*/true, error, &problem);
  if (!journal->dir_) {
    if (problem == fs::OpenProblem::kNotADirectory) why = OpenFailure::kNotADirectory;
    return nullptr;
  }
  const fs::OutputDir& dir = *journal->dir_;
  journal->path_ = dir.StatePathOf("journal.log");

  // One runner per directory. The lock file is never removed, so that two runners cannot each
  // lock a different inode of the "same" file.
  const std::string lock_path = dir.StatePathOf("lock");
  journal->lock_fd_ = fs::OpenFileAt(dir.state_fd(), "lock", O_RDWR | O_CREAT, 0600);
  if (journal->lock_fd_ < 0) {
    error = Errno("opening " + lock_path);
    return nullptr;
  }
  if (::flock(journal->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      error = "another nanobatch run is using " + out_dir + " (lock " + lock_path + " is held)";
      why = OpenFailure::kLocked;
    } else {
      error = Errno("locking " + lock_path);
    }
    return nullptr;
  }

  // Leftover temporary downloads of an interrupted run are never valid: remove them.
  if (!journal->dir_->ClearTemporary(error)) return nullptr;

  // Compact items are read back from the file through their own descriptor.
  Journal* self = journal.get();
  journal->state_.SetLoader([self](std::uint64_t offset, proto::ItemSnapshot& out) {
    return self->LoadSnapshot(offset, out);
  });
  journal->read_fd_ = fs::OpenFileAt(dir.state_fd(), "journal.log", O_RDONLY | O_CREAT, 0600);
  if (journal->read_fd_ < 0) {
    error = Errno("opening " + journal->path_);
    return nullptr;
  }
  MappedFile file;
  if (!file.Map(dir.state_fd(), "journal.log", journal->path_, error)) return nullptr;
  const std::string_view bytes = file.bytes();
  // Records met during the replay may read earlier snapshots back: all of them are in the file.
  journal->file_bytes_ = bytes.size();
  FrameScan scan;
  if (!Replay(bytes, journal->path_, options.salvage, journal->state_, journal->recovery_, scan,
              error)) {
    why = OpenFailure::kCorrupt;
    return nullptr;
  }
  Recovery& recovery = journal->recovery_;
  journal->records_in_file_ = recovery.records;
  recovery.torn_tail_bytes = scan.torn_tail_bytes;
  recovery.salvaged_bytes = scan.skipped_bytes;
  if (scan.torn_tail_bytes > 0) {
    recovery.warnings.push_back("journal: dropped a torn tail of " +
                                std::to_string(scan.torn_tail_bytes) +
                                " bytes (a write cut short by a crash); nothing durable was lost");
  }
  if (scan.corruption_offset) {
    recovery.warnings.push_back("journal: salvaged around corruption at byte " +
                                std::to_string(*scan.corruption_offset) + "; skipped " +
                                std::to_string(recovery.salvaged_bytes) + " bytes");
  }

  journal->fd_ = fs::OpenFileAt(dir.state_fd(), "journal.log", O_WRONLY | O_CREAT, 0600);
  if (journal->fd_ < 0) {
    error = Errno("opening " + journal->path_);
    return nullptr;
  }
  if (scan.corruption_offset) {
    // Appending after a hole would make it a hole for ever: rewrite from the state instead.
    if (!journal->Compact(error)) return nullptr;
    recovery.compacted = true;
    why = OpenFailure::kNone;
    return journal;
  }
  if (bytes.empty() || scan.frames == 0) {
    if (::ftruncate(journal->fd_, 0) != 0) {
      error = Errno("truncating " + journal->path_);
      return nullptr;
    }
    journal->pending_ = EncodeFrame(FrameType::kHeader, kHeaderPayload);
    journal->file_bytes_ = 0;
    if (!journal->Sync(error) || !fs::SyncDirectory(dir.state_fd(), error)) return nullptr;
    why = OpenFailure::kNone;
    return journal;
  }
  if (scan.torn_tail_bytes > 0 &&
      (::ftruncate(journal->fd_, static_cast<off_t>(scan.valid_end)) != 0 ||
       ::fdatasync(journal->fd_) != 0)) {
    error = Errno("truncating the torn tail of " + journal->path_);
    return nullptr;
  }
  journal->file_bytes_ = scan.valid_end;
  if (::lseek(journal->fd_, static_cast<off_t>(scan.valid_end), SEEK_SET) < 0) {
    error = Errno("seeking in " + journal->path_);
    return nullptr;
  }
  why = OpenFailure::kNone;
  return journal;
}

std::unique_ptr<JournalState> Journal::OpenReadOnly(const std::string& out_dir,
                                                    std::string& error) {
  auto dir = fs::OutputDir::Open(out_dir, /*create=*/false, error);
  if (!dir) return nullptr;
  const std::string path = dir->StatePathOf("journal.log");
  auto state = std::make_unique<JournalState>();
  const int fd = fs::OpenFileAt(dir->state_fd(), "journal.log", O_RDONLY);
  if (fd < 0) {
    if (errno == ENOENT) return state;  // nothing recorded yet
    error = Errno("opening " + path);
    return nullptr;
  }
  // Finished items are kept compact (their snapshot read back from the file on demand), so the
  // state keeps its own descriptor of the file it was read from: a compaction by a live run
  // renames a new file into place, and this one's offsets stay right.
  auto kept = std::make_shared<util::UniqueFd>(::dup(fd));
  state->SetLoader([kept](std::uint64_t offset, proto::ItemSnapshot& out) {
    std::string frame;
    return kept->get() >= 0 && ReadFrameAt(kept->get(), offset, frame) &&
           SnapshotOfFrame(frame, out);
  });
  // Read in windows, not whole: `status` next to a 1,000,000-item run must not need the
  // journal's size in memory. Bytes that do not make a whole frame yet are carried to the next
  // window (a frame longer than a window is carried on until it is whole); at the end they are a
  // torn tail (a live run may be mid-append: normal here). A window of 1 MiB is replayed while
  // it is still in the cache: with 32 MiB windows `status` took 0.51 s for a million records
  // against 0.44 s, and twice the memory.
  constexpr std::size_t kWindow = 1 << 20;
  // A small journal is read in one window of its own size (a 32 MiB allocation was most of the
  // time of `status` on a small output directory; seen when fuzzing).
  struct stat info {};
  const std::size_t window = ::fstat(fd, &info) == 0 && info.st_size >= 0 &&
                                     static_cast<std::uint64_t>(info.st_size) < kWindow
                                 ? static_cast<std::size_t>(info.st_size) + 4096
                                 : kWindow;
  Recovery recovery;
  Replayer replayer(*state, recovery);
  // Not a std::string: its resize() would zero every window before the read overwrites it.
  std::unique_ptr<char[]> buffer;
  std::size_t capacity = 0;
  std::size_t filled = 0;  // bytes in buffer: carried over, then read
  std::uint64_t base = 0;  // file offset of buffer[0]
  bool first = true;
  while (true) {
    if (capacity - filled < window) {
      capacity = std::max(capacity * 2, filled + window);
      auto grown = std::make_unique_for_overwrite<char[]>(capacity);
      if (filled > 0) std::memcpy(grown.get(), buffer.get(), filled);
      buffer = std::move(grown);
    }
    ssize_t n;
    do {
      n = ::read(fd, buffer.get() + filled, window);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      error = Errno("reading " + path);
      ::close(fd);
      return nullptr;
    }
    filled += static_cast<std::size_t>(n);
    const bool at_end = n == 0;
    const std::string_view bytes(buffer.get(), filled);
    const FrameScan scan = replayer.Feed(bytes, base, /*salvage=*/false, /*mapped=*/false);
    if (first && replayer.foreign() && scan.frames == 0 && !bytes.empty()) {
      error = NotAJournal(path);
      ::close(fd);
      return nullptr;
    }
    first = false;
    const std::size_t rest = filled - static_cast<std::size_t>(scan.valid_end);
    if (scan.corruption_offset || (!at_end && rest > kMaxPayload + kFrameHeaderSize)) {
      error = CorruptAt(path,
                        base + (scan.corruption_offset ? *scan.corruption_offset : scan.valid_end));
      ::close(fd);
      return nullptr;
    }
    if (at_end) break;
    std::memmove(buffer.get(), buffer.get() + scan.valid_end, rest);
    filled = rest;
    base += scan.valid_end;
  }
  ::close(fd);
  return state;
}

void Journal::Append(proto::Record record) {
  if (record.unix_time() == 0) record.set_unix_time(UnixNow());
  const std::uint64_t offset = file_bytes_ + in_flight_.size() + pending_.size();
  record.SerializeToString(&serialized_);   // reuses the buffer's capacity record after record
  state_.Apply(std::move(record), offset);  // after the encoding: it takes the record's text
  QueueSerialized();
}

void Journal::QueueSerialized() {
  AppendFrame(pending_, FrameType::kRecord, serialized_);
  ++pending_records_;
  ++records_since_compaction_;
  ++records_in_file_;
}

void Journal::Finalize(const std::string& item_id) {
  // A compact item's snapshot is a record already; an unfinished one is still changing.
  std::uint32_t index = 0;
  const proto::ItemSnapshot* item = state_.FinishedInMemory(item_id, index);
  if (item == nullptr) return;
  const std::uint64_t offset = file_bytes_ + in_flight_.size() + pending_.size();
  const std::int64_t now = UnixNow();
  // The record borrows the snapshot for its encoding instead of a copy of it (two copies and
  // their strings were half of what finishing an item cost): protobuf's unsafe_arena_* pair
  // lends a sub-message without taking it, and encoding only reads it.
  proto::Record record;
  record.set_unix_time(now);
  record.unsafe_arena_set_allocated_item_snapshot(const_cast<proto::ItemSnapshot*>(item));
  record.SerializeToString(&serialized_);
  record.unsafe_arena_release_item_snapshot();
  QueueSerialized();
  state_.ApplyOwnSnapshot(index, now, offset);  // kept compact from now on
}

bool Journal::LoadSnapshot(std::uint64_t offset, proto::ItemSnapshot& out) const {
  std::string frame;
  return FrameAt(offset, frame) && SnapshotOfFrame(frame, out);
}

bool Journal::FrameAt(std::uint64_t offset, std::string& frame) const {
  if (offset >= file_bytes_) {
    // Appended, not yet written: in the batch in flight (only read, here and by the worker), or
    // still in the queue.
    std::uint64_t at = offset - file_bytes_;
    const std::string* bytes = &in_flight_;
    if (at >= in_flight_.size()) {
      at -= in_flight_.size();
      bytes = &pending_;
    }
    if (at + kFrameHeaderSize > bytes->size()) return false;
    const std::uint32_t length =
        FramePayloadLength(std::string_view(*bytes).substr(at, kFrameHeaderSize));
    if (at + kFrameHeaderSize + length > bytes->size()) return false;
    frame.assign(*bytes, at, kFrameHeaderSize + length);
    return true;
  }
  return ReadFrameAt(read_fd_, offset, frame);
}

bool Journal::Sync(std::string& error) {
  if (batch_in_flight_) {
    error = "a journal batch is still being written";
    return false;
  }
  if (pending_.empty() && !failed_) return true;
  // A batch's write + fdatasync, made on the caller's thread.
  return EndBatch(BeginBatch()(), error);
}

std::function<int()> Journal::BeginBatch() {
  batch_in_flight_ = true;
  in_flight_.swap(pending_);
  pending_.clear();
  pending_records_ = 0;
  if (failed_) return [] { return EIO; };  // EndBatch says why
  // Less than half of the space ahead would be left after this batch: allocate it again first.
  const std::uint64_t end = file_bytes_ + in_flight_.size();
  batch_reserve_end_ =
      reserve_ != nullptr && end + kReserveAhead / 2 > reserved_end_ ? end + kReserveAhead : 0;
  batch_reserve_error_ = 0;
  return [fd = fd_, data = in_flight_.data(), size = in_flight_.size(), reserve = reserve_,
          from = file_bytes_, reserve_end = batch_reserve_end_,
          reserve_error = &batch_reserve_error_]() -> int {
    // Refused or not, the batch is written: it may fit in what is allocated already.
    if (reserve_end != 0) *reserve_error = reserve(fd, from, reserve_end - from);
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno;
      done += static_cast<std::size_t>(n);
    }
    return size == 0 || ::fdatasync(fd) == 0 ? 0 : errno;
  };
}

bool Journal::EndBatch(int result, std::string& error) {
  batch_in_flight_ = false;
  if (batch_reserve_end_ != 0) {
    switch (batch_reserve_error_) {
      case 0:
        reserved_end_ = batch_reserve_end_;
        space_error_ = 0;
        break;
      case ENOSPC:
      case EDQUOT:
      case EFBIG:
        space_error_ = batch_reserve_error_;
        break;
      default:  // EOPNOTSUPP and the like: this filesystem cannot allocate ahead
        reserve_ = nullptr;
        space_error_ = 0;
    }
    batch_reserve_end_ = 0;
  }
  if (failed_) {
    error = "the journal stopped accepting writes after an earlier error";
    in_flight_.clear();
    return false;
  }
  if (result != 0) {
    error = "writing the journal " + path_ + ": " + std::strerror(result);
    failed_ = true;  // what the batch wrote, if anything, is a torn tail for the next start
    in_flight_.clear();
    return false;
  }
  file_bytes_ += in_flight_.size();
  in_flight_.clear();
  return true;
}

bool Journal::MaybeCompact(std::string& error) {
  if (batch_in_flight_) return false;  // the next chance will do
  // Compact when the file holds at least 4x the records of the live state (and not tiny), and
  // at least twice what the last compaction wrote: the rewrite costs about the live state, and
  // growing geometrically between rewrites keeps a million-item run linear, not quadratic.
  const std::uint64_t live = state_.size() + 1;
  if (records_since_compaction_ < 10'000 || records_in_file_ < 4 * live ||
      records_in_file_ < 2 * records_after_compaction_) {
    return false;
  }
  if (Compact(error)) return true;
  // Most likely a full disk: not again until the file has doubled, rather than filling the disk
  // up to the failure at every chance (which fails the image downloads of that moment too).
  records_after_compaction_ = records_in_file_;
  return false;
}

bool Journal::Compact(std::string& error) {
  if (!Sync(error)) return false;
  const int state_fd = dir_->state_fd();
  // Streamed through a fixed buffer: one snapshot record per item, never the whole file.
  std::uint64_t records = 0;
  std::uint64_t size = 0;
  // Finished items' snapshots in the new file: they are read back from there, not kept.
  std::vector<std::pair<std::uint32_t, std::uint64_t>> new_offsets;
  {
    fs::AtomicFileWriter out(state_fd, "journal.log.compact", 0600);
    out.Write(EncodeFrame(FrameType::kHeader, kHeaderPayload));
    std::string frame;
    state_.ForEachSnapshot(
        [&](const proto::Record& record, std::optional<std::uint32_t> index) {
          const std::uint64_t offset = out.bytes_written();
          out.Write(EncodeFrame(FrameType::kRecord, record.SerializeAsString()));
          ++records;
          const auto phase = record.item_snapshot().phase();
          if (index &&
              (phase == proto::ItemSnapshot::DONE || phase == proto::ItemSnapshot::GAVE_UP)) {
            new_offsets.emplace_back(*index, offset);
          }
        },
        // A finished item's snapshot record, copied as it is (checked, not re-encoded): most of
        // a long run's items, and most of what a compaction used to cost.
        [&](std::uint64_t at, std::uint32_t index) {
          const auto payload = FrameAt(at, frame) ? RecordFrameAt(frame) : std::nullopt;
          std::int64_t unix_time = 0;
          if (!payload || !SnapshotOfRecord(*payload, unix_time)) {
            throw std::runtime_error("journal: cannot read back the snapshot of an item at byte " +
                                     std::to_string(at));
          }
          new_offsets.emplace_back(index, out.bytes_written());
          out.Write(frame);
          ++records;
        });
    size = out.bytes_written();
    // The writer renames journal.log.compact.tmp over journal.log.compact; then it replaces the
    // journal in one more rename below.
    if (!out.Commit(error)) return false;
  }
  if (::renameat(state_fd, "journal.log.compact", state_fd, "journal.log") != 0) {
    error = Errno("replacing the journal");
    ::unlinkat(state_fd, "journal.log.compact", 0);
    return false;
  }
  if (!fs::SyncDirectory(state_fd, error)) {
    failed_ = true;  // the rename may or may not survive a power cut: stop writing
    return false;
  }
  // Read back from the new file from now on; its finished items need not stay in memory.
  const int read_fd = fs::OpenFileAt(state_fd, "journal.log", O_RDONLY);
  if (read_fd < 0) {
    error = Errno("reopening the journal");
    failed_ = true;
    return false;
  }
  ::close(read_fd_);
  read_fd_ = read_fd;
  for (const auto& [index, offset] : new_offsets) state_.MakeCompactAt(index, offset);
  // Continue appending to the new file.
  ::close(fd_);
  fd_ = fs::OpenFileAt(state_fd, "journal.log", O_WRONLY);
  if (fd_ < 0 || ::lseek(fd_, 0, SEEK_END) < 0) {
    error = Errno("reopening the journal");
    failed_ = true;
    return false;
  }
  file_bytes_ = size;
  reserved_end_ = 0;  // a new file: nothing allocated ahead yet
  records_since_compaction_ = 0;
  records_in_file_ = records;
  records_after_compaction_ = records;
  return true;
}

}  // namespace nanobatch::journal
