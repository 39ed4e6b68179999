#include "runner/journal/finished_snapshot.h"

#include <cstddef>

namespace nanobatch::journal {
namespace {

// Protobuf's wire format, read field by field. Only what is certain is read: a group (which
// nanobatch never writes), a tag past 32 bits or a field number 0 makes the whole read
// unsure, and the caller leaves the record to protobuf's own parser. A field not taken is
// skipped as protobuf's parser skips an unknown field (a varint of at most 10 bytes, a length
// within the message). protobuf's CodedInputStream did the same at twice the instructions.
class WireReader {
 public:
  enum WireType { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

  explicit WireReader(std::string_view bytes)
      : at_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool AtEnd() const { return at_ == end_; }

  // The next field's number and wire type; false when none can be read with certainty.
  bool Next(int& field, int& wire_type) {
    std::uint64_t tag = 0;
    const char* start = at_;
    if (!Varint(tag) || at_ - start > 5 || tag > 0xffffffffu) return false;
    field = static_cast<int>(tag >> 3);
    wire_type = static_cast<int>(tag & 7);
    return field != 0;
  }

  bool Varint(std::uint64_t& value) {
    std::uint64_t result = 0;
    for (int shift = 0; shift < 70; shift += 7) {  // at most 10 bytes
      if (at_ == end_) return false;
      const auto byte = static_cast<std::uint8_t>(*at_++);
      result |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        value = result;
        return true;
      }
    }
    return false;
  }
  // protobuf's uint32 fields keep the low 32 bits of a longer varint.
  bool Varint32(std::uint32_t& value) {
    std::uint64_t wide = 0;
    if (!Varint(wide)) return false;
    value = static_cast<std::uint32_t>(wide);
    return true;
  }
  bool Bytes(std::string_view& value) {
    std::uint64_t length = 0;
    if (!Varint(length) || length > static_cast<std::uint64_t>(end_ - at_)) return false;
    value = std::string_view(at_, static_cast<std::size_t>(length));
    at_ += length;
    return true;
  }
  bool Skip(int wire_type) {
    std::uint64_t ignored = 0;
    std::string_view bytes;
    switch (wire_type) {
      case kVarint:
        return Varint(ignored);
      case kBytes:
        return Bytes(bytes);
      case kFixed64:
        return Advance(8);
      case kFixed32:
        return Advance(4);
      default:
        return false;  // a group, or no wire type at all
    }
  }

 private:
  bool Advance(std::ptrdiff_t bytes) {
    if (end_ - at_ < bytes) return false;
    at_ += bytes;
    return true;
  }

  const char* at_;
  const char* end_;
};

// Whether a Downloaded message carries a mismatch (its last one not empty); false if unsure.
bool ReadImage(std::string_view bytes, bool& flagged) {
  WireReader image(bytes);
  std::string_view mismatch;
  int field = 0;
  int wire_type = 0;
  while (!image.AtEnd()) {
    if (!image.Next(field, wire_type)) return false;
    const bool read =
        field == proto::Downloaded::kMismatchFieldNumber && wire_type == WireReader::kBytes
            ? image.Bytes(mismatch)
            : image.Skip(wire_type);
    if (!read) return false;
  }
  flagged = !mismatch.empty();
  return true;
}

bool ReadSnapshot(std::string_view bytes, FinishedSnapshot& out) {
  using S = proto::ItemSnapshot;
  WireReader snapshot(bytes);
  std::uint64_t phase = 0;
  std::uint64_t value = 0;
  int field = 0;
  int wire_type = 0;
  while (!snapshot.AtEnd()) {
    if (!snapshot.Next(field, wire_type)) return false;
    const bool varint = wire_type == WireReader::kVarint;
    const bool bytes_field = wire_type == WireReader::kBytes;
    bool read = true;
    if (field == S::kItemIdFieldNumber && bytes_field) {
      read = snapshot.Bytes(out.item_id);
    } else if (field == S::kPhaseFieldNumber && varint) {
      read = snapshot.Varint(phase);
    } else if (field == S::kImagesFieldNumber && bytes_field) {
      std::string_view image;
      bool flagged = false;
      read = snapshot.Bytes(image) && ReadImage(image, flagged);
      ++out.images;
      out.flagged_images += flagged ? 1 : 0;
    } else if (field == S::kFailedTasksFieldNumber && varint) {
      read = snapshot.Varint32(out.failed_tasks);
    } else if (field == S::kPossibleDuplicatesFieldNumber && varint) {
      read = snapshot.Varint32(out.possible_duplicates);
    } else if (field == S::kCreditsSpentFieldNumber && varint) {
      read = snapshot.Varint(out.credits_spent);
    } else if (field == S::kLastErrorCodeFieldNumber && bytes_field) {
      read = snapshot.Bytes(out.last_error_code);
    } else if (field == S::kLastUnixTimeFieldNumber && varint) {
      read = snapshot.Varint(value);
      out.last_unix_time = static_cast<std::int64_t>(value);
    } else if (field == S::kDepartedFieldNumber && varint) {
      read = snapshot.Varint(value);
      out.departed = value != 0;
    } else {
      read = snapshot.Skip(wire_type);
    }
    if (!read) return false;
  }
  // An enum is the low 32 bits of its varint, as protobuf reads it.
  const int phase_number = static_cast<int>(static_cast<std::uint32_t>(phase));
  if (phase_number != S::DONE && phase_number != S::GAVE_UP) return false;
  out.phase = static_cast<S::Phase>(phase_number);
  return true;
}

}  // namespace

std::uint32_t FlaggedImages(const proto::ItemSnapshot& item) {
  std::uint32_t flagged = 0;
  for (const proto::Downloaded& image : item.images()) flagged += image.mismatch().empty() ? 0 : 1;
  return flagged;
}

FinishedSnapshot FinishedSnapshot::Of(const proto::ItemSnapshot& item) {
  FinishedSnapshot out;
  out.item_id = item.item_id();
  out.phase = item.phase();
  out.departed = item.departed();
  out.credits_spent = item.credits_spent();
  out.possible_duplicates = item.possible_duplicates();
  out.failed_tasks = item.failed_tasks();
  out.images = static_cast<std::uint32_t>(item.images_size());
  out.flagged_images = FlaggedImages(item);
  out.last_error_code = item.last_error_code();
  out.last_unix_time = item.last_unix_time();
  return out;
}

std::optional<std::string_view> SnapshotOfRecord(std::string_view payload,
                                                 std::int64_t& unix_time) {
  WireReader record(payload);
  std::optional<std::string_view> snapshot;
  std::uint64_t time = 0;
  int field = 0;
  int wire_type = 0;
  while (!record.AtEnd()) {
    if (!record.Next(field, wire_type)) return std::nullopt;
    if (field == proto::Record::kUnixTimeFieldNumber && wire_type == WireReader::kVarint) {
      if (!record.Varint(time)) return std::nullopt;
    } else if (field == proto::Record::kItemSnapshotFieldNumber &&
               wire_type == WireReader::kBytes && !snapshot) {
      std::string_view bytes;
      if (!record.Bytes(bytes)) return std::nullopt;
      snapshot = bytes;
    } else {
      // Another event, a second snapshot (protobuf would merge the two) or anything else.
      return std::nullopt;
    }
  }
  if (snapshot) unix_time = static_cast<std::int64_t>(time);
  return snapshot;
}

std::optional<FinishedSnapshot> ReadFinishedSnapshotRecord(std::string_view payload,
                                                           std::int64_t& unix_time) {
  std::int64_t time = 0;
  const std::optional<std::string_view> snapshot = SnapshotOfRecord(payload, time);
  FinishedSnapshot finished;
  if (!snapshot || !ReadSnapshot(*snapshot, finished)) return std::nullopt;
  unix_time = time;
  return finished;
}

}  // namespace nanobatch::journal
