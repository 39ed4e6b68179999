#include "runner/disk/file_syncs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <functional>
#include <utility>

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

std::int64_t MeminfoDirtyBytes() {
  const int fd = ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[8192];
  const ssize_t got = ::read(fd, text, sizeof text);
  ::close(fd);
  if (got <= 0) return -1;
  return FileSyncs::ParseDirtyBytes(std::string_view(text, static_cast<std::size_t>(got)))
      .value_or(-1);
}

// The kB figure of the line starting with `key` ("Dirty:") in a /proc/meminfo text.
std::optional<std::int64_t> MeminfoKib(std::string_view text, std::string_view key) {
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.substr(0, key.size()) != key) continue;
    std::size_t digits = key.size();
    while (digits < line.size() && line[digits] == ' ') ++digits;
    std::int64_t kib = 0;
    const auto [after, error] =
        std::from_chars(line.data() + digits, line.data() + line.size(), kib);
    if (error != std::errc() || after == line.data() + digits || kib < 0) return std::nullopt;
    return kib;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::int64_t> FileSyncs::ParseDirtyBytes(std::string_view meminfo) {
  const auto dirty = MeminfoKib(meminfo, "Dirty:");
  const auto writeback = MeminfoKib(meminfo, "Writeback:");
  if (!dirty || !writeback) return std::nullopt;
  return (*dirty + *writeback) * 1024;
}

bool FileSyncs::SyncfsReportsErrors(std::string_view release) {
  unsigned major = 0, minor = 0;
  const char* end = release.data() + release.size();
  auto [after_major, major_error] = std::from_chars(release.data(), end, major);
  if (major_error != std::errc() || after_major == end || *after_major != '.') return false;
  auto [after_minor, minor_error] = std::from_chars(after_major + 1, end, minor);
  if (minor_error != std::errc()) return false;
  return major > 5 || (major == 5 && minor >= 8);
}

FileSyncs::Method FileSyncs::MethodFor(int fd, Method wanted) {
  struct statfs about {};
  if (::fstatfs(fd, &about) != 0) return Method::kEachFile;
  const long type = static_cast<long>(about.f_type);
  if (type != kExt4 && type != kXfs && type != kBtrfs && type != kTmpfs) return Method::kEachFile;
  struct utsname system {};
  if (::uname(&system) != 0 || !SyncfsReportsErrors(system.release)) return Method::kEachFile;
  return wanted;
}

FileSyncs::FileSyncs(net::any_io_executor executor, BlockingWorker& worker, int filesystem_fd,
                     Method method, Calls calls)
    : executor_(executor),
      worker_(worker),
      filesystem_fd_(filesystem_fd),
      method_(method),
      calls_{calls.syncfs ? calls.syncfs : &Syncfs, calls.fsync ? calls.fsync : &Fsync,
             calls.dirty_bytes ? calls.dirty_bytes : &MeminfoDirtyBytes},
      finished_(executor) {}

int FileSyncs::SyncGroup(Group& group, int filesystem_fd, Calls calls, bool mind_others) {
  // group.results was sized on the loop before the call was handed over, and the loop does
  // not touch the group until the call is done.
  int syncfs_error = 0;
  // A syncfs writes back everything dirty on the filesystem: when much more is waiting than
  // this group wrote (another program writing a lot), it would wait for that data too, and
  // its CPU would be spent here. (Dirty is counted system-wide, so data bound for another
  // filesystem also sends the group to fsync: slower at worst, never less durable.)
  auto others_dirty = [&] {
    const std::int64_t dirty = calls.dirty_bytes();
    return dirty >= 0 && dirty > static_cast<std::int64_t>(group.bytes) + kOthersDirtySlack;
  };
  if (group.fds.size() > 1) {
    if (mind_others && others_dirty()) {
      group.each_file = true;  // each caller fsyncs its own file, concurrently with the others
      return 0;
    }
    if (calls.syncfs(filesystem_fd) == 0) return 0;
    syncfs_error = errno;
  }
  // One file, or syncfs failed: each file's own fsync says whether its data is durable (a
  // failure of syncfs may be another program's file; this rare path need not be fast).
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

net::awaitable<int> FileSyncs::SyncAlone(int fd) {
  ++groups_;
  std::function<int()> call = [fd, fsync = calls_.fsync] { return fsync(fd) == 0 ? 0 : errno; };
  const auto start = std::chrono::steady_clock::now();
  const int result = co_await worker_.Run(std::move(call));
  Observe(start);
  co_return result;
}

net::awaitable<int> FileSyncs::Sync(int fd, std::uint64_t bytes) {
  if (method_ == Method::kEachFile) co_return co_await SyncAlone(fd);
  if (!forming_) forming_ = std::make_shared<Group>();
  const std::shared_ptr<Group> group = forming_;
  const std::size_t index = group->fds.size();
  group->fds.push_back(fd);
  // A file holds whole pages of the page cache: a 2 KB image is 4 KiB of dirty data.
  constexpr std::uint64_t kPage = 4096;
  group->bytes += (bytes + kPage - 1) / kPage * kPage;
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
    // Built before the co_await: GCC 12 mishandles a lambda temporary with a destructor (here
    // its copy of `group`) inside a co_await expression.
    std::function<int()> call = [group, filesystem_fd = filesystem_fd_, calls = calls_,
                                 mind_others = method_ == Method::kFilesystemWhenQuiet] {
      return SyncGroup(*group, filesystem_fd, calls, mind_others);
    };
    const auto start = std::chrono::steady_clock::now();
    const int syncfs_error = co_await worker_.Run(std::move(call));
    // A group handed back to its callers synced nothing itself: their fsyncs are counted.
    if (!group->each_file) {
      ++groups_;
      Observe(start);
    }
    // syncfs not allowed here: an fsync for each file from now on, without trying it again.
    if (SyncfsRefused(syncfs_error)) method_ = Method::kEachFile;
    group->done = true;
    in_flight_ = false;
    finished_.Notify();
  }
  // Others' data waits: this file's own fsync, beside those of the rest of the group.
  if (group->each_file) co_return co_await SyncAlone(fd);
  co_return group->results[index];
}

struct SharedFileSyncs::Entry {
  // `owned_fd`: a descriptor of this entry's own (closed with it), or -1; `sync_fd` the one
  // synced through.
  Entry(int owned_fd, int sync_fd, net::any_io_executor executor, BlockingWorker& worker,
        FileSyncs::Method method, SyncCalls calls)
      : owned(owned_fd), syncs(std::move(executor), worker, sync_fd, method, calls) {}
  Entry(const Entry&) = delete;
  Entry& operator=(const Entry&) = delete;
  ~Entry() {
    if (owned >= 0) ::close(owned);
  }
  int owned;
  FileSyncs syncs;
};

SharedFileSyncs::SharedFileSyncs(net::any_io_executor executor, BlockingWorker& worker,
                                 std::function<void(double)> on_sync, SyncCalls calls)
    : executor_(std::move(executor)),
      worker_(worker),
      on_sync_(std::move(on_sync)),
      calls_(calls) {}

std::shared_ptr<FileSyncs> SharedFileSyncs::For(int fd, FileSyncs::Method method) {
  struct stat about {};
  const bool known = ::fstat(fd, &about) == 0;
  const auto key =
      std::make_pair(static_cast<std::uint64_t>(about.st_dev), static_cast<int>(method));
  if (known) {
    if (auto found = entries_.find(key); found != entries_.end()) {
      if (std::shared_ptr<FileSyncs> live = found->second.lock()) return live;
    }
  }
  const int owned = known ? ::fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  auto entry =
      std::make_shared<Entry>(owned, owned >= 0 ? owned : fd, executor_, worker_, method, calls_);
  std::shared_ptr<FileSyncs> syncs(entry, &entry->syncs);  // shares the entry's lifetime
  if (on_sync_) syncs->set_on_sync(on_sync_);
  if (owned >= 0) {
    std::erase_if(entries_, [](const auto& held) { return held.second.expired(); });
    entries_[key] = syncs;
  }
  return syncs;
}

std::size_t SharedFileSyncs::live() const {
  return static_cast<std::size_t>(std::count_if(
      entries_.begin(), entries_.end(), [](const auto& held) { return !held.second.expired(); }));
}

}  // namespace nanobatch::disk
