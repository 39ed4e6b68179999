#include "runner/journal/frame.h"

#include <boost/crc.hpp>

#include <cstring>

namespace nanobatch::journal {
namespace {

constexpr std::uint32_t kMaskDelta = 0xa282ead8u;

std::uint32_t ReadU32(const char* p) {
  std::uint32_t value;
  std::memcpy(&value, p, 4);  // the format is little-endian, as is every machine nanobatch runs on
  return value;
}

void AppendU32(std::string& out, std::uint32_t value) {
  char bytes[4];
  std::memcpy(bytes, &value, 4);
  out.append(bytes, 4);
}

bool IsKnownType(std::uint8_t type) {
  return type == static_cast<std::uint8_t>(FrameType::kHeader) ||
         type == static_cast<std::uint8_t>(FrameType::kRecord);
}

// Whether a well-formed frame with a matching CRC starts at `pos`.
bool FrameChecksOut(std::string_view bytes, std::size_t pos) {
  if (bytes.size() - pos < kFrameHeaderSize) return false;
  const std::uint32_t length = ReadU32(bytes.data() + pos);
  const auto type = static_cast<std::uint8_t>(bytes[pos + 8]);
  if (length > kMaxPayload || !IsKnownType(type)) return false;
  if (bytes.size() - pos - kFrameHeaderSize < length) return false;
  const std::uint32_t stored = ReadU32(bytes.data() + pos + 4);
  return MaskCrc(Crc32c(bytes.substr(pos + 8, 1 + length))) == stored;
}

}  // namespace

std::uint32_t Crc32c(std::string_view bytes) {
  // CRC-32C (Castagnoli), as LevelDB and etcd use: better error detection than CRC-32.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

std::uint32_t MaskCrc(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

std::string EncodeFrame(FrameType type, std::string_view payload) {
  std::string frame;
  frame.reserve(kFrameHeaderSize + payload.size());
  AppendU32(frame, static_cast<std::uint32_t>(payload.size()));
  std::string typed;
  typed.reserve(1 + payload.size());
  typed.push_back(static_cast<char>(type));
  typed.append(payload);
  AppendU32(frame, MaskCrc(Crc32c(typed)));
  frame.append(typed);
  return frame;
}

FrameScan ScanFrames(std::string_view bytes, bool salvage,
                     const std::function<bool(FrameType, std::string_view)>& visit) {
  FrameScan scan;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    if (FrameChecksOut(bytes, pos)) {
      const std::uint32_t length = ReadU32(bytes.data() + pos);
      const auto type = static_cast<FrameType>(bytes[pos + 8]);
      if (visit(type, bytes.substr(pos + kFrameHeaderSize, length))) {
        pos += kFrameHeaderSize + length;
        ++scan.frames;
        if (scan.skipped_bytes == 0 && !scan.corruption_offset) scan.valid_end = pos;
        continue;
      }
    }
    // A bad frame at `pos`. Is there any good frame after it?
    std::size_t next = pos + 1;
    while (next < bytes.size() && !FrameChecksOut(bytes, next)) ++next;
    if (next >= bytes.size()) {
      // Nothing good follows: a torn tail (only meaningful when nothing was skipped before).
      if (!scan.corruption_offset) scan.torn_tail_bytes = bytes.size() - pos;
      else scan.skipped_bytes += bytes.size() - pos;
      break;
    }
    if (!scan.corruption_offset) scan.corruption_offset = pos;
    if (!salvage) break;
    scan.skipped_bytes += next - pos;
    pos = next;
  }
  return scan;
}

}  // namespace nanobatch::journal
