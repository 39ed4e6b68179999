#pragma once
// WebDataset export: an output directory's images as tar shards for training
// (`nanobatch export --format webdataset --to DIR`). Each image is one sample: `<key>.<ext>`,
// the image's bytes, and `<key>.json`, its metadata.jsonl line (the item's own columns included)
// with "key" added. Keys are the sample's number, nine digits: WebDataset groups files by the
// name before the first dot, which item ids may contain. Shards are `shard-000000.tar`, ...,
// `samples_per_shard` samples each, written by libarchive (POSIX tar), each to a temporary name,
// synced, then renamed: a shard is there whole or not at all. Shards of an earlier export into
// the same directory beyond the last one written are removed, so the directory holds this
// export's samples once each.
//
// Images are read through the output directory without following links and checked against
// the size the journal recorded; one that is missing or changed is left out and counted (the
// next `run` fetches it again).
//
// Example:
//   ExportResult result = ExportWebDataset(state, out, "/data/shards", {.samples_per_shard =
//   1000});

#include <cstdint>
#include <string>
#include <vector>

#include "runner/fs/output_dir.h"
#include "runner/journal/state.h"

namespace nanobatch::exporting {

struct WebDatasetOptions {
  std::uint64_t samples_per_shard = 10000;
};

struct ExportResult {
  bool ok = false;
  std::string error;  // when !ok: the first failure to write
  std::uint64_t samples = 0;
  std::uint64_t shards = 0;
  std::uint64_t bytes = 0;           // of images
  std::vector<std::string> skipped;  // images missing or changed on disk
};

ExportResult ExportWebDataset(const journal::JournalState& state, const fs::OutputDir& out,
                              const std::string& to, const WebDatasetOptions& options);

}  // namespace nanobatch::exporting
