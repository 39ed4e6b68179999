#pragma once
// ImageCheck: what can be verified of an image while it streams past, at no extra pass over the
// bytes: its type from the magic bytes, and that it is structurally complete. A server that
// sends a body short of its end (a PNG without IEND, a JPEG without EOI, a WebP shorter than its
// RIFF header says) with a matching Content-Length would otherwise leave a broken image under a
// final name.
//   PNG:  the chunk sequence is walked (length, type, data, CRC): IHDR first, IEND last, nothing
//         after it.
//   JPEG: the body ends with the EOI marker FF D9.
//   WebP: the RIFF size field equals the body size less 8.
// Pure: no I/O; ImageFile feeds it.
//
// Example:
//   ImageCheck check;
//   check.Feed(data, size); ...
//   ImageVerdict verdict = check.Finish();   // {.type = "png"} or {.problem = "..."}

#include <cstdint>
#include <string>
#include <string_view>

#include "runner/download/image_facts.h"

namespace nanobatch::download {

// "png", "jpg", "webp", or "" when the bytes are none of these.
std::string_view DetectImageType(std::string_view first_bytes);

struct ImageVerdict {
  enum class Kind { kComplete, kNotAnImage, kIncomplete };
  Kind kind = Kind::kNotAnImage;
  std::string type;     // when complete: png, jpg or webp
  std::string problem;  // otherwise, for the user
  // The pixel size from the header (ImageDimensions); 0 x 0 when the header does not tell.
  PixelSize size;
};

class ImageCheck {
 public:
  void Feed(const char* data, std::size_t size);
  ImageVerdict Finish() const;

 private:
  void FeedPng(const unsigned char* data, std::size_t size);

  std::string head_;  // the first 16 bytes
  std::uint64_t bytes_ = 0;
  unsigned char last_two_[2] = {0, 0};
  // PNG walk: bytes still to skip in the current chunk, the partial chunk header being read.
  std::uint64_t png_skip_ = 8;  // the signature
  std::string png_header_;
  std::uint64_t png_chunks_ = 0;
  bool png_iend_seen_ = false;
  bool png_bad_ = false;
  std::string png_problem_;
  ImageDimensions dimensions_;
};

}  // namespace nanobatch::download
