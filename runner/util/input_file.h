#pragma once
// Opening a user's input file (manifest, config, key file, CA file) the one safe way: it must be
// a regular file (not a directory, a device such as /dev/zero, a FIFO or a socket: those would
// spin, block or grow memory without bound) of at most a given size. A FIFO is opened without
// blocking so that the check can refuse it. Errors name the file and say why, with the errno.
//
// Example:
//   std::string error;
//   UniqueFd fd = OpenInputFile("prompts.jsonl", kMaxManifestBytes, error);
//   if (!fd) { report(error); }
//   std::string text;
//   if (!ReadInputFile("nanobatch.yaml", 1 << 20, text, error)) { report(error); }

#include <cstdint>
#include <string>

namespace nanobatch::util {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.Release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Why an input file was refused, for callers that react to one reason (never by its text).
enum class InputFileProblem { kNone, kCannotOpen, kNotAFile, kTooLarge, kCannotRead };

// Opens `path` read-only if it is a regular file of at most `max_bytes`; otherwise an invalid
// UniqueFd and `error` ("is a directory, not a file", "cannot open: Permission denied", ...),
// without the path: callers report it as an InputError that names the file already.
UniqueFd OpenInputFile(const std::string& path, std::uint64_t max_bytes, std::string& error,
                       InputFileProblem* problem = nullptr);

// OpenInputFile, then the whole content into `out`.
bool ReadInputFile(const std::string& path, std::uint64_t max_bytes, std::string& out,
                   std::string& error, InputFileProblem* problem = nullptr);

// "12 MiB", "1 GiB": sizes in error messages.
std::string DescribeBytes(std::uint64_t bytes);

}  // namespace nanobatch::util
