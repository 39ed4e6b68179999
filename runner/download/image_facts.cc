#include "runner/download/image_facts.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

namespace nanobatch::download {
namespace {

constexpr std::size_t kHeadBytes = 32;

std::uint32_t BigEndian(const unsigned char* p, int bytes) {
  std::uint32_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | p[i];
  return value;
}

std::uint32_t LittleEndian(const unsigned char* p, int bytes) {
  std::uint32_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

bool IsJpegFrameMarker(unsigned char marker) {
  // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range.
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

std::optional<PixelSize> Sized(std::uint32_t width, std::uint32_t height) {
  if (width == 0 || height == 0) return std::nullopt;
  return PixelSize{width, height};
}

}  // namespace

void ImageDimensions::Feed(const unsigned char* data, std::size_t size) {
  if (done_ || size == 0) return;
  if (jpeg_) {
    FeedJpeg(data, size);
    return;
  }
  const std::size_t taken = std::min(size, kHeadBytes - head_.size());
  head_.append(reinterpret_cast<const char*>(data), taken);
  const auto* head = reinterpret_cast<const unsigned char*>(head_.data());
  if (head_.size() >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) {
    // The walk starts from the first byte: what the head holds, then the rest of this piece.
    jpeg_ = true;
    FeedJpeg(head, head_.size());
    FeedJpeg(data + taken, size - taken);
    return;
  }
  if (head_.size() < kHeadBytes) return;
  done_ = true;
  const std::string_view text(head_);
  if (text.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8) &&
      text.substr(12, 4) == "IHDR") {
    size_ = Sized(BigEndian(head + 16, 4), BigEndian(head + 20, 4));
  } else if (text.substr(0, 4) == "RIFF" && text.substr(8, 4) == "WEBP") {
    const std::string_view chunk = text.substr(12, 4);
    if (chunk == "VP8X") {
      size_ = Sized(LittleEndian(head + 24, 3) + 1, LittleEndian(head + 27, 3) + 1);
    } else if (chunk == "VP8L" && head[20] == 0x2F) {
      const std::uint32_t bits = LittleEndian(head + 21, 4);
      size_ = Sized((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
    } else if (chunk == "VP8 " && head[23] == 0x9D && head[24] == 0x01 && head[25] == 0x2A) {
      size_ = Sized(LittleEndian(head + 26, 2) & 0x3FFF, LittleEndian(head + 28, 2) & 0x3FFF);
    }
  }
}

// Walks the segments from the SOI marker to the first frame header (SOFn: precision, height,
// width); entropy-coded data (after SOS) or EOI before it means the size is unknown.
void ImageDimensions::FeedJpeg(const unsigned char* data, std::size_t size) {
  for (std::size_t i = 0; i < size && !done_; ++i, ++jpeg_offset_) {
    const unsigned char byte = data[i];
    if (jpeg_offset_ < 2) continue;  // SOI
    switch (jpeg_state_) {
      case JpegState::kMarkerStart:
        if (byte != 0xFF) {
          done_ = true;  // not at a marker: a broken stream
          break;
        }
        jpeg_state_ = JpegState::kMarkerType;
        break;
      case JpegState::kMarkerType:
        if (byte == 0xFF) break;  // fill bytes
        jpeg_marker_ = byte;
        if (byte == 0x01 || (byte >= 0xD0 && byte <= 0xD8)) {
          jpeg_state_ = JpegState::kMarkerStart;  // standalone markers carry no length
        } else if (byte == 0xD9 || byte == 0xDA) {
          done_ = true;  // EOI or scan data before any frame header
        } else {
          jpeg_state_ = JpegState::kLength;
          jpeg_field_.clear();
        }
        break;
      case JpegState::kLength: {
        jpeg_field_ += static_cast<char>(byte);
        if (jpeg_field_.size() < 2) break;
        const std::uint32_t length =
            BigEndian(reinterpret_cast<const unsigned char*>(jpeg_field_.data()), 2);
        jpeg_field_.clear();
        if (length < 2) {
          done_ = true;
          break;
        }
        if (IsJpegFrameMarker(jpeg_marker_)) {
          jpeg_state_ = JpegState::kFrame;
        } else {
          jpeg_skip_ = length - 2;
          jpeg_state_ = jpeg_skip_ > 0 ? JpegState::kSkip : JpegState::kMarkerStart;
        }
        break;
      }
      case JpegState::kSkip: {
        // Skip the rest of the segment in one step where this piece of data holds it.
        const std::size_t skip = std::min<std::size_t>(jpeg_skip_, size - i);
        jpeg_skip_ -= static_cast<std::uint32_t>(skip);
        i += skip - 1;
        jpeg_offset_ += skip - 1;
        if (jpeg_skip_ == 0) jpeg_state_ = JpegState::kMarkerStart;
        break;
      }
      case JpegState::kFrame: {
        jpeg_field_ += static_cast<char>(byte);
        if (jpeg_field_.size() < 5) break;
        const auto* frame = reinterpret_cast<const unsigned char*>(jpeg_field_.data());
        size_ = Sized(BigEndian(frame + 3, 2), BigEndian(frame + 1, 2));
        done_ = true;
        break;
      }
    }
  }
}

std::string DescribeMismatch(std::string_view asked_format, std::string_view asked_ratio,
                             std::string_view received_type, std::uint32_t width,
                             std::uint32_t height) {
  std::string problems;
  auto add = [&problems](const std::string& problem) {
    problems += (problems.empty() ? "" : "; ") + problem;
  };
  if (!received_type.empty() && received_type != asked_format) {
    add("asked " + std::string(asked_format) + ", received " + std::string(received_type));
  }
  const auto colon = asked_ratio.find(':');
  if (asked_ratio != "auto" && colon != std::string_view::npos && width > 0 && height > 0) {
    const double asked = std::strtod(std::string(asked_ratio.substr(0, colon)).c_str(), nullptr) /
                         std::strtod(std::string(asked_ratio.substr(colon + 1)).c_str(), nullptr);
    const double received = static_cast<double>(width) / height;
    if (std::isfinite(asked) && asked > 0 && std::abs(received / asked - 1) > kAspectTolerance) {
      const std::uint32_t divisor = std::gcd(width, height);
      add("asked " + std::string(asked_ratio) + ", received " + std::to_string(width) + "x" +
          std::to_string(height) + " (" + std::to_string(width / divisor) + ":" +
          std::to_string(height / divisor) + ")");
    }
  }
  return problems;
}

}  // namespace nanobatch::download
