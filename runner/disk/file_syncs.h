#pragma once
// FileSyncs: makes the data of newly written files durable, several files with one call where
// the filesystem allows. A file written for publication (a downloaded image in the output
// directory's temporary area) must be durable before it is renamed to its final name.
//
// An fsync per file costs, on a local filesystem, a write of the file's data, a write of its
// inode's block (the same block again for each of the 16 inodes it holds) and a flush of the
// device's cache, each a round trip to the device. One syncfs of the filesystem after a group of
// files were written writes each dirty block once and flushes once. On this project's machine
// (ext4 on a virtio disk), files of 2 KB written 16 at a time: 0.16 ms of kernel CPU per file
// with an fsync each, 0.05-0.06 ms with one syncfs per group, and a quarter of the wall time.
//
// syncfs covers everything dirty on the filesystem, other programs' writes too, so it is used
// only where it is known to make every file durable and to report a failure
// (Method::kFilesystem): ext4, XFS, btrfs and tmpfs, on Linux 5.8 or later (older kernels
// return 0 from syncfs whatever failed). Elsewhere (NFS, FUSE, overlays: a FUSE server is told
// to sync a file only by that file's fsync) every file gets its own fsync (kEachFile), as it
// does when the config asks for it (output.image_sync: fsync). By default
// (kFilesystemWhenQuiet, output.image_sync: auto) a group written while much more data than its
// own waits to be written back, system-wide (/proc/meminfo), takes an fsync each: its syncfs
// would wait for that data and write it back on this process's account (with dd rewriting a
// file on the same disk, 2,000 small images took 2.3-4.1 s with a syncfs per group, 1.0-1.2 s
// with an fsync each, and 1.4-1.8 s so while such a group still fsynced its files in one call;
// see below).
//
// A group is one blocking call on the disk worker: syncfs, and only if that fails (it reports
// any writeback error on the filesystem since the previous syncfs through the same descriptor,
// another program's included) an fsync of each of the group's files, which tells whose data
// failed. So each caller learns its own file's result. A group of one file gets its fsync. A
// group that finds others' data waiting (auto) hands each file back to its caller for an fsync
// of its own, as kEachFile makes it: those go to the worker pool as separate calls and overlap
// on the device, where fsyncing the group's files one after another in its call did not (every
// sync 10 ms slow, dd's data waiting, 2,000 small images: 16-21 s so, 6.8-6.9 s now). A
// syncfs refused outright (EPERM or ENOSYS: a container's seccomp filter) turns the object to an
// fsync per file for good. One group is in flight at a time; files that arrive meanwhile form
// the next one, so the slower the disk, the larger the groups.
//
// Example:
//   FileSyncs syncs(executor, worker, dir_fd, FileSyncs::MethodFor(dir_fd));
//   write(fd, ...);
//   if (const int error = co_await syncs.Sync(fd, bytes_written); error != 0) { halt: ... }
//   renameat(...);   // then sync the directory

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "runner/disk/blocking_worker.h"
#include "runner/util/async.h"

namespace nanobatch::disk {

// The blocking calls FileSyncs makes, replaceable by tests that need one to fail: both return 0
// or -1 with errno set, as the system calls do.
struct SyncCalls {
  int (*syncfs)(int) = nullptr;  // nullptr: ::syncfs
  int (*fsync)(int) = nullptr;   // nullptr: ::fsync
  // Bytes of file data waiting to be written back, system-wide (/proc/meminfo's Dirty plus
  // Writeback); -1 if unknown. nullptr: read /proc/meminfo.
  std::int64_t (*dirty_bytes)() = nullptr;
};

class FileSyncs {
 public:
  enum class Method {
    kEachFile,    // fsync(file) for each file
    kFilesystem,  // syncfs once for the files written together
    // kFilesystem, except for a group written while much more data of others waits to be
    // written back (more than the group's own and kOthersDirtySlack): an fsync each for it.
    kFilesystemWhenQuiet,
  };
  using Calls = SyncCalls;

  // `wanted` for a descriptor on ext4, XFS, btrfs or tmpfs under Linux 5.8 or later;
  // kEachFile otherwise (and when fstatfs fails).
  static Method MethodFor(int fd, Method wanted = Method::kFilesystemWhenQuiet);
  // Whether a kernel release string ("6.1.0-26-amd64") is 5.8 or later: syncfs reports
  // writeback errors from then on.
  static bool SyncfsReportsErrors(std::string_view release);

  // `filesystem_fd`: any descriptor on the files' filesystem (the directory they are written
  // in); it must stay open as long as this object.
  FileSyncs(boost::asio::any_io_executor executor, BlockingWorker& worker, int filesystem_fd,
            Method method, Calls calls = {});
  FileSyncs(const FileSyncs&) = delete;
  FileSyncs& operator=(const FileSyncs&) = delete;

  // kFilesystem turns into kEachFile for good when syncfs is refused (a container's seccomp
  // filter: EPERM or ENOSYS).
  Method method() const { return method_; }

  // Returns 0 once the data and size of the file open as `fd` are durable, or an errno. `fd`
  // must stay open and unchanged until this returns.
  // `bytes`: what was written to it (a group whose files account for the data waiting to be
  // written back takes a syncfs; one that others' data would slow down takes an fsync each).
  boost::asio::awaitable<int> Sync(int fd, std::uint64_t bytes);

  // Data waiting to be written back beyond a group's own that still lets it take a syncfs: a
  // backlog written back once (a few thousand small files another program left, the images
  // written while the group's call was on its way), not a stream that every syncfs would
  // wait for again (a program writing hundreds of megabytes).
  static constexpr std::int64_t kOthersDirtySlack = std::int64_t{64} << 20;
  // Dirty plus Writeback of a /proc/meminfo text, in bytes; nullopt if either is missing.
  static std::optional<std::int64_t> ParseDirtyBytes(std::string_view meminfo);

  // Syncs made so far: one per group, one per file with kEachFile and in a group handed back
  // to its callers.
  std::uint64_t groups() const { return groups_; }
  // Called after every blocking call with the seconds it took on the worker (for the metrics).
  void set_on_sync(std::function<void(double)> on_sync) { on_sync_ = std::move(on_sync); }

 private:
  struct Group {
    std::vector<int> fds;
    std::uint64_t bytes = 0;   // written to them, in whole pages (what they hold dirty)
    std::vector<int> results;  // filled on the worker; read on the loop once `done`
    // Set on the worker: others' data waits, so each file is to get its own fsync instead.
    bool each_file = false;
    bool done = false;
  };
  // The blocking call for `group` (runs on the worker). Returns syncfs's errno if it was called
  // and failed, else 0; each file's own result is in group.results, unless group.each_file.
  static int SyncGroup(Group& group, int filesystem_fd, Calls calls, bool mind_others);
  // Whether syncfs failed because it is not allowed or not there (a container's seccomp
  // filter), rather than because a sync failed.
  static bool SyncfsRefused(int error);
  // One blocking fsync of `fd` on the worker, on its own.
  boost::asio::awaitable<int> SyncAlone(int fd);
  // Reports a blocking call begun at `start` to on_sync_.
  void Observe(std::chrono::steady_clock::time_point start) const;

  boost::asio::any_io_executor executor_;
  BlockingWorker& worker_;
  int filesystem_fd_;
  Method method_;
  Calls calls_;
  std::shared_ptr<Group> forming_;  // the group new files join; null: none yet
  bool in_flight_ = false;
  util::AsyncEvent finished_;
  std::uint64_t groups_ = 0;
  std::function<void(double)> on_sync_;
};

// One FileSyncs per filesystem and method, shared by every job writing there (serve runs several
// at once): their images then share groups, one syncfs (on a disk, one flush of its cache) for
// all of them where each job would make its own. An entry lives while someone holds it, and
// syncs through a duplicate of the first holder's descriptor, closed with it: a filesystem
// nobody writes to any more is not kept busy.
//
// Example:
//   SharedFileSyncs shared(executor, worker, on_sync);
//   std::shared_ptr<FileSyncs> syncs = shared.For(dir_fd, FileSyncs::MethodFor(dir_fd));
class SharedFileSyncs {
 public:
  // `on_sync`: given to every FileSyncs made (FileSyncs::set_on_sync).
  SharedFileSyncs(boost::asio::any_io_executor executor, BlockingWorker& worker,
                  std::function<void(double)> on_sync = {}, SyncCalls calls = {});
  SharedFileSyncs(const SharedFileSyncs&) = delete;
  SharedFileSyncs& operator=(const SharedFileSyncs&) = delete;

  // The FileSyncs for the filesystem `fd` is on, with `method`, shared with every other holder
  // of the same. (When `fd` cannot be examined or duplicated: one of the caller's own, syncing
  // through `fd`, which must then stay open as long as it is held.)
  std::shared_ptr<FileSyncs> For(int fd, FileSyncs::Method method);
  // Entries held by someone (tests).
  std::size_t live() const;

 private:
  struct Entry;  // a FileSyncs and the descriptor it syncs through

  boost::asio::any_io_executor executor_;
  BlockingWorker& worker_;
  std::function<void(double)> on_sync_;
  SyncCalls calls_;
  // By device and method.
  std::map<std::pair<std::uint64_t, int>, std::weak_ptr<FileSyncs>> entries_;
};

}  // namespace nanobatch::disk
