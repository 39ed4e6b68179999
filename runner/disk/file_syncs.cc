#include "runner/disk/file_syncs.h"

#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <functional>

namespace nanobatch::disk {

namespace net = boost::asio;

namespace {

// statfs f_type values (linux/magic.h) of the filesystems whose syncfs writes every dirty file
// and inode and then commits (ext4: every inode and buffer, then a cache flush or a journal
// commit; XFS: a log force; btrfs: a transaction commit; tmpfs: nothing to write).
constexpr long kExt4 = 0xEF53;
constexpr long kXfs = 0x58465342;
constexpr long kBtrfs = 0x9123683E;
constexpr long kTmpfs = 0x01021994;

int Syncfs(int fd) { return ::syncfs(fd); }
int Fsync(int fd) { return ::fsync(fd); }

}  // namespace

bool FileSyncs::SyncfsReportsErrors(std::string_view release) {
  unsigned major = 0, minor = 0;
  const char* end = release.data() + release.size();
  auto [after_major, major_error] = std::from_chars(release.data(), end, major);
  if (major_error != std::errc() || after_major == end || *after_major != '.') return false;
  auto [after_minor, minor_error] = std::from_chars(after_major + 1, end, minor);
  if (minor_error != std::errc()) return false;
  return major > 5 || (major == 5 && minor >= 8);
}

FileSyncs::Method FileSyncs::MethodFor(int fd) {
  struct statfs about {};
  if (::fstatfs(fd, &about) != 0) return Method::kEachFile;
  const long type = static_cast<long>(about.f_type);
  if (type != kExt4 && type != kXfs && type != kBtrfs && type != kTmpfs) return Method::kEachFile;
  struct utsname system {};
  if (::uname(&system) != 0 || !SyncfsReportsErrors(system.release)) return Method::kEachFile;
  return Method::kFilesystem;
}

FileSyncs::FileSyncs(net::any_io_executor executor, BlockingWorker& worker, int filesystem_fd,
                     Method method, Calls calls)
    : executor_(executor),
      worker_(worker),
      filesystem_fd_(filesystem_fd),
      method_(method),
      calls_{calls.syncfs ? calls.syncfs : &Syncfs, calls.fsync ? calls.fsync : &Fsync},
      finished_(executor) {}

int FileSyncs::SyncGroup(Group& group, int filesystem_fd, Calls calls) {
  // Sized before the call is handed over: the loop does not touch the group until it is done.
  int syncfs_error = 0;
  if (group.fds.size() > 1) {
    if (calls.syncfs(filesystem_fd) == 0) return 0;
    syncfs_error = errno;
  }
  // One file, or syncfs failed: each file's own fsync says whether its data is durable (the
  // failure may be another program's file).
  for (std::size_t i = 0; i < group.fds.size(); ++i) {
    group.results[i] = calls.fsync(group.fds[i]) == 0 ? 0 : errno;
  }
  return syncfs_error;
}

bool FileSyncs::SyncfsRefused(int error) {
  // What a seccomp filter (a container's) or an old kernel answers for a call it does not
  // allow or have; a failed sync answers EIO, ENOSPC, EDQUOT and the like.
  return error == ENOSYS || error == EPERM || error == EACCES;
}

void FileSyncs::Observe(std::chrono::steady_clock::time_point start) const {
  if (on_sync_) {
    on_sync_(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

net::awaitable<int> FileSyncs::Sync(int fd) {
  if (method_ == Method::kEachFile) {
    ++groups_;
    std::function<int()> call = [fd, fsync = calls_.fsync] { return fsync(fd) == 0 ? 0 : errno; };
    const auto start = std::chrono::steady_clock::now();
    const int result = co_await worker_.Run(std::move(call));
    Observe(start);
    co_return result;
  }
  if (!forming_) forming_ = std::make_shared<Group>();
  const std::shared_ptr<Group> group = forming_;
  const std::size_t index = group->fds.size();
  group->fds.push_back(fd);
  while (!group->done) {
    if (in_flight_ || forming_ != group) {
      co_await finished_.Wait();
      continue;
    }
    in_flight_ = true;
    // Let every coroutine that is ready to sync join this group first.
    co_await net::post(executor_, net::use_awaitable);
    forming_.reset();
    group->results.assign(group->fds.size(), 0);
    ++groups_;
    // Built before the co_await: GCC 12 mishandles a lambda temporary with a destructor (here
    // its copy of `group`) inside a co_await expression.
    std::function<int()> call = [group, filesystem_fd = filesystem_fd_, calls = calls_] {
      return SyncGroup(*group, filesystem_fd, calls);
    };
    const auto start = std::chrono::steady_clock::now();
    const int syncfs_error = co_await worker_.Run(std::move(call));
    Observe(start);
    // syncfs not allowed here: an fsync for each file from now on, without trying it again.
    if (SyncfsRefused(syncfs_error)) method_ = Method::kEachFile;
    group->done = true;
    in_flight_ = false;
    finished_.Notify();
  }
  co_return group->results[index];
}

}  // namespace nanobatch::disk
