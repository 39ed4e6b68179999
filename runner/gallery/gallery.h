#pragma once
// The gallery: `nanobatch gallery --out DIR` writes DIR/index.html, one static page that opens
// from disk in any browser (no server, no fetch: file:// pages may not read other files): a grid
// of the images themselves (lazy-loaded), each with its prompt, parameters, pixel size, bytes,
// credits, task id and own columns; filters by state, resolution and aspect ratio; search in
// prompts and ids; the failed items with their errors; paged, so 100,000 images stay fast.
//
// The items are embedded in the page as JSON, built from the journal (read as `status` reads
// it, safe next to a live run). Everything in it came from a manifest or a server: the page puts
// it in the DOM as text only (never as markup), its Content-Security-Policy allows no network,
// and `<` is escaped in the embedded JSON so no text can close the script element.
//
// Example:
//   GalleryCounts counts;
//   if (!WriteGallery(*state, dir, counts, error)) ...

#include <cstdint>
#include <string>

#include "runner/fs/output_dir.h"
#include "runner/journal/state.h"

namespace nanobatch::gallery {

struct GalleryCounts {
  std::uint64_t items = 0;
  std::uint64_t images = 0;
  std::uint64_t failed = 0;
};

// The page's data: a JSON array of items, safe to embed in a <script> element.
std::string GalleryData(const journal::JournalState& state, GalleryCounts& counts);
// The whole page.
std::string GalleryPage(const journal::JournalState& state, GalleryCounts& counts);
// Writes index.html into the output directory atomically.
bool WriteGallery(const journal::JournalState& state, const fs::OutputDir& dir,
                  GalleryCounts& counts, std::string& error);

}  // namespace nanobatch::gallery
