#include "runner/download/image_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nanobatch::download {
namespace {

std::string HashFd(int fd) {
  if (fd < 0) return "";
  util::Sha256 hash;
  char buffer[1 << 16];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) hash.Update(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return n < 0 ? "" : hash.FinishHex();
}

// Temporary names are unique in the process by construction (concurrent downloads of `a`'s
// second image and of item `a-1` must not share one); leftovers are cleared at start.
std::string NextTempName() {
  static std::uint64_t counter = 0;
  // Taken once: getpid is a system call per image otherwise (glibc no longer caches it), and
  // nanobatch never forks.
  static const std::string prefix = "dl-" + std::to_string(::getpid()) + "-";
  return prefix + std::to_string(++counter) + ".part";
}

}  // namespace

std::string FileSha256(int dir, const std::string& name) {
  return HashFd(fs::OpenPublished(dir, name));
}

std::string FileSha256(const std::string& path) {
  return HashFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

ImageFile::ImageFile(const fs::OutputDir& dir) : dir_(dir), temp_name_(NextTempName()) {
  fd_ = fs::OpenFileAt(dir_.tmp_fd(), temp_name_, O_WRONLY | O_CREAT | O_EXCL,
                       fs::kPublishedFileMode);
  if (fd_ < 0) {
    error_ = "cannot create " + dir_.StatePathOf("tmp/" + temp_name_) + ": " + std::strerror(errno);
  }
}

ImageFile::~ImageFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlinkat(dir_.tmp_fd(), temp_name_.c_str(), 0);
}

bool ImageFile::Write(const char* data, std::size_t size) {
  if (!ok()) return false;
  check_.Feed(data, size);
  hash_.Update(data, size);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd_, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ =
          "cannot write " + dir_.StatePathOf("tmp/" + temp_name_) + ": " + std::strerror(errno);
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  bytes_ += size;
  return true;
}

ImageFile::Committed ImageFile::Check(std::string& error) {
  if (!ok()) {
    error = error_;
    return Committed::kIo;
  }
  const ImageVerdict verdict = check_.Finish();
  if (verdict.kind == ImageVerdict::Kind::kNotAnImage) {
    error = verdict.problem;
    return Committed::kNotAnImage;
  }
  if (verdict.kind == ImageVerdict::Kind::kIncomplete) {
    error = verdict.problem;
    return Committed::kIncomplete;
  }
  type_ = verdict.type;
  pixel_size_ = verdict.size;
  return Committed::kOk;
}

std::string ImageFile::SyncError(int result) const {
  return "cannot sync " + dir_.StatePathOf("tmp/" + temp_name_) + ": " + std::strerror(result);
}

ImageFile::Committed ImageFile::Publish(const std::string& base_name, std::string& file_name,
                                        std::string& error, std::optional<std::uint32_t> shard,
                                        bool* new_directory) {
  if (fd_ < 0 || type_.empty()) {
    error = "internal: publishing an image that was not checked";
    return Committed::kIo;
  }
  ::close(fd_);
  fd_ = -1;
  const std::string name = base_name + "." + type_;
  if (!fs::IsPlainName(name)) {
    error = "\"" + name + "\" is not a plain file name";
    return Committed::kIo;
  }
  int target = dir_.fd();
  file_name = name;
  if (shard) {
    bool created = false;
    target = dir_.ShardFd(*shard, created, error);
    if (target < 0) return Committed::kIo;
    if (new_directory != nullptr) *new_directory = created;
    file_name = fs::ShardName(*shard) + "/" + name;
  }
  // renameat replaces whatever has the final name (a planted link included) without following it.
  if (::renameat(dir_.tmp_fd(), temp_name_.c_str(), target, name.c_str()) != 0) {
    error = "cannot rename to " + dir_.PathOf(file_name) + ": " + std::strerror(errno);
    return Committed::kIo;
  }
  published_dir_ = target;
  committed_ = true;
  sha256_hex_ = hash_.FinishHex();
  return Committed::kOk;
}

}  // namespace nanobatch::download
