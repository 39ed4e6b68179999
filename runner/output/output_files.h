#pragma once
// The user-facing files of an output directory (interface.md "Output directory"):
//   metadata.jsonl  one line per image file (Hugging Face `imagefolder` metadata: file_name first)
//   failed.jsonl    one line per item given up on
// Both are derived from the journal: rewritten whole (temporary file, fsync, rename, fsync of
// the directory) at the start of every run, so that a crash between an image and its line can
// never leave them wrong for long, and appended to during the run: lines are queued and go out
// together when Flush() is called (at every journal commit: one write per file for a commit's
// items, not one per line), or when the queue grows past kFlushBytes. At its end (Finish) they
// are flushed and synced, or rewritten whole if an append failed: a million finished items are
// not read back from the journal when every line already went out.
//
// Example:
//   OutputFiles outputs(journal.dir());
//   outputs.Rewrite(journal.state(), error);
//   outputs.AppendImage(item, image);

#include <cstddef>
#include <string>

#include "proto/journal.pb.h"
#include "runner/fs/output_dir.h"
#include "runner/journal/state.h"

namespace nanobatch::output {

class OutputFiles {
 public:
  explicit OutputFiles(const fs::OutputDir& dir);
  ~OutputFiles();
  OutputFiles(const OutputFiles&) = delete;
  OutputFiles& operator=(const OutputFiles&) = delete;

  // Rewrites both files from the state; afterwards appends go to the new files.
  bool Rewrite(const journal::JournalState& state, std::string& error);
  // At the end of a run: fdatasync of both files, or Rewrite when an append failed (or the
  // files were never opened).
  bool Finish(const journal::JournalState& state, std::string& error);
  // Queue a line.
  void AppendImage(const proto::ItemSnapshot& item, const proto::Downloaded& image);
  void AppendFailure(const proto::ItemSnapshot& item);
  // Writes the queued lines, one write per file.
  void Flush();

  static std::string MetadataLine(const proto::ItemSnapshot& item, const proto::Downloaded& image);
  static std::string FailureLine(const proto::ItemSnapshot& item);

 private:
  static constexpr std::size_t kFlushBytes = std::size_t{64} * 1024;
  void Queue(std::string& queue, const std::string& line);
  void WriteQueue(int fd, std::string& queue);

  const fs::OutputDir& dir_;
  std::string queued_metadata_;
  std::string queued_failed_;
  int metadata_fd_ = -1;
  int failed_fd_ = -1;
  bool stale_ = true;  // an append failed since the last Rewrite (or there was none)
};

}  // namespace nanobatch::output
