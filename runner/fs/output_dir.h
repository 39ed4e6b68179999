#pragma once
// OutputDir: one output directory (interface.md "Output directory"), opened once. Its three
// directories (`<out>`, `<out>/.nanobatch`, `<out>/.nanobatch/tmp`) are held as descriptors, and
// every file nanobatch creates, reads, renames or deletes under them is reached relative to one
// of those descriptors and without following a symbolic link (O_NOFOLLOW, openat, renameat,
// unlinkat). A link planted anywhere inside therefore cannot send a write, a read or a delete
// outside the directory: `.nanobatch` or `tmp` being a link is refused outright, and a link with
// a file's name is replaced, never followed.
//
// `<out>` itself is the user's choice and may be reached through links.
//
// Example:
//   std::string error;
//   auto dir = OutputDir::Open("out", /*create=*/true, error);
//   int fd = OpenFileAt(dir->tmp_fd(), "dl-1.part", O_WRONLY | O_CREAT | O_TRUNC);
//   WriteFileAtomically(dir->fd(), "metadata.jsonl", text, kPublishedFileMode, error);

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "runner/util/input_file.h"

namespace nanobatch::fs {

// Why Open() failed: a path that is not a directory and cannot be made one (a file, or a file in
// its way; a filesystem that refuses directories there), or that holds a link where nanobatch
// keeps its state, needs the user's fix (usage, exit 2); anything else is an I/O problem
// (exit 3).
enum class OpenProblem { kNone, kNotADirectory, kIo };

class OutputDir {
 public:
  // Opens `path` and its state directories, creating what is missing when `create`. Without
  // `create` (a reader such as `status`), the temporary area may be missing (tmp_fd() is -1).
  static std::unique_ptr<OutputDir> Open(const std::string& path, bool create, std::string& error,
                                         OpenProblem* problem = nullptr);

  const std::string& path() const { return path_; }
  int fd() const { return dir_.get(); }
  int state_fd() const { return state_.get(); }  // <out>/.nanobatch
  int tmp_fd() const { return tmp_.get(); }      // <out>/.nanobatch/tmp
  // For messages: "<out>/name", "<out>/.nanobatch/name".
  std::string PathOf(std::string_view name) const;
  std::string StatePathOf(std::string_view name) const;

  // Removes every entry of the temporary directory (leftovers of an interrupted run), links
  // included, without following any.
  bool ClearTemporary(std::string& error);

  // The shard directory `<out>/<NNNNN>` (output.shard_size), created on first use and kept open;
  // `created` tells the caller that `<out>` itself changed (its fsync makes the new directory
  // durable). -1 with `error` when it cannot be made or is not a plain directory (a link is
  // refused). For the event loop's thread only.
  int ShardFd(std::uint32_t shard, bool& created, std::string& error) const;

 private:
  OutputDir() = default;
  std::string path_;
  util::UniqueFd dir_;
  util::UniqueFd state_;
  util::UniqueFd tmp_;
  mutable std::map<std::uint32_t, util::UniqueFd> shards_;
};

// "00042": the name of shard directory 42.
std::string ShardName(std::uint32_t shard);

// A name that stays inside the directory it is looked up in: not empty, not "." or "..", no '/'
// and no NUL. Every name built from an item id or read back from the journal is checked.
bool IsPlainName(std::string_view name);
// The name of a published image: a plain name, or one inside a shard directory of the output
// directory ("00042/cat.png": digits only, then a plain name; output.shard_size).
bool IsPublishedName(std::string_view name);
// A published name's parts: its shard directory ("" when none) and its file name.
struct PublishedName {
  std::string_view shard;
  std::string_view file;
};
std::optional<PublishedName> SplitPublishedName(std::string_view name);
// The directory `shard` of `out` opened without following a link (and, with `create`, made
// first): -1 with errno when it is missing, a link, or not a directory.
int OpenShardDir(int out, std::string_view shard, bool create);
// A published image opened for reading, or its metadata, following no link anywhere in its name
// (its shard directory included): -1 / false with errno.
int OpenPublished(int out, std::string_view name);
bool StatPublished(int out, std::string_view name, struct stat& info);

// The modes files are created with (the process umask narrows both). What a run publishes
// (images, metadata.jsonl, failed.jsonl, report.json) leaves the rest to the umask: 0644 under
// the usual 022, group-writable under 002 (config `umask`, systemd's UMask=). State (the journal,
// serve's credits and uploads) is the owner's alone whatever the umask.
inline constexpr mode_t kPublishedFileMode = 0666;
inline constexpr mode_t kPrivateFileMode = 0600;
// Where images replaced on purpose are kept (MoveToPrevious): hidden, so that dataset loaders
// (Hugging Face imagefolder) do not take them for part of the dataset.
inline constexpr const char* kPreviousDir = ".previous";

// openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, mode), refusing names that are not plain.
int OpenFileAt(int dir, const std::string& name, int flags, mode_t mode = kPrivateFileMode);

// Creates the directories above `path` that do not exist yet (mkdir -p of its parent), so that
// `--out out/shard-0` works in a fresh checkout; `path` itself is its caller's to create, with the
// mode it wants. False with `error` when one cannot be created.
// `code` (when given) receives the error's code.
bool MakeParentDirectories(const std::string& path, std::string& error,
                           std::error_code* code = nullptr);

// The names in the directory `dir` (without . and ..), read through a duplicate of the
// descriptor; nullopt (errno set) when it cannot be listed.
std::optional<std::vector<std::string>> ListNames(int dir);

// fsync of a directory, so that a rename or a new file in it survives a power cut.
bool SyncDirectory(int dir, std::string& error);

// Moves the published file `name` of the output directory to `<out>/.previous/<new_name>` (the
// directory created on first use, a hidden one that dataset loaders skip), without following a
// link; a `name` that does not exist is nothing to move (true). Both directories are synced.
bool MoveToPrevious(const OutputDir& dir, const std::string& name, const std::string& new_name,
                    std::string& error);

// Writes `bytes` to `<name>.tmp` in `dir`, fsyncs, renames over `name`, fsyncs `dir`.
bool WriteFileAtomically(int dir, const std::string& name, const std::string& bytes, mode_t mode,
                         std::string& error);

// The same, streamed: a file of any size is written through a fixed buffer (a million-line
// metadata.jsonl or a journal compaction never sits whole in memory). Nothing replaces `name`
// until Commit() succeeds; a writer destroyed without a commit removes its temporary file.
//
//   AtomicFileWriter out(dir, "metadata.jsonl", 0644);
//   out.Write(line); ...
//   if (!out.Commit(error)) ...
class AtomicFileWriter {
 public:
  AtomicFileWriter(int dir, std::string name, mode_t mode);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void Write(std::string_view bytes);
  std::uint64_t bytes_written() const { return written_ + buffer_.size(); }
  // Flushes, fsyncs, renames over `name` and fsyncs the directory. False (with `error`) if any
  // step, or any earlier write, failed.
  bool Commit(std::string& error);

 private:
  void Flush();
  int dir_;
  std::string name_;
  std::string temporary_;
  int fd_ = -1;
  std::string buffer_;
  std::uint64_t written_ = 0;
  std::string error_;  // the first failure
  bool committed_ = false;
};

}  // namespace nanobatch::fs
