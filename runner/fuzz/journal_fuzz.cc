// Journal recovery from arbitrary bytes, and the journal's state machine fed records in any
// order. The first byte picks how the rest is read:
//   0: a journal file's bytes, framed and checked as recovery reads them (ScanFrames, with or
//      without salvage), each good record applied;
//   1: a sequence of records (2-byte little-endian length, then a serialized proto::Record),
//      each one that parses applied: any order, any values, no checksums in the way; and each
//      one that ReadFinishedSnapshotRecord reads must parse to the same counts;
//   2: the bytes written as an output directory's journal.log, opened as `status` opens it.
// After each: no crash, and the running totals equal a recount of every item's snapshot
// (phases, credits reserved and spent, images, duplicates); rebuilt from its own compaction
// records, the state has the same totals.

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "proto/journal.pb.h"
#include "runner/fuzz/fuzz_check.h"
#include "runner/journal/finished_snapshot.h"
#include "runner/journal/frame.h"
#include "runner/journal/journal.h"
#include "runner/journal/state.h"

namespace nanobatch::fuzz {
namespace {

using journal::JournalState;
using journal::Totals;
using Phase = proto::ItemSnapshot::Phase;

Totals Recount(const JournalState& state) {
  Totals totals;
  totals.items = state.size();
  state.ForEachItem([&](const proto::ItemSnapshot& item) {
    if (item.departed()) {
      ++totals.departed;
    } else {
      switch (item.phase()) {
        case proto::ItemSnapshot::QUEUED:
          ++totals.queued;
          break;
        case proto::ItemSnapshot::INTENT:
          ++totals.intent;
          break;
        case proto::ItemSnapshot::SUBMITTED:
          ++totals.submitted;
          break;
        case proto::ItemSnapshot::COMPLETED:
          ++totals.completed;
          break;
        case proto::ItemSnapshot::DONE:
          ++totals.done;
          break;
        case proto::ItemSnapshot::GAVE_UP:
          ++totals.gave_up;
          break;
        default:
          break;
      }
    }
    if (item.phase() == proto::ItemSnapshot::INTENT ||
        item.phase() == proto::ItemSnapshot::SUBMITTED) {
      totals.credits_reserved += item.credits();
    }
    totals.credits_spent += item.credits_spent();
    totals.possible_duplicates += item.possible_duplicates();
    totals.failed_tasks += item.failed_tasks();
    totals.images += static_cast<std::uint64_t>(item.images_size());
    for (const auto& image : item.images()) totals.flagged_images += !image.mismatch().empty();
  });
  return totals;
}

// The counts of two totals agree (their times are not counts: a recount has none).
void CheckSameCounts(Totals a, const Totals& b) {
  a.first_unix_time = b.first_unix_time;
  a.last_unix_time = b.last_unix_time;
  FUZZ_CHECK(a == b);
}

void CheckInvariants(const JournalState& state) {
  const Totals& totals = state.totals();
  CheckSameCounts(totals, Recount(state));
  // Every item is in exactly one phase, or departed.
  FUZZ_CHECK(totals.queued + totals.intent + totals.submitted + totals.completed + totals.done +
                 totals.gave_up + totals.departed ==
             totals.items);
  // Compaction writes one snapshot per item (and the last RunStarted): replayed, they rebuild
  // the same state.
  JournalState rebuilt;
  state.ForEachSnapshotRecord(
      [&](const proto::Record& record, std::optional<std::uint32_t>) { rebuilt.Apply(record); });
  CheckSameCounts(totals, rebuilt.totals());
}

// Framing as recovery reads it: a header frame first, then records.
void ReplayFrames(std::string_view bytes, bool salvage) {
  JournalState state;
  proto::Record record;
  bool header_seen = false;
  journal::ScanFrames(bytes, salvage, [&](journal::FrameType type, std::string_view payload) {
    if (type == journal::FrameType::kHeader) {
      header_seen = payload == journal::kHeaderPayload;
      return header_seen;
    }
    if (!header_seen && !salvage) return false;
    if (!record.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return false;
    state.Apply(record);
    return true;
  });
  CheckInvariants(state);
}

void ApplyRecords(std::string_view bytes) {
  JournalState state;
  proto::Record record;
  while (bytes.size() >= 2) {
    const std::size_t length = static_cast<unsigned char>(bytes[0]) |
                               static_cast<std::size_t>(static_cast<unsigned char>(bytes[1])) << 8;
    bytes.remove_prefix(2);
    const std::string_view payload = bytes.substr(0, length);
    bytes.remove_prefix(payload.size());
    const bool parsed = record.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
    // What replay reads without parsing is what the parse says.
    std::int64_t unix_time = 0;
    if (const auto finished = journal::ReadFinishedSnapshotRecord(payload, unix_time)) {
      FUZZ_CHECK(parsed && record.has_item_snapshot());
      FUZZ_CHECK(*finished == journal::FinishedSnapshot::Of(record.item_snapshot()));
      FUZZ_CHECK(unix_time == record.unix_time());
    }
    if (parsed) state.Apply(record);
  }
  CheckInvariants(state);
}

// An output directory whose journal.log is rewritten for every input.
const std::string& OutputDirectory() {
  static const std::string* out = [] {
    char pattern[] = "/tmp/nanobatch-journal-fuzz.XXXXXX";
    const char* made = ::mkdtemp(pattern);
    FUZZ_CHECK(made != nullptr);
    auto* path = new std::string(made);
    // Removed at exit: the replay test runs this in the regular suite.
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(*out, ignored);
    });
    std::string error;
    // A real run creates the layout; its journal is then replaced by the input.
    FUZZ_CHECK(journal::Journal::Open(*path, {}, error) != nullptr);
    return path;
  }();
  return *out;
}

void OpenAsStatus(std::string_view bytes) {
  const std::string& out = OutputDirectory();
  {
    std::ofstream file(out + "/.nanobatch/journal.log", std::ios::binary | std::ios::trunc);
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::string error;
  auto state = journal::Journal::OpenReadOnly(out, error);
  if (state) CheckInvariants(*state);
}

}  // namespace
}  // namespace nanobatch::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0:
      nanobatch::fuzz::ReplayFrames(rest, false);
      break;
    case 1:
      nanobatch::fuzz::ApplyRecords(rest);
      break;
    case 2:
      nanobatch::fuzz::OpenAsStatus(rest);
      break;
    default:
      nanobatch::fuzz::ReplayFrames(rest, true);
      break;
  }
  return 0;
}
