#include "runner/journal/frame.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace nanobatch::journal {
namespace {

std::string ThreeRecords() {
  return EncodeFrame(FrameType::kHeader, kHeaderPayload) +
         EncodeFrame(FrameType::kRecord, "first record") +
         EncodeFrame(FrameType::kRecord, std::string(300, 'x')) +
         EncodeFrame(FrameType::kRecord, "third");
}

std::vector<std::string> Payloads(const std::string& bytes, FrameScan* scan_out = nullptr,
                                  bool salvage = false) {
  std::vector<std::string> payloads;
  FrameScan scan = ScanFrames(bytes, salvage, [&](FrameType type, std::string_view payload) {
    if (type == FrameType::kRecord) payloads.emplace_back(payload);
    return true;
  });
  if (scan_out != nullptr) *scan_out = scan;
  return payloads;
}

TEST_CASE("frame: AppendFrame after other bytes writes a frame that reads back") {
  const std::string earlier = "earlier frames";
  std::string out = earlier;
  AppendFrame(out, FrameType::kRecord, "the payload");
  CHECK(out.size() == earlier.size() + kFrameHeaderSize + 11);
  CHECK(RecordFrameAt(std::string_view(out).substr(earlier.size())) ==
        std::optional<std::string_view>("the payload"));
  out[out.size() - 1] ^= 1;  // its checksum covers the payload
  CHECK_FALSE(RecordFrameAt(std::string_view(out).substr(earlier.size())).has_value());
}

TEST_CASE("frame: CRC-32C matches the standard check value, hardware and portable alike") {
  CHECK(Crc32c("123456789") == 0xE3069283u);
  CHECK(Crc32cPortableForTest("123456789") == 0xE3069283u);
  std::string data;
  for (int length = 0; length < 300; ++length) {
    CHECK(Crc32c(data) == Crc32cPortableForTest(data));
    data.push_back(static_cast<char>(length * 7 + 3));
  }
  CHECK(MaskCrc(0) != 0);  // an all-zero frame never checks out
}

TEST_CASE("frame: records round-trip in order") {
  FrameScan scan;
  auto payloads = Payloads(ThreeRecords(), &scan);
  REQUIRE(payloads.size() == 3);
  CHECK(payloads[0] == "first record");
  CHECK(payloads[2] == "third");
  CHECK(scan.valid_end == ThreeRecords().size());
  CHECK(scan.torn_tail_bytes == 0);
  CHECK_FALSE(scan.corruption_offset);
}

TEST_CASE("frame: a torn tail at every byte offset of the last record is dropped, not reported") {
  const std::string full = ThreeRecords();
  const std::size_t last_start = full.size() - (kFrameHeaderSize + 5);
  for (std::size_t cut = last_start; cut < full.size(); ++cut) {
    FrameScan scan;
    auto payloads = Payloads(full.substr(0, cut), &scan);
    CHECK(payloads.size() == 2);
    CHECK(scan.valid_end == last_start);
    CHECK(scan.torn_tail_bytes == cut - last_start);
    CHECK_FALSE(scan.corruption_offset);
  }
}

TEST_CASE("frame: truncation anywhere keeps exactly the whole records before the cut") {
  const std::string full = ThreeRecords();
  for (std::size_t cut = 0; cut <= full.size(); ++cut) {
    FrameScan scan;
    auto payloads = Payloads(full.substr(0, cut), &scan);
    CHECK(scan.valid_end + scan.torn_tail_bytes == cut);
    CHECK_FALSE(scan.corruption_offset);
  }
}

TEST_CASE("frame: flipping any byte is detected: torn tail in the last record, else corruption") {
  const std::string full = ThreeRecords();
  const std::size_t last_start = full.size() - (kFrameHeaderSize + 5);
  for (std::size_t i = 0; i < full.size(); ++i) {
    std::string damaged = full;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x40);
    FrameScan scan;
    Payloads(damaged, &scan);
    if (i >= last_start) {
      CHECK_MESSAGE(scan.torn_tail_bytes > 0, i);
      CHECK_FALSE(scan.corruption_offset);
    } else {
      CHECK_MESSAGE(scan.corruption_offset.has_value(), i);
    }
  }
}

TEST_CASE("frame: salvage skips a damaged record and keeps the rest") {
  std::string damaged = ThreeRecords();
  const std::size_t second = EncodeFrame(FrameType::kHeader, kHeaderPayload).size() +
                             EncodeFrame(FrameType::kRecord, "first record").size();
  damaged[second + 20] ^= 0x01;  // inside the 300-byte payload
  FrameScan scan;
  auto strict = Payloads(damaged, &scan, /*salvage=*/false);
  CHECK(strict.size() == 1);
  REQUIRE(scan.corruption_offset);
  CHECK(*scan.corruption_offset == second);
  auto salvaged = Payloads(damaged, &scan, /*salvage=*/true);
  REQUIRE(salvaged.size() == 2);
  CHECK(salvaged[1] == "third");
  CHECK(scan.skipped_bytes == kFrameHeaderSize + 300);
}

TEST_CASE("frame: a zero-filled tail (power loss after the size grew) is a torn tail") {
  const std::string full = ThreeRecords() + std::string(4096, '\0');
  FrameScan scan;
  CHECK(Payloads(full, &scan).size() == 3);
  CHECK(scan.torn_tail_bytes == 4096);
  CHECK_FALSE(scan.corruption_offset);
}

}  // namespace
}  // namespace nanobatch::journal
