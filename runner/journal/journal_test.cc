#include "runner/journal/journal.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>

#include "runner/journal/frame.h"
#include "runner/journal/test_records.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::journal {
namespace {

proto::Record Intent(const std::string& id) {
  proto::Record r;
  r.mutable_submit_intent()->set_item_id(id);
  r.mutable_submit_intent()->set_credits(16);
  r.mutable_submit_intent()->set_attempt(1);
  return r;
}

proto::Record Submitted(const std::string& id) {
  proto::Record r;
  r.mutable_submitted()->set_item_id(id);
  r.mutable_submitted()->set_task_id("task-" + id);
  r.mutable_submitted()->set_credits(16);
  return r;
}

constexpr std::string_view kJournalFile = ".nanobatch/journal.log";

std::string JournalPath(const testing::TempDir& dir) { return dir.File(kJournalFile); }

TEST_CASE("journal: records survive a reopen") {
  testing::TempDir dir;
  std::string error;
  {
    auto journal = Journal::Open(dir.path(), {}, error);
    REQUIRE_MESSAGE(journal, error);
    journal->Append(Intent("a"));
    journal->Append(Submitted("a"));
    journal->Append(Intent("b"));
    CHECK(journal->pending_records() == 3);
    REQUIRE(journal->Sync(error));
    CHECK(journal->state().totals().submitted == 1);
  }
  auto reopened = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(reopened, error);
  CHECK(reopened->recovery().records == 3);
  CHECK(reopened->state().Find("a")->task_id() == "task-a");
  CHECK(reopened->state().totals().intent == 1);
  CHECK(reopened->recovery().warnings.empty());
}

TEST_CASE("journal: a second runner on the same directory is refused") {
  testing::TempDir dir;
  std::string error;
  auto first = Journal::Open(dir.path(), {}, error);
  REQUIRE(first);
  auto second = Journal::Open(dir.path(), {}, error);
  CHECK_FALSE(second);
  CHECK(error.find("another nanobatch run is using") != std::string::npos);
  // status reads without the lock.
  auto state = Journal::OpenReadOnly(dir.path(), error);
  CHECK(state);
}

TEST_CASE("journal: a torn tail is truncated with a warning at every cut of the last record") {
  testing::TempDir dir;
  std::string error;
  {
    auto journal = Journal::Open(dir.path(), {}, error);
    journal->Append(Intent("a"));
    journal->Append(Submitted("a"));
    REQUIRE(journal->Sync(error));
  }
  const std::string full = dir.Read(".nanobatch/journal.log");
  proto::Record last = Submitted("a");
  for (std::size_t cut = 1; cut < 20; ++cut) {
    std::ofstream(JournalPath(dir), std::ios::binary | std::ios::trunc)
        .write(full.data(), static_cast<std::streamsize>(full.size() - cut));
    auto journal = Journal::Open(dir.path(), {}, error);
    REQUIRE_MESSAGE(journal, error);
    CHECK(journal->state().totals().intent == 1);  // the Submitted record was torn
    REQUIRE(journal->recovery().warnings.size() == 1);
    CHECK(journal->recovery().warnings[0].find("torn tail") != std::string::npos);
    // The file was cut back to its last whole record, and appending works after it.
    journal->Append(Submitted("a"));
    REQUIRE(journal->Sync(error));
  }
  auto final_state = Journal::OpenReadOnly(dir.path(), error);
  CHECK(final_state->totals().submitted == 1);
}

TEST_CASE("journal: corruption in the middle is refused, then salvaged on request") {
  testing::TempDir dir;
  std::string error;
  {
    auto journal = Journal::Open(dir.path(), {}, error);
    for (const char* id : {"a", "b", "c"}) journal->Append(Intent(id));
    REQUIRE(journal->Sync(error));
  }
  std::string bytes = dir.Read(".nanobatch/journal.log");
  const std::size_t header = EncodeFrame(FrameType::kHeader, kHeaderPayload).size();
  bytes[header + kFrameHeaderSize + 2] ^= 0x10;  // inside the first record's payload
  std::ofstream(JournalPath(dir), std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  CHECK_FALSE(Journal::Open(dir.path(), {}, error));
  CHECK(error.find("corrupt at byte " + std::to_string(header)) != std::string::npos);
  CHECK(dir.Read(".nanobatch/journal.log") == bytes);  // nothing changed

  auto salvaged = Journal::Open(dir.path(), {.salvage = true}, error);
  REQUIRE_MESSAGE(salvaged, error);
  CHECK(salvaged->state().totals().items == 2);
  CHECK(salvaged->recovery().compacted);
  salvaged.reset();
  // The rewritten journal is clean again.
  auto clean = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(clean, error);
  CHECK(clean->state().totals().items == 2);
}

TEST_CASE("journal: a snapshot with a phase this version does not know is a bad frame") {
  // Its checksum holds, so only its content can tell: applied, the item would be in no phase,
  // never counted and never resumed (found by the journal fuzzer).
  testing::TempDir dir;
  std::string error;
  {
    auto journal = Journal::Open(dir.path(), {}, error);
    journal->Append(Intent("a"));
    REQUIRE(journal->Sync(error));
  }
  proto::Record odd;
  odd.mutable_item_snapshot()->set_item_id("b");
  odd.mutable_item_snapshot()->set_phase(static_cast<proto::ItemSnapshot::Phase>(17));
  std::string bytes = dir.Read(".nanobatch/journal.log") +
                      EncodeFrame(FrameType::kRecord, odd.SerializeAsString()) +
                      EncodeFrame(FrameType::kRecord, Intent("c").SerializeAsString());
  std::ofstream(JournalPath(dir), std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  CHECK_FALSE(Journal::Open(dir.path(), {}, error));
  CHECK(error.find("corrupt at byte") != std::string::npos);
  auto salvaged = Journal::Open(dir.path(), {.salvage = true}, error);
  REQUIRE_MESSAGE(salvaged, error);
  CHECK(salvaged->state().totals().items == 2);  // a and c
  CHECK(salvaged->state().Find("b") == nullptr);

  JournalState state;
  state.Apply(odd);
  CHECK(state.size() == 0);
  CHECK_FALSE(JournalState::IsWellFormed(odd));
  CHECK(JournalState::IsWellFormed(Intent("x")));
}

TEST_CASE("journal: compaction keeps the state and shrinks the file") {
  testing::TempDir dir;
  std::string error;
  auto journal = Journal::Open(dir.path(), {}, error);
  for (int round = 0; round < 50; ++round) {
    journal->Append(Intent("a"));
    proto::Record failed;
    failed.mutable_task_failed()->set_item_id("a");
    failed.mutable_task_failed()->set_task_id("t");
    journal->Append(failed);
  }
  journal->Append(Intent("a"));
  journal->Append(Submitted("a"));
  REQUIRE(journal->Sync(error));
  const std::uint64_t before = journal->file_bytes();
  REQUIRE(journal->Compact(error));
  CHECK(journal->file_bytes() < before / 5);
  journal->Append(Intent("b"));
  REQUIRE(journal->Sync(error));
  journal.reset();
  auto reopened = Journal::Open(dir.path(), {}, error);
  REQUIRE(reopened);
  CHECK(reopened->state().Find("a")->failed_tasks() == 50);
  CHECK(reopened->state().Find("a")->task_id() == "task-a");
  CHECK(reopened->state().totals().items == 2);
  CHECK_FALSE(std::filesystem::exists(JournalPath(dir) + ".compact"));
}

TEST_CASE("journal: leftover temporary downloads are removed on open") {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() + "/.nanobatch/tmp");
  dir.Write(".nanobatch/tmp/a-0.part", "half an image");
  std::string error;
  auto journal = Journal::Open(dir.path(), {}, error);
  REQUIRE(journal);
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/.nanobatch/tmp/a-0.part"));
}

TEST_CASE("journal: a file that is not a journal is refused") {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() + "/.nanobatch");
  dir.Write(".nanobatch/journal.log", std::string(100, 'z') + EncodeFrame(FrameType::kRecord, "x"));
  std::string error;
  CHECK_FALSE(Journal::Open(dir.path(), {}, error));
  CHECK_FALSE(error.empty());
}

}  // namespace
}  // namespace nanobatch::journal

namespace nanobatch::journal {
namespace {

TEST_CASE(
    "journal: finished items are kept compact and read back whole, across reopen and compaction") {
  testing::TempDir dir;
  std::string error;
  Totals before;
  {
    auto journal = Journal::Open(dir.path(), {}, error);
    REQUIRE_MESSAGE(journal, error);
    for (const char* id : {"a", "b", "c"}) {
      AppendFinishedItem(*journal, id);
      journal->Finalize(id);
    }
    journal->Append(Intent("open"));  // not finished: stays in memory
    journal->Finalize("open");        // no effect
    CHECK(journal->state().compact_items() == 3);
    CHECK(journal->state().recent_done_times().size() == 3);  // finalizing is not done anew
    // Read back before the records are even synced (from the queue), then from the file.
    REQUIRE(journal->state().Find("b") != nullptr);
    CHECK(journal->state().Find("b")->prompt() == "a long prompt for b");
    REQUIRE(journal->Sync(error));
    CHECK(journal->state().Find("c")->images(0).file_name() == "c.png");
    // Each finished item's last record is its whole snapshot, stamped with the time.
    std::map<std::string, proto::Record> last_snapshot;
    ScanFrames(dir.Read(kJournalFile), false, [&](FrameType type, std::string_view payload) {
      proto::Record record;
      if (type == FrameType::kRecord &&
          record.ParseFromArray(payload.data(), static_cast<int>(payload.size())) &&
          record.has_item_snapshot()) {
        last_snapshot[record.item_snapshot().item_id()] = record;
      }
      return true;
    });
    CHECK(last_snapshot.size() == 3);
    for (const auto& entry : last_snapshot) {
      const proto::Record& record = entry.second;
      const proto::ItemSnapshot* item = journal->state().Find(entry.first);
      REQUIRE(item != nullptr);
      CHECK(record.item_snapshot().SerializeAsString() == item->SerializeAsString());
      CHECK(record.unix_time() > 0);
    }
    CHECK(journal->state().totals().done == 3);
    CHECK(journal->state().totals().images == 3);
    before = journal->state().totals();
    // A flag on a compact item changes without reading it back, and is seen when read back.
    proto::Record departed;
    departed.mutable_item_departed()->set_item_id("a");
    journal->Append(departed);
    CHECK(journal->state().compact_items() == 3);
    CHECK(journal->state().Find("a")->departed());
    CHECK(journal->state().totals().departed == 1);
    REQUIRE(journal->Sync(error));
  }
  {
    auto reopened = Journal::Open(dir.path(), {}, error);
    REQUIRE_MESSAGE(reopened, error);
    const JournalState& state = reopened->state();
    CHECK(state.compact_items() == 3);
    CHECK(state.recent_done_times().size() == 3);  // replayed: each item done once
    CHECK(state.totals().done == 2);
    CHECK(state.totals().departed == 1);
    CHECK(state.totals().credits_spent == before.credits_spent);
    CHECK(state.Find("a")->departed());
    CHECK(state.Find("a")->prompt() == "a long prompt for a");
    // A record for a compact item brings it back into memory with everything it had.
    proto::Record again;
    again.mutable_completed()->set_item_id("b");
    again.mutable_completed()->add_urls("https://f.example/b-again.png");
    reopened->Append(again);
    CHECK(state.compact_items() == 2);
    CHECK(state.Find("b")->prompt() == "a long prompt for b");
    CHECK(state.Find("b")->phase() == proto::ItemSnapshot::COMPLETED);
    // Compaction writes every item once and keeps the finished ones compact at their new place.
    REQUIRE(reopened->Compact(error));
    CHECK(state.compact_items() == 2);
    CHECK(state.Find("c")->prompt() == "a long prompt for c");
    CHECK(state.Find("b")->urls(0) == "https://f.example/b-again.png");
  }
  auto last = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(last, error);
  CHECK(last->recovery().records == 4);  // one snapshot per item (no run was recorded)
  CHECK(last->state().compact_items() == 2);
  CHECK(last->state().Find("a")->departed());
  CHECK(last->state().Find("c")->images(0).bytes() == 1234);
  // status reads the same totals without the lock; its compact items read back from its own
  // descriptor of the file (found by the journal fuzzer: they threw, having no loader).
  auto read_only = Journal::OpenReadOnly(dir.path(), error);
  REQUIRE(read_only);
  CHECK(read_only->totals().done == last->state().totals().done);
  CHECK(read_only->totals().departed == 1);
  CHECK(read_only->compact_items() == 2);
  REQUIRE(read_only->Find("c") != nullptr);
  CHECK(read_only->Find("c")->prompt() == "a long prompt for c");
  int items = 0;
  read_only->ForEachItem([&](const proto::ItemSnapshot&) { ++items; });
  CHECK(items == 4);  // a, b, c and the open one
  // A compaction by a live run replaces the file; the reader keeps the one it read.
  REQUIRE(last->Compact(error));
  CHECK(read_only->Find("a")->departed());
}

}  // namespace
}  // namespace nanobatch::journal

namespace nanobatch::journal {
namespace {

TEST_CASE(
    "journal: status reads a large journal in windows: torn tail tolerated, corruption named") {
  testing::TempDir dir;
  std::string error;
  constexpr int kItems = 12'000;  // about 4 MB: several 1 MiB windows
  {
    auto journal = Journal::Open(dir.path(), {}, error);
    REQUIRE_MESSAGE(journal, error);
    for (int i = 0; i < kItems; ++i) {
      proto::Record intent = Intent("item-" + std::to_string(i));
      // One record longer than three windows, carried over until it is whole.
      intent.mutable_submit_intent()->set_prompt(std::string(i == kItems / 3 ? 3 << 20 : 300, 'p'));
      journal->Append(intent);
    }
    REQUIRE(journal->Sync(error));
  }
  const auto size = std::filesystem::file_size(JournalPath(dir));
  REQUIRE(size > (6u << 20));
  {
    std::ofstream tail(JournalPath(dir), std::ios::binary | std::ios::app);
    tail << std::string("\x40\x00\x00\x00half a frame", 16);  // a run mid-append
  }
  auto state = Journal::OpenReadOnly(dir.path(), error);
  REQUIRE_MESSAGE(state, error);
  CHECK(state->totals().items == kItems);
  CHECK(state->totals().intent == kItems);
  CHECK(state->Find("item-" + std::to_string(kItems / 3))->prompt().size() == (3u << 20));
  CHECK(state->Find("item-" + std::to_string(kItems - 1))->prompt().size() == 300);
  // A flipped byte in the middle, with good records after it: named, not skipped.
  {
    std::fstream file(JournalPath(dir), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(size / 2));
    file.put('\x01');
  }
  CHECK_FALSE(Journal::OpenReadOnly(dir.path(), error));
  CHECK(error.find("is corrupt at byte") != std::string::npos);
}

}  // namespace
}  // namespace nanobatch::journal

namespace nanobatch::journal {
namespace {

TEST_CASE("journal: a batch in flight keeps order, serves reads, and holds back what came after") {
  testing::TempDir dir;
  std::string error;
  {
    auto journal = Journal::Open(dir.path(), {}, error);
    REQUIRE_MESSAGE(journal, error);
    AppendFinishedItem(*journal, "a");
    journal->Finalize("a");  // its snapshot is in the batch below
    REQUIRE(journal->pending_records() > 0);
    std::function<int()> write = journal->BeginBatch();
    CHECK(journal->batch_in_flight());
    CHECK(journal->pending_records() == 0);
    // Appended while the batch is on its way: queued for the next one, offsets after it.
    journal->Append(Intent("b"));
    AppendFinishedItem(*journal, "c");
    journal->Finalize("c");
    CHECK(journal->pending_records() > 0);
    // Compact items are read back from the batch in flight and from the queue.
    CHECK(journal->state().Find("a")->prompt() == "a long prompt for a");
    CHECK(journal->state().Find("c")->prompt() == "a long prompt for c");
    // Nothing synchronous may cut in while the batch is out.
    CHECK_FALSE(journal->Sync(error));
    CHECK_FALSE(journal->MaybeCompact(error));
    CHECK(write() == 0);  // the worker's half: write + fdatasync
    REQUIRE(journal->EndBatch(0, error));
    CHECK(journal->state().Find("a")->prompt() == "a long prompt for a");  // now from the file
    std::function<int()> second = journal->BeginBatch();
    CHECK(second() == 0);
    REQUIRE(journal->EndBatch(0, error));
    CHECK(journal->state().Find("c")->prompt() == "a long prompt for c");
    CHECK(std::filesystem::file_size(JournalPath(dir)) == journal->file_bytes());
  }
  auto reopened = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(reopened, error);
  CHECK(reopened->state().totals().done == 2);
  CHECK(reopened->state().totals().intent == 1);
  CHECK(reopened->state().Find("c")->images(0).file_name() == "c.png");
}

TEST_CASE("journal: a failed batch stops the journal, and the next start drops its torn tail") {
  testing::TempDir dir;
  std::string error;
  {
    auto journal = Journal::Open(dir.path(), {}, error);
    REQUIRE_MESSAGE(journal, error);
    journal->Append(Intent("a"));
    REQUIRE(journal->Sync(error));
    journal->Append(Intent("b"));
    journal->BeginBatch();  // the worker's call never ran: the disk refused
    CHECK_FALSE(journal->EndBatch(ENOSPC, error));
    CHECK(error.find("No space left") != std::string::npos);
    CHECK(journal->failed());
    journal->Append(Intent("c"));
    journal->BeginBatch();
    CHECK_FALSE(journal->EndBatch(0, error));  // stays failed: a hole cannot be hidden
  }
  auto reopened = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(reopened, error);
  CHECK(reopened->state().totals().intent == 1);
  CHECK(reopened->state().Find("b") == nullptr);
}

}  // namespace
}  // namespace nanobatch::journal

namespace nanobatch::journal {
namespace {

TEST_CASE(
    "journal: compaction copies a finished item's record as it is, and refuses a damaged one") {
  testing::TempDir dir;
  std::string error;
  auto journal = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(journal, error);
  AppendFinishedItem(*journal, "a");
  // "a"'s snapshot record, written as Finalize does but with a time of its own: re-encoding the
  // snapshot would give the record the snapshot's time, so only a copy keeps these bytes.
  proto::Record snapshot;
  *snapshot.mutable_item_snapshot() = *journal->state().Find("a");
  snapshot.set_unix_time(1'000'000'123);
  journal->Append(snapshot);
  AppendFinishedItem(*journal, "b");
  journal->Finalize("b");
  REQUIRE(journal->Sync(error));
  // That record as a whole frame.
  const std::string before = dir.Read(kJournalFile);
  std::string a_frame;
  ScanFrames(before, false, [&](FrameType type, std::string_view payload) {
    proto::Record record;
    if (type == FrameType::kRecord &&
        record.ParseFromArray(payload.data(), static_cast<int>(payload.size())) &&
        record.has_item_snapshot() && record.item_snapshot().item_id() == "a") {
      a_frame = EncodeFrame(type, payload);
    }
    return true;
  });
  REQUIRE_FALSE(a_frame.empty());
  // Compacted twice: the frame travels byte for byte (the second time from the compacted file).
  REQUIRE(journal->Compact(error));
  REQUIRE(journal->Compact(error));
  const std::string after = dir.Read(kJournalFile);
  CHECK(after.find(a_frame) != std::string::npos);
  CHECK(after.size() < before.size());
  CHECK(journal->state().compact_items() == 2);
  CHECK(journal->state().Find("a")->images(0).file_name() == "a.png");
  journal.reset();

  auto reopened = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(reopened, error);
  CHECK(reopened->recovery().records == 2);
  CHECK(reopened->state().Find("b")->prompt() == "a long prompt for b");
  CHECK(reopened->state().totals().done == 2);
  reopened.reset();

  // A bit of "a"'s snapshot flipped on disk after it was read (its frame is at the same place):
  // the next compaction stops on it rather than copy it on, and the journal is left as it was.
  const std::string good = dir.Read(kJournalFile);
  auto third = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(third, error);
  const std::size_t at = good.find(a_frame);
  REQUIRE(at != std::string::npos);
  {
    std::fstream file(JournalPath(dir), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(at + a_frame.size() - 3));
    file.put(static_cast<char>(a_frame[a_frame.size() - 3] ^ 0x20));
  }
  CHECK_THROWS_WITH_AS(third->Compact(error), doctest::Contains("cannot read back the snapshot"),
                       std::runtime_error);
  std::string damaged = good;
  damaged[at + a_frame.size() - 3] ^= 0x20;
  CHECK(dir.Read(kJournalFile) == damaged);
}

}  // namespace
}  // namespace nanobatch::journal

namespace nanobatch::journal {
namespace {

TEST_CASE("journal: a finished item's record longer than one read comes back whole") {
  testing::TempDir dir;
  std::string error;
  const std::string prompt(20'000, 'p');  // the longest prompt a manifest admits, in bytes
  {
    auto journal = Journal::Open(dir.path(), {}, error);
    REQUIRE_MESSAGE(journal, error);
    AppendFinishedItem(*journal, "short");
    journal->Finalize("short");
    AppendFinishedItem(*journal, "long");
    proto::Record again;  // the same intent, with the long prompt
    again.mutable_submit_intent()->set_item_id("long");
    again.mutable_submit_intent()->set_attempt(2);
    again.mutable_submit_intent()->set_prompt(prompt);
    journal->Append(again);
    AppendFinishedItem(*journal, "after");
    journal->Finalize("after");
    REQUIRE(journal->Sync(error));
  }
  auto reopened = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(reopened, error);
  proto::Record done;
  done.mutable_submitted()->set_item_id("long");
  done.mutable_submitted()->set_task_id("task-long-2");
  reopened->Append(done);
  proto::Record completed;
  completed.mutable_completed()->set_item_id("long");
  completed.mutable_completed()->add_urls("https://f.example/long-2.png");
  reopened->Append(completed);
  proto::Record downloaded;
  downloaded.mutable_downloaded()->set_item_id("long");
  downloaded.mutable_downloaded()->set_file_name("long.png");
  reopened->Append(downloaded);
  reopened->Finalize("long");
  REQUIRE(reopened->Sync(error));
  REQUIRE(reopened->Compact(error));  // reads every compact record back, then the file is new
  const JournalState& state = reopened->state();
  CHECK(state.compact_items() == 3);
  REQUIRE(state.Find("long") != nullptr);
  CHECK(state.Find("long")->prompt() == prompt);
  CHECK(state.Find("short")->prompt() == "a long prompt for short");
  CHECK(state.Find("after")->prompt() == "a long prompt for after");
}

// A disk whose allocations ahead answer `answer` (0, ENOSPC, EOPNOTSUPP), counted; the journal
// takes a plain function, so the fake's state is the test file's.
struct FakeDisk {
  static inline int answer = 0;
  static inline int calls = 0;
  static inline std::uint64_t last_end = 0;
  static int Reserve(int /*fd*/, std::uint64_t offset, std::uint64_t length) {
    ++calls;
    last_end = offset + length;
    return answer;
  }
  explicit FakeDisk(int answer_) {
    answer = answer_;
    calls = 0;
    last_end = 0;
  }
};

// An intent about `bytes` long on disk.
proto::Record LongIntent(const std::string& id, std::size_t bytes) {
  proto::Record record = Intent(id);
  record.mutable_submit_intent()->set_prompt(std::string(bytes, 'p'));
  return record;
}

TEST_CASE(
    "journal: space is allocated ahead of its end, the file's size unchanged, and given back at "
    "the end") {
  testing::TempDir dir;
  std::string error;
  // Whether this filesystem allocates ahead at all (tmpfs, ext4 and XFS do).
  const int probe = ::open(dir.File("probe").c_str(), O_WRONLY | O_CREAT, 0600);
  REQUIRE(probe >= 0);
  const int probed = FallocateKeepSize(probe, 0, 1 << 20);
  ::close(probe);
  auto journal = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(journal, error);
  journal->Append(Intent("a"));
  REQUIRE(journal->Sync(error));
  CHECK(journal->space_error() == 0);
  struct stat file {};
  REQUIRE(::stat(JournalPath(dir).c_str(), &file) == 0);
  CHECK(static_cast<std::uint64_t>(file.st_size) == journal->file_bytes());
  if (probed == 0) {
    CHECK(static_cast<std::uint64_t>(file.st_blocks) * 512 >=
          journal->file_bytes() + Journal::kReserveAhead);
    // Given back when the journal closes.
    const std::uint64_t bytes = journal->file_bytes();
    journal.reset();
    REQUIRE(::stat(JournalPath(dir).c_str(), &file) == 0);
    CHECK(static_cast<std::uint64_t>(file.st_size) == bytes);
    CHECK(static_cast<std::uint64_t>(file.st_blocks) * 512 < bytes + (64 << 10));
  } else {
    MESSAGE("this filesystem does not allocate ahead: " << std::strerror(probed));
  }
}

TEST_CASE("journal: a disk too full to allocate ahead is reported, and records still go in") {
  testing::TempDir dir;
  std::string error;
  {
    FakeDisk full(ENOSPC);
    auto journal = Journal::Open(dir.path(), {.reserve = FakeDisk::Reserve}, error);
    REQUIRE_MESSAGE(journal, error);
    CHECK(FakeDisk::calls == 1);  // the header's batch asked
    CHECK(journal->space_error() == ENOSPC);
    journal->Append(Intent("a"));
    journal->Append(Submitted("a"));
    REQUIRE(journal->Sync(error));  // what is allocated already takes it
    CHECK(FakeDisk::calls == 2);    // and asks again with every batch
    CHECK(journal->space_error() == ENOSPC);
    FakeDisk::answer = 0;  // space freed
    journal->Append(Intent("b"));
    REQUIRE(journal->Sync(error));
    CHECK(journal->space_error() == 0);
    CHECK(FakeDisk::last_end == journal->file_bytes() + Journal::kReserveAhead);
  }
  FakeDisk room(0);
  auto reopened = Journal::Open(dir.path(), {.reserve = FakeDisk::Reserve}, error);
  REQUIRE_MESSAGE(reopened, error);
  CHECK(reopened->state().Find("a")->task_id() == "task-a");
  CHECK(reopened->state().totals().intent == 1);
}

TEST_CASE("journal: space ahead is renewed once half of it is used, and never where unsupported") {
  testing::TempDir dir;
  std::string error;
  constexpr std::size_t kRecordBytes = 64 << 10;
  const std::size_t half = Journal::kReserveAhead / 2 / kRecordBytes;
  {
    FakeDisk disk(0);
    auto journal = Journal::Open(dir.path(), {.reserve = FakeDisk::Reserve}, error);
    REQUIRE_MESSAGE(journal, error);
    REQUIRE(FakeDisk::calls == 1);
    const std::uint64_t first_end = FakeDisk::last_end;
    // Up to just under half of the space ahead: no renewal.
    for (std::size_t i = 0; i + 1 < half; ++i) {
      journal->Append(LongIntent("a" + std::to_string(i), kRecordBytes - 64));
      REQUIRE(journal->Sync(error));
    }
    CHECK(FakeDisk::calls == 1);
    // Past it: allocated again, to kReserveAhead past the new end.
    journal->Append(LongIntent("b", kRecordBytes));
    journal->Append(LongIntent("c", kRecordBytes));
    REQUIRE(journal->Sync(error));
    CHECK(FakeDisk::calls == 2);
    CHECK(FakeDisk::last_end == journal->file_bytes() + Journal::kReserveAhead);
    CHECK(FakeDisk::last_end > first_end);
  }
  testing::TempDir other;
  FakeDisk unsupported(EOPNOTSUPP);
  auto journal = Journal::Open(other.path(), {.reserve = FakeDisk::Reserve}, error);
  REQUIRE_MESSAGE(journal, error);
  CHECK(FakeDisk::calls == 1);
  for (std::size_t i = 0; i < 3 * half; ++i) {
    journal->Append(LongIntent("d" + std::to_string(i), kRecordBytes));
    REQUIRE(journal->Sync(error));
  }
  CHECK(FakeDisk::calls == 1);  // asked once, then appends as before
  CHECK(journal->space_error() == 0);
}

TEST_CASE("journal: a failed compaction is not tried again until the file has doubled") {
  testing::TempDir dir;
  std::string error;
  auto journal = Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(journal, error);
  const auto append = [&](int records) {
    for (int i = 0; i < records; ++i) journal->Append(Intent("a" + std::to_string(i % 4)));
    REQUIRE(journal->Sync(error));
  };
  append(12'000);  // 4 items: far more records than the live state
  // The compaction's temporary file cannot be created (as on a full disk).
  std::filesystem::create_directory(dir.File(".nanobatch/journal.log.compact.tmp"));
  CHECK_FALSE(journal->MaybeCompact(error));
  CHECK(error.find("journal.log.compact.tmp") != std::string::npos);
  error.clear();
  std::filesystem::remove(dir.File(".nanobatch/journal.log.compact.tmp"));
  append(10'000);  // not yet twice the 12,001 records of the failed attempt
  CHECK_FALSE(journal->MaybeCompact(error));
  CHECK(error.empty());  // not attempted
  append(3'000);
  CHECK(journal->MaybeCompact(error));
  CHECK(journal->file_bytes() < 1'000);
  CHECK(journal->state().totals().intent == 4);
}

}  // namespace
}  // namespace nanobatch::journal
