#pragma once
// Real image bytes for the API simulator: PNG (libpng) and JPEG (libjpeg-turbo) whose width and
// height follow the requested resolution and aspect ratio, scaled down so tests stay fast.
//
// Example:
//   ImageSize size = SizeFor("2K", "16:9", 1.0 / 32);
//   std::string png = MakePng(size, /*seed=*/42);

#include <cstdint>
#include <string>
#include <string_view>

namespace nanobatch::fake_api {

struct ImageSize {
  int width = 0;
  int height = 0;
};

// Area of the 1K/2K/4K square (1024², 2048², 4096²) spread over the aspect ratio ("auto" is
// square), times `scale` on each side, at least 8x8.
ImageSize SizeFor(std::string_view resolution, std::string_view aspect_ratio, double scale);

// A gradient whose colours come from `seed`, so different tasks get different bytes.
// `noise` (0-255): the amplitude of pseudo-random noise added to every pixel, so that images
// do not compress away (benchmarks of real image sizes); 0 keeps the smooth pattern.
std::string MakePng(ImageSize size, std::uint64_t seed, int noise = 0);
std::string MakeJpeg(ImageSize size, std::uint64_t seed, int noise = 0);

}  // namespace nanobatch::fake_api
