#include "runner/journal/frame.h"

#include <nmmintrin.h>

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

namespace {

// The SSE4.2 CRC32 instruction computes CRC-32C (Castagnoli) directly, 8 bytes a cycle or so:
// it takes resume of a million-record journal from about a second of CPU to a fraction. Debian
// ships no C/C++ CRC-32C library, so this is the few lines LevelDB's crc32c also has.
__attribute__((target("sse4.2"))) std::uint32_t Crc32cHardware(std::string_view bytes) {
  std::uint64_t crc = 0xFFFFFFFFu;
  const char* p = bytes.data();
  std::size_t n = bytes.size();
  while (n >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    crc = _mm_crc32_u64(crc, word);
    p += 8;
    n -= 8;
  }
  std::uint32_t crc32 = static_cast<std::uint32_t>(crc);
  while (n > 0) {
    crc32 = _mm_crc32_u8(crc32, static_cast<unsigned char>(*p++));
    --n;
  }
  return crc32 ^ 0xFFFFFFFFu;
}

std::uint32_t Crc32cPortable(std::string_view bytes) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

const bool kHasSse42 = __builtin_cpu_supports("sse4.2");

}  // namespace

std::uint32_t Crc32c(std::string_view bytes) {
  // CRC-32C (Castagnoli), as LevelDB and etcd use: better error detection than CRC-32.
  return kHasSse42 ? Crc32cHardware(bytes) : Crc32cPortable(bytes);
}

std::uint32_t Crc32cPortableForTest(std::string_view bytes) { return Crc32cPortable(bytes); }

std::uint32_t MaskCrc(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

void AppendFrame(std::string& out, FrameType type, std::string_view payload) {
  const std::size_t start = out.size();
  AppendU32(out, static_cast<std::uint32_t>(payload.size()));
  AppendU32(out, 0);  // the CRC of the type byte and the payload, once they are in place
  out.push_back(static_cast<char>(type));
  out.append(payload);
  const std::uint32_t crc =
      MaskCrc(Crc32c(std::string_view(out).substr(start + 8, 1 + payload.size())));
  std::memcpy(out.data() + start + 4, &crc, 4);
}

std::string EncodeFrame(FrameType type, std::string_view payload) {
  std::string frame;
  frame.reserve(kFrameHeaderSize + payload.size());
  AppendFrame(frame, type, payload);
  return frame;
}

std::optional<std::string_view> RecordFrameAt(std::string_view bytes) {
  if (!FrameChecksOut(bytes, 0) || static_cast<FrameType>(bytes[8]) != FrameType::kRecord) {
    return std::nullopt;
  }
  return bytes.substr(kFrameHeaderSize, ReadU32(bytes.data()));
}

std::uint32_t FramePayloadLength(std::string_view header) {
  return header.size() < kFrameHeaderSize ? 0 : ReadU32(header.data());
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
      if (!scan.corruption_offset)
        scan.torn_tail_bytes = bytes.size() - pos;
      else
        scan.skipped_bytes += bytes.size() - pos;
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
