// `nanobatch gallery --out DIR`: DIR/index.html, a static page of the directory's images
// (runner/gallery). The journal is read as `status` reads it, so it is safe next to a live run.
#include <iostream>

#include "runner/cli/commands.h"
#include "runner/fs/output_dir.h"
#include "runner/gallery/gallery.h"
#include "runner/journal/journal.h"

namespace nanobatch::cli {

int GalleryCommand(const std::string& out_dir) {
  std::string error;
  auto state = journal::Journal::OpenReadOnly(out_dir, error);
  auto dir = state ? fs::OutputDir::Open(out_dir, /*create=*/false, error) : nullptr;
  if (!state || !dir) {
    std::cerr << "nanobatch: " << error << "\n";
    return kExitBadInput;
  }
  gallery::GalleryCounts counts;
  if (!gallery::WriteGallery(*state, *dir, counts, error)) {
    std::cerr << "nanobatch: " << error << "\n";
    return 3;
  }
  std::cout << dir->PathOf("index.html") << ": " << counts.images << " images, " << counts.failed
            << " failed, " << counts.items << " items; open it in a browser\n";
  return kExitOk;
}

}  // namespace nanobatch::cli
