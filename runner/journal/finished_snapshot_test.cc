#include "runner/journal/finished_snapshot.h"

#include <doctest/doctest.h>

#include <random>
#include <string>

namespace nanobatch::journal {
namespace {

proto::Record FinishedRecord() {
  proto::Record record;
  record.set_unix_time(1775383910);
  proto::ItemSnapshot& item = *record.mutable_item_snapshot();
  item.set_item_id("cat-001");
  item.set_prompt("a cat wearing sunglasses on a beach");
  item.set_phase(proto::ItemSnapshot::DONE);
  item.set_task_id("397ce9f2-0000-4000-8000-000000000001");
  item.add_urls("https://file.aivideoapi.ai/images/a.png");
  for (int i = 0; i < 3; ++i) {
    proto::Downloaded& image = *item.add_images();
    image.set_item_id("cat-001");
    image.set_index(static_cast<std::uint32_t>(i));
    image.set_file_name("cat-001-" + std::to_string(i) + ".png");
    image.set_bytes(123456);
    if (i == 1) image.set_mismatch("format: asked png, got jpeg");
  }
  item.set_failed_tasks(2);
  item.set_possible_duplicates(1);
  item.set_credits_spent(48);
  item.set_last_error_code("upstream_error");
  item.set_last_unix_time(1775383909);
  item.set_departed(true);
  return record;
}

// Protobuf's wire format by hand, for bytes its serializer never writes.
std::string Varint(std::uint64_t value) {
  std::string out;
  do {
    out.push_back(static_cast<char>((value & 0x7f) | (value > 0x7f ? 0x80 : 0)));
    value >>= 7;
  } while (value != 0);
  return out;
}
std::string Tag(int field, int wire_type) {
  return Varint(static_cast<std::uint64_t>(field) << 3 | static_cast<unsigned>(wire_type));
}
std::string VarintField(int field, std::uint64_t value) { return Tag(field, 0) + Varint(value); }
std::string BytesField(int field, const std::string& bytes) {
  return Tag(field, 2) + Varint(bytes.size()) + bytes;
}
std::string RecordOf(const std::string& snapshot_bytes) {
  return VarintField(1, 1775383910) + BytesField(17, snapshot_bytes);
}

// What the full parse says of `payload`, as the reader must say it (or nullopt).
std::optional<FinishedSnapshot> Parsed(const std::string& payload, proto::Record& record) {
  if (!record.ParseFromString(payload) || !record.has_item_snapshot()) return std::nullopt;
  const auto phase = record.item_snapshot().phase();
  if (phase != proto::ItemSnapshot::DONE && phase != proto::ItemSnapshot::GAVE_UP) {
    return std::nullopt;
  }
  return FinishedSnapshot::Of(record.item_snapshot());
}

TEST_CASE("finished snapshot: read from the record's bytes as the full parse reads it") {
  const proto::Record record = FinishedRecord();
  const std::string payload = record.SerializeAsString();
  std::int64_t unix_time = 0;
  const auto read = ReadFinishedSnapshotRecord(payload, unix_time);
  REQUIRE(read);
  CHECK(unix_time == 1775383910);
  CHECK(read->item_id == "cat-001");
  CHECK(read->phase == proto::ItemSnapshot::DONE);
  CHECK(read->departed);
  CHECK(read->credits_spent == 48);
  CHECK(read->possible_duplicates == 1);
  CHECK(read->failed_tasks == 2);
  CHECK(read->images == 3);
  CHECK(read->flagged_images == 1);
  CHECK(read->last_error_code == "upstream_error");
  CHECK(read->last_unix_time == 1775383909);
  CHECK(*read == FinishedSnapshot::Of(record.item_snapshot()));

  proto::Record gave_up = record;
  gave_up.mutable_item_snapshot()->set_phase(proto::ItemSnapshot::GAVE_UP);
  gave_up.clear_unix_time();
  const std::string gave_up_payload = gave_up.SerializeAsString();
  const auto read_gave_up = ReadFinishedSnapshotRecord(gave_up_payload, unix_time);
  REQUIRE(read_gave_up);
  CHECK(read_gave_up->phase == proto::ItemSnapshot::GAVE_UP);
  CHECK(unix_time == 0);
}

TEST_CASE("finished snapshot: anything but a record of one finished snapshot is left to parse") {
  std::int64_t unix_time = 0;
  for (const auto phase : {proto::ItemSnapshot::QUEUED, proto::ItemSnapshot::INTENT,
                           proto::ItemSnapshot::SUBMITTED, proto::ItemSnapshot::COMPLETED}) {
    proto::Record record = FinishedRecord();
    record.mutable_item_snapshot()->set_phase(phase);
    CHECK_FALSE(ReadFinishedSnapshotRecord(record.SerializeAsString(), unix_time));
  }
  proto::Record downloaded;
  downloaded.mutable_downloaded()->set_item_id("cat-001");
  CHECK_FALSE(ReadFinishedSnapshotRecord(downloaded.SerializeAsString(), unix_time));
  CHECK_FALSE(ReadFinishedSnapshotRecord("", unix_time));
  const std::string snapshot = FinishedRecord().item_snapshot().SerializeAsString();
  // Two snapshots in one record: protobuf merges them.
  CHECK_FALSE(ReadFinishedSnapshotRecord(RecordOf(snapshot) + BytesField(17, snapshot), unix_time));
  // A field Record does not have, before or after.
  CHECK_FALSE(ReadFinishedSnapshotRecord(VarintField(2, 7) + RecordOf(snapshot), unix_time));
  CHECK_FALSE(ReadFinishedSnapshotRecord(RecordOf(snapshot) + VarintField(30, 7), unix_time));
  // A phase this version does not know, and a phase past 32 bits.
  CHECK_FALSE(ReadFinishedSnapshotRecord(RecordOf(snapshot + VarintField(8, 9)), unix_time));
  CHECK_FALSE(
      ReadFinishedSnapshotRecord(RecordOf(snapshot + VarintField(8, (1ull << 32) + 7)), unix_time));
  // Cut short, a zero tag, an end-group tag with no group.
  const std::string whole = RecordOf(snapshot);
  for (std::size_t cut = 0; cut < whole.size(); ++cut) {
    CHECK_FALSE(ReadFinishedSnapshotRecord(whole.substr(0, cut), unix_time));
  }
  CHECK_FALSE(ReadFinishedSnapshotRecord(whole + std::string(1, '\0'), unix_time));
  CHECK_FALSE(ReadFinishedSnapshotRecord(RecordOf(snapshot + Tag(40, 4)), unix_time));
}

TEST_CASE("finished snapshot: protobuf's rules for repeated, unknown and mistyped fields") {
  const std::string base = FinishedRecord().item_snapshot().SerializeAsString();
  const std::string cases[] = {
      // The last of a repeated scalar wins.
      base + VarintField(16, 99) + BytesField(17, "internal_error") + VarintField(21, 0),
      // A known field with another wire type is an unknown field: the value stays.
      base + Tag(16, 1) + std::string(8, '\x05') + Tag(8, 2) + Varint(1) + "x",
      // Unknown fields of every wire type but groups.
      base + VarintField(99, 1) + Tag(98, 5) + "abcd" + BytesField(97, "zz") + Tag(95, 1) +
          "12345678",
      // A uint32 written as a 10-byte varint keeps its low 32 bits.
      base + VarintField(14, 0xffffffff00000003ull),
      // A mismatch cleared by a later empty one; an image that is an empty message.
      base + BytesField(13, BytesField(8, "ratio") + BytesField(8, "")) + BytesField(13, ""),
  };
  for (const std::string& snapshot : cases) {
    const std::string payload = RecordOf(snapshot);
    proto::Record record;
    const auto parsed = Parsed(payload, record);
    REQUIRE(parsed);
    std::int64_t unix_time = 0;
    const auto read = ReadFinishedSnapshotRecord(payload, unix_time);
    REQUIRE(read);
    CHECK(*read == *parsed);
    CHECK(unix_time == record.unix_time());
  }
  // A group (which nanobatch never writes) is left to protobuf, which reads it.
  const std::string grouped = RecordOf(base + Tag(96, 3) + VarintField(1, 5) + Tag(96, 4));
  proto::Record record;
  CHECK(Parsed(grouped, record));
  std::int64_t unix_time = 0;
  CHECK_FALSE(ReadFinishedSnapshotRecord(grouped, unix_time));
}

TEST_CASE("finished snapshot: damaged bytes are read as protobuf reads them, or left to it") {
  // Bit flips, cuts and spliced bytes of a real record: whatever the reader accepts, the full
  // parse accepts with the same counts.
  const std::string payload = FinishedRecord().SerializeAsString();
  std::mt19937 random(7);
  int accepted = 0;
  int agreed_refusals = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string damaged = payload;
    const int edits = 1 + static_cast<int>(random() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = random() % damaged.size();
      switch (random() % 4) {
        case 0:
          damaged[at] = static_cast<char>(damaged[at] ^ (1 << (random() % 8)));
          break;
        case 1:
          damaged[at] = static_cast<char>(random());
          break;
        case 2:
          damaged.insert(at, 1, static_cast<char>(random()));
          break;
        default:
          damaged.erase(at, 1 + random() % 4);
          if (damaged.empty()) damaged = payload;
      }
    }
    proto::Record record;
    const auto parsed = Parsed(damaged, record);
    std::int64_t unix_time = 0;
    const auto read = ReadFinishedSnapshotRecord(damaged, unix_time);
    if (read) {
      ++accepted;
      REQUIRE(parsed);
      CHECK(*read == *parsed);
      CHECK(unix_time == record.unix_time());
    } else if (!parsed) {
      ++agreed_refusals;
    }
  }
  // Both kinds of outcome occur: the loop checks something either way.
  CHECK(accepted > 100);
  CHECK(agreed_refusals > 100);
}

}  // namespace
}  // namespace nanobatch::journal
