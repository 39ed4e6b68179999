#pragma once
// Image facts: the pixel size of a PNG, JPEG or WebP read from its header as the bytes stream
// past (PNG IHDR; JPEG's SOFn segment, found by walking the segments before it; WebP's VP8X,
// VP8L or VP8 header), and how a received image differs from what was asked (format, aspect
// ratio), so a dataset can flag a result that is not what was paid for.
// Pure: no I/O. ImageCheck feeds ImageDimensions along with its own checks.
//
// Example:
//   ImageDimensions dimensions;
//   dimensions.Feed(data, size); ...
//   if (auto size = dimensions.size()) ... size->width, size->height
//   std::string flag = DescribeMismatch("png", "16:9", "png", 1024, 1024);
//   // "asked 16:9, received 1024x1024 (1:1)"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nanobatch::download {

struct PixelSize {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
};

class ImageDimensions {
 public:
  void Feed(const unsigned char* data, std::size_t size);
  // Known once the header has gone past; nullopt for a body that is no image or has none.
  std::optional<PixelSize> size() const { return size_; }

 private:
  void FeedJpeg(const unsigned char* data, std::size_t size);

  std::string head_;  // the first kHeadBytes bytes: PNG and WebP sizes are in there
  std::optional<PixelSize> size_;
  bool done_ = false;  // found, or found to be absent
  bool jpeg_ = false;
  // JPEG segment walk.
  enum class JpegState { kMarkerStart, kMarkerType, kLength, kSkip, kFrame };
  JpegState jpeg_state_ = JpegState::kMarkerStart;
  std::uint64_t jpeg_offset_ = 0;  // bytes of the body the walk has consumed
  std::uint32_t jpeg_skip_ = 0;
  std::string jpeg_field_;  // a length or a frame header being gathered
  unsigned char jpeg_marker_ = 0;
};

// How an image differs from what was asked: "" when it does not. `asked_format` is the item's
// output_format (png or jpg), `asked_ratio` its aspect_ratio ("auto" accepts any); the ratio
// counts as kept within kAspectTolerance (the API rounds sizes to multiples of 32 or 64: 4:3 at
// 1K is 1184x864, 2.8% off).
inline constexpr double kAspectTolerance = 0.05;
std::string DescribeMismatch(std::string_view asked_format, std::string_view asked_ratio,
                             std::string_view received_type, std::uint32_t width,
                             std::uint32_t height);

}  // namespace nanobatch::download
