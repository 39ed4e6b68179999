#include "runner/download/image_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runner/journal/journal.h"

namespace nanobatch::download {

std::string FileSha256(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
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

std::string_view DetectImageType(std::string_view head) {
  if (head.size() >= 8 && head.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8))
    return "png";
  if (head.size() >= 3 && head.substr(0, 3) == "\xFF\xD8\xFF") return "jpg";
  if (head.size() >= 12 && head.substr(0, 4) == "RIFF" && head.substr(8, 4) == "WEBP")
    return "webp";
  return "";
}

ImageFile::ImageFile(std::string temp_path) : temp_path_(std::move(temp_path)) {
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) error_ = "cannot create " + temp_path_ + ": " + std::strerror(errno);
}

ImageFile::~ImageFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

bool ImageFile::Write(const char* data, std::size_t size) {
  if (!ok()) return false;
  if (head_.size() < 16) head_.append(data, std::min(size, 16 - head_.size()));
  hash_.Update(data, size);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd_, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = "cannot write " + temp_path_ + ": " + std::strerror(errno);
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  bytes_ += size;
  return true;
}

bool ImageFile::Commit(const std::string& out_dir, const std::string& base_name,
                       std::string& file_name, std::string& error) {
  if (!ok()) {
    error = error_;
    return false;
  }
  const std::string_view type = DetectImageType(head_);
  if (type.empty()) {
    error = "the downloaded body is not a PNG, JPEG or WebP image";
    return false;
  }
  if (::fsync(fd_) != 0) {
    error = "cannot sync " + temp_path_ + ": " + std::strerror(errno);
    return false;
  }
  ::close(fd_);
  fd_ = -1;
  file_name = base_name + "." + std::string(type);
  const std::string final_path = out_dir + "/" + file_name;
  if (::rename(temp_path_.c_str(), final_path.c_str()) != 0) {
    error = "cannot rename to " + final_path + ": " + std::strerror(errno);
    return false;
  }
  committed_ = true;
  sha256_hex_ = hash_.FinishHex();
  return journal::SyncDirectory(out_dir, error);
}

}  // namespace nanobatch::download
