// Manifest validation throughput: writes an N-line JSONL manifest (mixed English and Chinese
// prompts, some with every optional field), then validates it exactly as `nanobatch validate`
// does (items counted, not kept) and prints lines/s, MB/s and the peak RSS.
//
//   bazel run -c opt //tools/bench:manifest_bench -- [LINES] [DIR]

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "runner/manifest/manifest.h"

int main(int argc, char** argv) {
  const long lines = argc > 1 ? std::atol(argv[1]) : 1'000'000;
  const std::string dir = argc > 2 ? argv[2] : "/tmp";
  const std::string path = dir + "/nanobatch-bench-manifest.jsonl";
  {
    std::ofstream out(path);
    static const char* kRatios[] = {"1:1", "16:9", "9:16", "4:3", "auto"};
    static const char* kResolutions[] = {"1K", "2K", "4K"};
    for (long i = 0; i < lines; ++i) {
      if (i % 3 == 0) {
        out << "{\"id\":\"img-" << i << "\",\"prompt\":\"一只戴着墨镜的猫在海滩上，数字艺术，第"
            << i << "号\",\"resolution\":\"" << kResolutions[i % 3] << "\"}\n";
      } else if (i % 3 == 1) {
        out << "{\"prompt\":\"a photorealistic portrait of a lighthouse keeper number " << i
            << ", golden hour, 85mm lens, shallow depth of field\",\"aspect_ratio\":\""
            << kRatios[i % 5] << "\",\"output_format\":\"png\"}\n";
      } else {
        out << "{\"id\":\"edit-" << i << "\",\"prompt\":\"make the sky purple in picture " << i
            << "\",\"image_urls\":[\"https://example.com/refs/" << i
            << ".png\"],\"resolution\":\"2K\",\"aspect_ratio\":\"3:2\",\"output_format\":\"jpg\"}"
               "\n";
      }
    }
  }

  nanobatch::util::InputErrors errors;
  std::size_t items = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto stats = nanobatch::manifest::ReadManifest(
      path, {}, [&](nanobatch::manifest::Item&&) { ++items; }, errors);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::remove(path.c_str());

  std::printf("manifest_bench: %zu lines, %.1f MB, %zu items, %zu errors\n", stats.lines,
              stats.bytes / 1e6, items, errors.total());
  std::printf("  %.3f s  %.0f lines/s  %.1f MB/s  peak RSS %.1f MB\n", seconds,
              stats.lines / seconds, stats.bytes / 1e6 / seconds, usage.ru_maxrss / 1024.0);
  return errors.empty() ? 0 : 1;
}
