#pragma once
// Frames of the journal (log_format.md): encoding, and a reader that tells a torn tail from
// corruption in the middle. Pure byte manipulation, no I/O.
//
// Example:
//   std::string bytes = EncodeFrame(FrameType::kRecord, payload);
//   FrameScan scan = ScanFrames(file_bytes, /*salvage=*/false,
//                               [](FrameType type, std::string_view payload) { return true; });

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace nanobatch::journal {

enum class FrameType : std::uint8_t { kHeader = 1, kRecord = 2 };

inline constexpr std::size_t kFrameHeaderSize = 9;
inline constexpr std::uint32_t kMaxPayload = 16u << 20;
inline constexpr std::string_view kHeaderPayload = "nanobatch journal v1";

std::uint32_t Crc32c(std::string_view bytes);
// The table-driven implementation used where the CPU lacks SSE4.2; exposed so tests can check
// that both agree.
std::uint32_t Crc32cPortableForTest(std::string_view bytes);
std::uint32_t MaskCrc(std::uint32_t crc);

std::string EncodeFrame(FrameType type, std::string_view payload);
// The same frame appended to `out`, with no intermediate string (the journal appends a record
// for every step of every item).
void AppendFrame(std::string& out, FrameType type, std::string_view payload);

// The payload of the record frame at the start of `bytes`, if it is whole and its checksum holds.
std::optional<std::string_view> RecordFrameAt(std::string_view bytes);
// The payload length a frame header (kFrameHeaderSize bytes) announces.
std::uint32_t FramePayloadLength(std::string_view header);

struct FrameScan {
  std::uint64_t valid_end = 0;        // offset after the last good frame (in order)
  std::uint64_t torn_tail_bytes = 0;  // bytes after valid_end with no good frame in them
  std::optional<std::uint64_t> corruption_offset;  // a bad frame followed by good ones
  std::uint64_t skipped_bytes = 0;                 // with salvage: bytes skipped over
  std::uint64_t frames = 0;
};

// Calls `visit` for each good frame in order; `visit` returning false marks that frame as bad
// (for example: a payload that does not parse). Without salvage, reading stops at corruption.
FrameScan ScanFrames(std::string_view bytes, bool salvage,
                     const std::function<bool(FrameType, std::string_view)>& visit);

}  // namespace nanobatch::journal
