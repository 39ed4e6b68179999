#include "runner/export/webdataset.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include "runner/output/output_files.h"
#include "runner/util/input_file.h"

namespace nanobatch::exporting {
namespace {

constexpr std::size_t kCopyChunk = 256 << 10;

std::string ShardFileName(std::uint64_t shard) {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%06llu.tar", static_cast<unsigned long long>(shard));
  return name;
}

std::string Key(std::uint64_t sample) {
  char key[32];
  std::snprintf(key, sizeof key, "%09llu", static_cast<unsigned long long>(sample));
  return key;
}

// One tar shard being written: to a temporary name in the destination, renamed when closed.
class Shard {
 public:
  Shard(int to_dir, std::string name) : to_dir_(to_dir), name_(std::move(name)) {
    temporary_ = "." + name_ + ".tmp";
    fd_.Reset(::openat(to_dir_, temporary_.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                       fs::kPublishedFileMode));
    if (fd_.get() < 0) {
      error_ = "cannot create " + temporary_ + ": " + std::strerror(errno);
      return;
    }
    archive_.reset(archive_write_new());
    if (archive_write_set_format_pax_restricted(archive_.get()) != ARCHIVE_OK ||
        archive_write_open_fd(archive_.get(), fd_.get()) != ARCHIVE_OK) {
      error_ = std::string("cannot start a tar: ") + archive_error_string(archive_.get());
    }
  }
  ~Shard() {
    if (!closed_) ::unlinkat(to_dir_, temporary_.c_str(), 0);
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // Adds `name`: `size` bytes read from `fd`, streamed through a fixed buffer (never a whole
  // image in memory).
  bool AddFile(const std::string& name, std::int64_t mtime, std::uint64_t size, int fd) {
    if (!Header(name, mtime, size)) return false;
    std::string buffer(kCopyChunk, '\0');
    std::uint64_t left = size;
    while (left > 0) {
      const ssize_t n = ::read(fd, buffer.data(), std::min<std::uint64_t>(left, buffer.size()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error_ = "reading the image for " + name + " ended early";
        return false;
      }
      if (archive_write_data(archive_.get(), buffer.data(), static_cast<std::size_t>(n)) != n) {
        return Fail("writing " + name);
      }
      left -= static_cast<std::uint64_t>(n);
    }
    return true;
  }

  // Adds `name` holding `bytes`.
  bool AddBytes(const std::string& name, std::int64_t mtime, const std::string& bytes) {
    if (!Header(name, mtime, bytes.size())) return false;
    if (archive_write_data(archive_.get(), bytes.data(), bytes.size()) !=
        static_cast<la_ssize_t>(bytes.size())) {
      return Fail("writing " + name);
    }
    return true;
  }

  // Finishes the tar, syncs it and gives it its name.
  bool Close() {
    if (!ok()) return false;
    if (archive_write_close(archive_.get()) != ARCHIVE_OK) return Fail("finishing the tar");
    if (::fsync(fd_.get()) != 0 ||
        ::renameat(to_dir_, temporary_.c_str(), to_dir_, name_.c_str()) != 0) {
      error_ = "cannot finish " + name_ + ": " + std::strerror(errno);
      return false;
    }
    closed_ = true;
    return true;
  }

 private:
  bool Header(const std::string& name, std::int64_t mtime, std::uint64_t size) {
    if (!ok()) return false;
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                        archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(size));
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_mtime(entry.get(), mtime, 0);
    if (archive_write_header(archive_.get(), entry.get()) != ARCHIVE_OK) {
      return Fail("writing the header of " + name);
    }
    return true;
  }

  bool Fail(const std::string& what) {
    error_ = what + ": " + archive_error_string(archive_.get());
    return false;
  }
  struct ArchiveFree {
    void operator()(archive* a) const { archive_write_free(a); }
  };
  int to_dir_;
  std::string name_;
  std::string temporary_;
  util::UniqueFd fd_;
  std::unique_ptr<archive, ArchiveFree> archive_;
  std::string error_;
  bool closed_ = false;
};

// The shard number of a name this export writes (shard-NNNNNN.tar, six digits or more), if it is
// one.
std::optional<std::uint64_t> ShardNumberOf(std::string_view name) {
  constexpr std::string_view kPrefix = "shard-";
  constexpr std::string_view kSuffix = ".tar";
  if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) return std::nullopt;
  const std::string_view digits =
      name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  std::uint64_t number = 0;
  if (std::from_chars(digits.data(), digits.data() + digits.size(), number).ec != std::errc()) {
    return std::nullopt;
  }
  // Only the very name ShardFileName gives that number (six digits or more, nothing after them).
  if (ShardFileName(number) != name) return std::nullopt;
  return number;
}

// Shards numbered `written` and above, left by an earlier export of more shards into the same
// directory (a smaller --samples-per-shard, or images since removed): a loader globbing
// shard-*.tar would read their samples twice. Only names this export writes are touched, and a
// link is removed as a name, never followed.
bool RemoveStaleShards(int to_dir, const std::string& to, std::uint64_t written,
                       std::string& error) {
  const auto names = fs::ListNames(to_dir);
  if (!names) {
    error = "cannot list " + to + ": " + std::strerror(errno);
    return false;
  }
  for (const std::string& name : *names) {
    const auto number = ShardNumberOf(name);
    if (!number || *number < written) continue;
    if (::unlinkat(to_dir, name.c_str(), 0) != 0 && errno != ENOENT) {
      error = "cannot remove the stale shard " + to + "/" + name + ": " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

}  // namespace

ExportResult ExportWebDataset(const journal::JournalState& state, const fs::OutputDir& out,
                              const std::string& to, const WebDatasetOptions& options) {
  ExportResult result;
  if (!fs::MakeParentDirectories(to, result.error)) return result;
  if (::mkdir(to.c_str(), 0777) != 0 && errno != EEXIST) {
    result.error = "cannot create " + to + ": " + std::strerror(errno);
    return result;
  }
  util::UniqueFd to_dir(::open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (to_dir.get() < 0) {
    result.error = "cannot open " + to + ": " + std::strerror(errno);
    return result;
  }
  std::unique_ptr<Shard> shard;
  bool failed = false;
  state.ForEachItem([&](const proto::ItemSnapshot& item) {
    if (failed || item.departed() || item.phase() != proto::ItemSnapshot::DONE) return;
    for (const auto& image : item.images()) {
      util::UniqueFd fd(fs::OpenPublished(out.fd(), image.file_name()));
      struct stat info {};
      if (fd.get() < 0 || ::fstat(fd.get(), &info) != 0 ||
          static_cast<std::uint64_t>(info.st_size) != image.bytes()) {
        result.skipped.push_back(image.file_name());
        continue;
      }
      if (!shard) {
        shard = std::make_unique<Shard>(to_dir.get(), ShardFileName(result.shards));
      }
      const std::string key = Key(result.samples);
      const std::string& name = image.file_name();
      const std::string extension = name.substr(name.rfind('.'));
      std::string line = output::OutputFiles::MetadataLine(item, image);
      line.insert(1, "\"key\":\"" + key + "\",");  // the line is an object: {"key":..., ...}
      if (!shard->AddFile(key + extension, info.st_mtime, image.bytes(), fd.get()) ||
          !shard->AddBytes(key + ".json", info.st_mtime, line)) {
        failed = true;
        return;
      }
      ++result.samples;
      result.bytes += image.bytes();
      if (result.samples % options.samples_per_shard == 0) {
        if (!shard->Close()) {
          failed = true;
          return;
        }
        shard.reset();
        ++result.shards;
      }
    }
  });
  if (!failed && shard) {
    failed = !shard->Close();
    if (!failed) ++result.shards;
  }
  if (failed) {
    result.error = shard ? shard->error() : "writing a shard failed";
    return result;
  }
  if (!RemoveStaleShards(to_dir.get(), to, result.shards, result.error)) return result;
  if (::fsync(to_dir.get()) != 0) {
    result.error = "cannot sync " + to + ": " + std::strerror(errno);
    return result;
  }
  result.ok = true;
  return result;
}

}  // namespace nanobatch::exporting
