#include "runner/download/image_check.h"

#include <algorithm>

namespace nanobatch::download {
namespace {

std::uint32_t BigEndian32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::uint32_t LittleEndian32(const unsigned char* p) {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) |
         (std::uint32_t{p[3]} << 24);
}

}  // namespace

std::string_view DetectImageType(std::string_view head) {
  if (head.size() >= 8 && head.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8))
    return "png";
  if (head.size() >= 3 && head.substr(0, 3) == "\xFF\xD8\xFF") return "jpg";
  if (head.size() >= 12 && head.substr(0, 4) == "RIFF" && head.substr(8, 4) == "WEBP")
    return "webp";
  return "";
}

void ImageCheck::Feed(const char* data, std::size_t size) {
  if (size == 0) return;
  if (head_.size() < 16) head_.append(data, std::min(size, 16 - head_.size()));
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  if (size >= 2) {
    last_two_[0] = bytes[size - 2];
    last_two_[1] = bytes[size - 1];
  } else {
    last_two_[0] = last_two_[1];
    last_two_[1] = bytes[0];
  }
  bytes_ += size;
  FeedPng(bytes, size);
  dimensions_.Feed(bytes, size);
}

void ImageCheck::FeedPng(const unsigned char* data, std::size_t size) {
  while (size > 0 && !png_bad_) {
    if (png_skip_ > 0) {
      const std::size_t skip = static_cast<std::size_t>(std::min<std::uint64_t>(png_skip_, size));
      png_skip_ -= skip;
      data += skip;
      size -= skip;
      continue;
    }
    if (png_iend_seen_) {
      png_bad_ = true;
      png_problem_ = "bytes follow the PNG's IEND chunk";
      return;
    }
    const std::size_t take = std::min<std::size_t>(8 - png_header_.size(), size);
    png_header_.append(reinterpret_cast<const char*>(data), take);
    data += take;
    size -= take;
    if (png_header_.size() < 8) return;
    const auto* header = reinterpret_cast<const unsigned char*>(png_header_.data());
    const std::uint32_t length = BigEndian32(header);
    const std::string_view type(png_header_.data() + 4, 4);
    if (length > 0x7FFFFFFFu || (png_chunks_ == 0 && type != "IHDR")) {
      png_bad_ = true;
      png_problem_ = "the PNG's chunk structure is broken";
      return;
    }
    ++png_chunks_;
    png_iend_seen_ = type == "IEND";
    png_skip_ = std::uint64_t{length} + 4;  // data and CRC
    png_header_.clear();
  }
}

ImageVerdict ImageCheck::Finish() const {
  ImageVerdict verdict;
  const std::string_view type = DetectImageType(head_);
  if (type.empty()) {
    verdict.kind = ImageVerdict::Kind::kNotAnImage;
    verdict.problem = "the downloaded body is not a PNG, JPEG or WebP image";
    return verdict;
  }
  verdict.kind = ImageVerdict::Kind::kIncomplete;
  if (type == "png") {
    if (png_bad_) {
      verdict.problem = png_problem_;
      return verdict;
    }
    if (!png_iend_seen_ || png_skip_ > 0 || !png_header_.empty()) {
      verdict.problem =
          "the PNG ends before its IEND chunk (" + std::to_string(bytes_) + " bytes received)";
      return verdict;
    }
  } else if (type == "jpg") {
    if (last_two_[0] != 0xFF || last_two_[1] != 0xD9) {
      verdict.problem = "the JPEG does not end with its EOI marker (" + std::to_string(bytes_) +
                        " bytes received)";
      return verdict;
    }
  } else {
    const std::uint64_t declared =
        LittleEndian32(reinterpret_cast<const unsigned char*>(head_.data()) + 4);
    if (declared + 8 != bytes_) {
      verdict.problem = "the WebP's RIFF header declares " + std::to_string(declared + 8) +
                        " bytes, " + std::to_string(bytes_) + " were received";
      return verdict;
    }
  }
  verdict.kind = ImageVerdict::Kind::kComplete;
  verdict.type = std::string(type);
  if (auto size = dimensions_.size()) verdict.size = *size;
  return verdict;
}

}  // namespace nanobatch::download
