#pragma once
// FinishedSnapshot: what the journal state keeps of a finished item (done or given up) once it is
// compact: its id and the counts the totals are made of. Read either from a parsed snapshot
// (Of), or straight from the bytes of a record that holds nothing but a finished item's snapshot
// (ReadFinishedSnapshotRecord), without building the message: replaying a journal meets one
// such record per finished item (every record, after a compaction), and parsing its prompt,
// URLs and images only to drop them was most of the replay.
//
// Example:
//   std::int64_t unix_time = 0;
//   if (auto finished = ReadFinishedSnapshotRecord(payload, unix_time)) {
//     state.ApplyFinishedSnapshot(*finished, unix_time, offset);  // nothing parsed or copied
//   } else {
//     record.ParseFromArray(...);  // any other record, and anything the reader is unsure of
//   }

#include <cstdint>
#include <optional>
#include <string_view>

#include "proto/journal.pb.h"

namespace nanobatch::journal {

struct FinishedSnapshot {
  std::string_view item_id;
  proto::ItemSnapshot::Phase phase = proto::ItemSnapshot::DONE;  // DONE or GAVE_UP
  bool departed = false;
  std::uint64_t credits_spent = 0;
  std::uint32_t possible_duplicates = 0;
  std::uint32_t failed_tasks = 0;
  std::uint32_t images = 0;
  std::uint32_t flagged_images = 0;  // images with a mismatch
  std::string_view last_error_code;
  std::int64_t last_unix_time = 0;

  // The counts of `item`, whose phase must be DONE or GAVE_UP; the views point into it.
  static FinishedSnapshot Of(const proto::ItemSnapshot& item);

  bool operator==(const FinishedSnapshot&) const = default;
};

// Images of `item` recorded with a mismatch (Downloaded.mismatch not empty): what a compact
// item counts, and what the totals count of an item in memory.
std::uint32_t FlaggedImages(const proto::ItemSnapshot& item);

// The bytes of the item snapshot that the record `payload` (a Record's serialized bytes) is made
// of, when it is exactly an optional unix_time (set into `unix_time`) and one item_snapshot; the
// snapshot itself is not read. nullopt otherwise. Compaction copies such a record as it is.
std::optional<std::string_view> SnapshotOfRecord(std::string_view payload, std::int64_t& unix_time);

// The counts of the record `payload` (a Record's serialized bytes) when it is exactly an
// optional unix_time and one item_snapshot whose phase is DONE or GAVE_UP, read as protobuf's
// own parser would read them (the last of a repeated scalar wins, a field of an unexpected wire
// type is an unknown field); `unix_time` is set to the record's. The views point into
// `payload`. nullopt for any other record, and for bytes it is not sure of (anything protobuf
// might refuse, a group): the caller parses those in full, which decides.
std::optional<FinishedSnapshot> ReadFinishedSnapshotRecord(std::string_view payload,
                                                           std::int64_t& unix_time);

}  // namespace nanobatch::journal
