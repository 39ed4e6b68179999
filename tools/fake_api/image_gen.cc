#include "tools/fake_api/image_gen.h"

#include <jpeglib.h>
#include <png.h>
#include <stdio.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace nanobatch::fake_api {
namespace {

std::vector<unsigned char> Pixels(ImageSize size, std::uint64_t seed, int noise) {
  std::vector<unsigned char> rgb(static_cast<std::size_t>(size.width) * size.height * 3);
  const unsigned base_r = seed & 0xFF, base_g = (seed >> 8) & 0xFF, base_b = (seed >> 16) & 0xFF;
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;  // xorshift64: cheap, deterministic
  auto jitter = [&]() -> unsigned {
    if (noise <= 0) return 0;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<unsigned>(state % static_cast<std::uint64_t>(noise + 1));
  };
  for (int y = 0; y < size.height; ++y) {
    for (int x = 0; x < size.width; ++x) {
      unsigned char* p = &rgb[(static_cast<std::size_t>(y) * size.width + x) * 3];
      p[0] = static_cast<unsigned char>(base_r + x * 255 / size.width + jitter());
      p[1] = static_cast<unsigned char>(base_g + y * 255 / size.height + jitter());
      p[2] = static_cast<unsigned char>(base_b + (x ^ y) + jitter());
    }
  }
  return rgb;
}

void AppendToString(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), length);
}

}  // namespace

ImageSize SizeFor(std::string_view resolution, std::string_view aspect_ratio, double scale) {
  const double side = resolution == "4K" ? 4096 : resolution == "2K" ? 2048 : 1024;
  double w = 1, h = 1;
  if (aspect_ratio != "auto") {
    const auto colon = aspect_ratio.find(':');
    w = std::atof(std::string(aspect_ratio.substr(0, colon)).c_str());
    h = std::atof(std::string(aspect_ratio.substr(colon + 1)).c_str());
    if (w <= 0 || h <= 0) w = h = 1;
  }
  const double width = side * std::sqrt(w / h) * scale;
  const double height = side * std::sqrt(h / w) * scale;
  return {std::max(8, static_cast<int>(std::lround(width))),
          std::max(8, static_cast<int>(std::lround(height)))};
}

std::string MakePng(ImageSize size, std::uint64_t seed, int noise) {
  const std::vector<unsigned char> rgb = Pixels(size, seed, noise);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::string out;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("libpng failed");
  }
  png_set_write_fn(png, &out, AppendToString, nullptr);
  png_set_IHDR(png, info, size.width, size.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 1);  // the simulator's CPU matters more than its bytes
  png_write_info(png, info);
  for (int y = 0; y < size.height; ++y) {
    png_write_row(png, &rgb[static_cast<std::size_t>(y) * size.width * 3]);
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::string MakeJpeg(ImageSize size, std::uint64_t seed, int noise) {
  const std::vector<unsigned char> rgb = Pixels(size, seed, noise);
  jpeg_compress_struct compress;
  jpeg_error_mgr errors;
  compress.err = jpeg_std_error(&errors);
  jpeg_create_compress(&compress);
  unsigned char* buffer = nullptr;
  unsigned long length = 0;
  jpeg_mem_dest(&compress, &buffer, &length);
  compress.image_width = static_cast<JDIMENSION>(size.width);
  compress.image_height = static_cast<JDIMENSION>(size.height);
  compress.input_components = 3;
  compress.in_color_space = JCS_RGB;
  jpeg_set_defaults(&compress);
  jpeg_set_quality(&compress, 85, TRUE);
  jpeg_start_compress(&compress, TRUE);
  while (compress.next_scanline < compress.image_height) {
    JSAMPROW row = const_cast<unsigned char*>(
        &rgb[static_cast<std::size_t>(compress.next_scanline) * size.width * 3]);
    jpeg_write_scanlines(&compress, &row, 1);
  }
  jpeg_finish_compress(&compress);
  std::string out(reinterpret_cast<char*>(buffer), length);
  jpeg_destroy_compress(&compress);
  std::free(buffer);
  return out;
}

}  // namespace nanobatch::fake_api
