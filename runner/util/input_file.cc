#include "runner/util/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nanobatch::util {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string DescribeBytes(std::uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0)
    return std::to_string(bytes >> 30) + " GiB";
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0)
    return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0)
    return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

UniqueFd OpenInputFile(const std::string& path, std::uint64_t max_bytes, std::string& error,
                       InputFileProblem* problem) {
  InputFileProblem ignored;
  InputFileProblem& why = problem != nullptr ? *problem : ignored;
  why = InputFileProblem::kNone;
  // O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    error = std::string("cannot open: ") + std::strerror(errno);
    // "-" is not standard input here: inputs are read again later (a manifest's lines by their
    // place in the file, while the run goes on and when it resumes), which a pipe cannot give.
    if (path == "-") error += " (standard input cannot be read as a file here: write it to a file)";
    if (path.empty()) error = "cannot open: the path is empty";
    why = InputFileProblem::kCannotOpen;
    return {};
  }
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) {
    error = std::string("cannot read: ") + std::strerror(errno);
    why = InputFileProblem::kCannotRead;
    return {};
  }
  if (S_ISDIR(info.st_mode)) {
    error = "is a directory, not a file";
    why = InputFileProblem::kNotAFile;
    return {};
  }
  if (!S_ISREG(info.st_mode)) {
    error = "is not a regular file (a device, FIFO or socket); give a file";
    if (S_ISFIFO(info.st_mode)) {
      error += " (a pipe cannot be read again, as inputs are: write it to a file)";
    }
    why = InputFileProblem::kNotAFile;
    return {};
  }
  if (static_cast<std::uint64_t>(info.st_size) > max_bytes) {
    error = "is larger than the " + DescribeBytes(max_bytes) + " accepted";
    why = InputFileProblem::kTooLarge;
    return {};
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

bool ReadInputFile(const std::string& path, std::uint64_t max_bytes, std::string& out,
                   std::string& error, InputFileProblem* problem) {
  InputFileProblem ignored;
  InputFileProblem& why = problem != nullptr ? *problem : ignored;
  UniqueFd fd = OpenInputFile(path, max_bytes, error, &why);
  if (!fd) return false;
  out.clear();
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = std::string("cannot read: ") + std::strerror(errno);
      why = InputFileProblem::kCannotRead;
      return false;
    }
    if (n == 0) return true;
    // The file may grow while it is read: the cap holds for what is read, not only for stat.
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      error = "is larger than the " + DescribeBytes(max_bytes) + " accepted";
      why = InputFileProblem::kTooLarge;
      return false;
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace nanobatch::util
