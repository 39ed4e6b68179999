#include "runner/fs/output_dir.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace nanobatch::fs {
namespace {

std::string Errno() { return std::strerror(errno); }

// Opens the directory `name` under `parent` without following a link, creating it when asked.
// The state directory and its temporary area are the owner's alone (0700): the journal holds
// prompts and task ids, and unfinished downloads wait there.
util::UniqueFd OpenSubdirectory(int parent, const std::string& name, const std::string& shown,
                                bool create, std::string& error, OpenProblem& problem) {
  if (create && ::mkdirat(parent, name.c_str(), 0700) != 0 && errno != EEXIST) {
    error = "cannot create " + shown + ": " + Errno();
    problem = OpenProblem::kIo;
    return {};
  }
  util::UniqueFd fd(
      ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ELOOP || errno == ENOTDIR) {
      error = shown +
              " is a symbolic link or not a directory; nanobatch follows no links inside its "
              "output directory: remove it and run again";
      problem = OpenProblem::kNotADirectory;
    } else {
      error = "cannot open " + shown + ": " + Errno();
      problem = OpenProblem::kIo;
    }
  }
  return fd;
}

}  // namespace

bool IsPlainName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

std::optional<PublishedName> SplitPublishedName(std::string_view name) {
  const auto slash = name.find('/');
  if (slash == std::string_view::npos) {
    if (!IsPlainName(name)) return std::nullopt;
    return PublishedName{"", name};
  }
  const std::string_view shard = name.substr(0, slash);
  if (shard.empty() || shard.size() > 10) return std::nullopt;
  for (char c : shard) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  if (!IsPlainName(name.substr(slash + 1))) return std::nullopt;
  return PublishedName{shard, name.substr(slash + 1)};
}

bool IsPublishedName(std::string_view name) { return SplitPublishedName(name).has_value(); }

std::string ShardName(std::uint32_t shard) {
  char name[16];
  std::snprintf(name, sizeof name, "%05u", shard);
  return name;
}

int OpenShardDir(int out, std::string_view shard, bool create) {
  const std::string name(shard);
  if (create && ::mkdirat(out, name.c_str(), 0777) != 0 && errno != EEXIST) return -1;
  return ::openat(out, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

namespace {

// Where a published name lives: the directory it is in (`out`, or its shard directory opened
// here without following a link) and its file name there. nullopt with errno when the name is
// not a published one (EINVAL) or its shard directory cannot be opened.
struct PublishedPlace {
  util::UniqueFd shard;  // held open while the place is used; -1 for a name directly in `out`
  int dir = -1;
  std::string file;
};

std::optional<PublishedPlace> Locate(int out, std::string_view name) {
  auto parts = SplitPublishedName(name);
  if (!parts) {
    errno = EINVAL;
    return std::nullopt;
  }
  PublishedPlace place;
  place.file = std::string(parts->file);
  place.dir = out;
  if (!parts->shard.empty()) {
    place.shard = util::UniqueFd(OpenShardDir(out, parts->shard, /*create=*/false));
    if (place.shard.get() < 0) return std::nullopt;
    place.dir = place.shard.get();
  }
  return place;
}

}  // namespace

int OpenPublished(int out, std::string_view name) {
  auto place = Locate(out, name);
  return place ? OpenFileAt(place->dir, place->file, O_RDONLY) : -1;
}

bool StatPublished(int out, std::string_view name, struct stat& info) {
  auto place = Locate(out, name);
  return place && ::fstatat(place->dir, place->file.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0;
}

int OutputDir::ShardFd(std::uint32_t shard, bool& created, std::string& error) const {
  created = false;
  auto it = shards_.find(shard);
  if (it != shards_.end()) return it->second.get();
  const std::string name = ShardName(shard);
  struct stat info;
  const bool existed = ::fstatat(fd(), name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0;
  util::UniqueFd opened(OpenShardDir(fd(), name, /*create=*/true));
  if (opened.get() < 0) {
    error = "cannot create or open " + PathOf(name) + " (a link there is refused): " + Errno();
    return -1;
  }
  created = !existed;
  const int result = opened.get();
  shards_.emplace(shard, std::move(opened));
  return result;
}

int OpenFileAt(int dir, const std::string& name, int flags, mode_t mode) {
  if (!IsPlainName(name)) {
    errno = EINVAL;
    return -1;
  }
  return ::openat(dir, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

namespace {
constexpr std::size_t kBufferBytes = 1 << 20;
}  // namespace

bool MakeParentDirectories(const std::string& path, std::string& error, std::error_code* code_out) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return true;
  std::error_code code;
  std::filesystem::create_directories(parent, code);
  if (code_out != nullptr) *code_out = code;
  if (code) {
    error = "cannot create " + parent.string() + ": " + code.message();
    return false;
  }
  return true;
}

std::optional<std::vector<std::string>> ListNames(int dir) {
  // A duplicate descriptor for the listing: closedir() closes it, not the caller's.
  DIR* listing = ::fdopendir(::fcntl(dir, F_DUPFD_CLOEXEC, 0));
  if (listing == nullptr) return std::nullopt;
  ::rewinddir(listing);  // the duplicate shares the caller's position
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(listing)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(listing);
  return names;
}

bool SyncDirectory(int dir, std::string& error) {
  if (::fsync(dir) == 0) return true;
  error = "cannot sync a directory: " + Errno();
  return false;
}

bool MoveToPrevious(const OutputDir& dir, const std::string& name, const std::string& new_name,
                    std::string& error) {
  if (!IsPublishedName(name) || !IsPlainName(new_name)) {
    error = "refusing to move \"" + name + "\": not a published file name";
    return false;
  }
  // In its shard directory, if it has one (opened by Locate: the OutputDir's cache is the loop's).
  auto place = Locate(dir.fd(), name);
  struct stat info;
  if (!place || ::fstatat(place->dir, place->file.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return true;  // nothing to move
    error = "cannot look at " + dir.PathOf(name) + ": " + Errno();
    return false;
  }
  if (::mkdirat(dir.fd(), kPreviousDir, 0777) != 0 && errno != EEXIST) {
    error = "cannot create " + dir.PathOf(kPreviousDir) + ": " + Errno();
    return false;
  }
  util::UniqueFd previous(
      ::openat(dir.fd(), kPreviousDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (previous.get() < 0) {
    error = "cannot open " + dir.PathOf(kPreviousDir) + " (a link there is refused): " + Errno();
    return false;
  }
  if (::renameat(place->dir, place->file.c_str(), previous.get(), new_name.c_str()) != 0) {
    error = "cannot move " + dir.PathOf(name) + " to " + kPreviousDir + "/: " + Errno();
    return false;
  }
  return SyncDirectory(previous.get(), error) && SyncDirectory(place->dir, error) &&
         SyncDirectory(dir.fd(), error);
}

bool WriteFileAtomically(int dir, const std::string& name, const std::string& bytes, mode_t mode,
                         std::string& error) {
  AtomicFileWriter out(dir, name, mode);
  out.Write(bytes);
  return out.Commit(error);
}

AtomicFileWriter::AtomicFileWriter(int dir, std::string name, mode_t mode)
    : dir_(dir), name_(std::move(name)), temporary_(name_ + ".tmp") {
  fd_ = OpenFileAt(dir_, temporary_, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd_ < 0) error_ = "cannot create " + temporary_ + ": " + Errno();
  buffer_.reserve(kBufferBytes);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlinkat(dir_, temporary_.c_str(), 0);
}

void AtomicFileWriter::Write(std::string_view bytes) {
  buffer_.append(bytes);
  if (buffer_.size() >= kBufferBytes) Flush();
}

void AtomicFileWriter::Flush() {
  if (error_.empty() && fd_ >= 0) {
    std::size_t done = 0;
    while (done < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error_ = "cannot write " + temporary_ + ": " + Errno();
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    written_ += done;
  }
  buffer_.clear();
}

bool AtomicFileWriter::Commit(std::string& error) {
  Flush();
  if (error_.empty() && ::fsync(fd_) != 0) error_ = "cannot sync " + temporary_ + ": " + Errno();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  // renameat replaces whatever has the final name (a link included) without following it.
  if (error_.empty() && ::renameat(dir_, temporary_.c_str(), dir_, name_.c_str()) != 0) {
    error_ = "cannot replace " + name_ + ": " + Errno();
  }
  if (!error_.empty()) {
    error = error_;
    return false;
  }
  committed_ = true;
  return SyncDirectory(dir_, error);
}

std::unique_ptr<OutputDir> OutputDir::Open(const std::string& path, bool create, std::string& error,
                                           OpenProblem* problem_out) {
  OpenProblem ignored;
  OpenProblem& problem = problem_out != nullptr ? *problem_out : ignored;
  problem = OpenProblem::kIo;
  std::unique_ptr<OutputDir> dir(new OutputDir());
  dir->path_ = path;
  // Errors that say the path cannot be a directory there: the user's to fix, not the disk's.
  const auto names_no_directory = [](int number) {
    return number == ENOTDIR || number == ENOENT || number == EEXIST || number == ELOOP ||
           number == ENAMETOOLONG;
  };
  struct stat info;
  std::error_code parents;
  if (::stat(path.c_str(), &info) == 0) {
    if (!S_ISDIR(info.st_mode)) {
      error = path + " is not a directory (--out / out must name a directory)";
      problem = OpenProblem::kNotADirectory;
      return nullptr;
    }
  } else if (errno != ENOENT || !create) {
    // (A reader given a directory that does not exist is told so by its caller.)
    if (errno != ENOENT && names_no_directory(errno)) problem = OpenProblem::kNotADirectory;
    error = "cannot use " + path + " as the output directory: " + Errno();
    return nullptr;
  } else if (!MakeParentDirectories(path, error, &parents)) {
    if (parents.category() == std::generic_category() ||
        parents.category() == std::system_category()) {
      if (names_no_directory(parents.value())) problem = OpenProblem::kNotADirectory;
    }
    return nullptr;
  } else if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    if (names_no_directory(errno)) problem = OpenProblem::kNotADirectory;
    error = "cannot create " + path + ": " + Errno();
    return nullptr;
  }
  dir->dir_ = util::UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir->dir_) {
    error = "cannot open " + path + ": " + Errno();
    if (errno == ENOTDIR) problem = OpenProblem::kNotADirectory;
    return nullptr;
  }
  dir->state_ =
      OpenSubdirectory(dir->fd(), ".nanobatch", dir->PathOf(".nanobatch"), create, error, problem);
  if (!dir->state_) {
    if (!create && ::faccessat(dir->fd(), ".nanobatch", F_OK, AT_SYMLINK_NOFOLLOW) != 0 &&
        errno == ENOENT) {
      error = path + " holds no nanobatch run (no .nanobatch/ in it): give the --out of a run";
    }
    return nullptr;
  }
  // A reader (`status`) needs no temporary area; a writer does.
  dir->tmp_ =
      OpenSubdirectory(dir->state_fd(), "tmp", dir->StatePathOf("tmp"), create, error, problem);
  if (!dir->tmp_ && create) return nullptr;
  error.clear();
  problem = OpenProblem::kNone;
  return dir;
}

std::string OutputDir::PathOf(std::string_view name) const {
  return path_ + "/" + std::string(name);
}

std::string OutputDir::StatePathOf(std::string_view name) const {
  return path_ + "/.nanobatch/" + std::string(name);
}

bool OutputDir::ClearTemporary(std::string& error) {
  const auto names = ListNames(tmp_fd());
  if (!names) {
    error = "cannot list " + StatePathOf("tmp") + ": " + Errno();
    return false;
  }
  for (const std::string& name : *names) {
    // unlinkat removes a link itself, never what it points to; a directory planted here is left.
    if (::unlinkat(tmp_fd(), name.c_str(), 0) != 0 && errno != ENOENT && errno != EISDIR) {
      error = "cannot remove " + StatePathOf("tmp/" + name) + ": " + Errno();
      return false;
    }
  }
  return true;
}

}  // namespace nanobatch::fs
