#include "runner/disk/file_syncs.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "doctest/doctest.h"

namespace nanobatch::disk {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

// What the injected calls saw. They run on the worker threads, one group at a time.
std::atomic<int> syncfs_calls{0};
std::atomic<int> fsync_calls{0};
std::atomic<int> failing_fd{-1};  // fsync of this descriptor fails with EIO
std::atomic<int> syncfs_delay_ms{0};
std::atomic<std::int64_t> dirty_now{0};  // what the injected /proc/meminfo reader answers

void ResetCalls() {
  syncfs_calls = 0;
  fsync_calls = 0;
  failing_fd = -1;
  syncfs_delay_ms = 0;
  dirty_now = 0;
}

std::int64_t InjectedDirty() { return dirty_now; }

constexpr std::uint64_t kFileBytes = 2000;  // what Files writes to each

int CountedSyncfs(int fd) {
  ++syncfs_calls;
  if (syncfs_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(syncfs_delay_ms));
  return ::syncfs(fd);
}
int FailingSyncfs(int /*fd*/) {
  ++syncfs_calls;
  errno = EIO;  // a writeback error somewhere on the filesystem
  return -1;
}
int RefusedSyncfs(int /*fd*/) {
  ++syncfs_calls;
  errno = EPERM;  // what Docker's seccomp profile answers for a call it does not allow
  return -1;
}
int CountedFsync(int fd) {
  ++fsync_calls;
  if (fd == failing_fd) {
    errno = EIO;
    return -1;
  }
  return ::fsync(fd);
}

// A directory of real files, each written and left open for its sync.
struct Files {
  std::string dir;
  int dir_fd = -1;
  std::vector<int> fds;

  Files(const char* base, int count) {
    std::string pattern = std::string(base) + "/file_syncs_test.XXXXXX";
    dir = ::mkdtemp(pattern.data());
    dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; i < count; ++i) {
      const std::string path = dir + "/" + std::to_string(i);
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      REQUIRE(fd >= 0);
      const std::string data(kFileBytes, static_cast<char>('a' + i % 26));
      REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
      fds.push_back(fd);
    }
  }
  ~Files() {
    for (std::size_t i = 0; i < fds.size(); ++i) {
      ::close(fds[i]);
      ::unlink((dir + "/" + std::to_string(i)).c_str());
    }
    ::close(dir_fd);
    ::rmdir(dir.c_str());
  }
};

// Syncs `fds` from one coroutine each, all started in the same turn of the loop; returns each
// one's result.
std::vector<int> SyncAll(net::io_context& io, FileSyncs& syncs, const std::vector<int>& fds) {
  std::vector<int> results(fds.size(), -1);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    net::co_spawn(
        io,
        [&, i]() -> net::awaitable<void> { results[i] = co_await syncs.Sync(fds[i], kFileBytes); },
        net::detached);
  }
  io.run();
  io.restart();
  return results;
}

const char* TempBase() { return ::getenv("TEST_TMPDIR") ? ::getenv("TEST_TMPDIR") : "/tmp"; }

// What every case needs: `count` real files, a loop and a disk worker, with the injected calls'
// counts reset.
struct Rig {
  explicit Rig(int count) : files(TempBase(), count) { ResetCalls(); }
  FileSyncs Syncs(FileSyncs::Method method, int (*syncfs)(int) = &CountedSyncfs) {
    return FileSyncs(io.get_executor(), worker, files.dir_fd, method,
                     {.syncfs = syncfs, .fsync = &CountedFsync, .dirty_bytes = &InjectedDirty});
  }
  Files files;
  net::io_context io;
  BlockingWorker worker;
};

TEST_CASE("file syncs: which filesystems get one syncfs for a group") {
  const int shm = ::open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const int proc = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(shm >= 0);
  REQUIRE(proc >= 0);
  // This machine's kernel is newer than 5.8 (Debian 12: 6.1).
  CHECK(FileSyncs::MethodFor(shm) == FileSyncs::Method::kFilesystemWhenQuiet);
  CHECK(FileSyncs::MethodFor(shm, FileSyncs::Method::kFilesystem) ==
        FileSyncs::Method::kFilesystem);
  // Not a known filesystem, whatever is wanted.
  CHECK(FileSyncs::MethodFor(proc) == FileSyncs::Method::kEachFile);
  CHECK(FileSyncs::MethodFor(proc, FileSyncs::Method::kFilesystem) == FileSyncs::Method::kEachFile);
  CHECK(FileSyncs::MethodFor(-1) == FileSyncs::Method::kEachFile);
  ::close(shm);
  ::close(proc);

  CHECK(FileSyncs::SyncfsReportsErrors("6.1.0-26-amd64"));
  CHECK(FileSyncs::SyncfsReportsErrors("5.8.0"));
  CHECK(FileSyncs::SyncfsReportsErrors("5.10.0-30-amd64"));
  CHECK_FALSE(FileSyncs::SyncfsReportsErrors("5.7.19"));
  CHECK_FALSE(FileSyncs::SyncfsReportsErrors("4.19.0-27-amd64"));
  CHECK_FALSE(FileSyncs::SyncfsReportsErrors("6"));
  CHECK_FALSE(FileSyncs::SyncfsReportsErrors(""));
  CHECK_FALSE(FileSyncs::SyncfsReportsErrors("linux"));
}

TEST_CASE("file syncs: files synced together take one syncfs") {
  Rig rig(20);
  FileSyncs syncs = rig.Syncs(FileSyncs::Method::kFilesystem);
  std::vector<double> observed;
  syncs.set_on_sync([&](double seconds) { observed.push_back(seconds); });
  const std::vector<int> results = SyncAll(rig.io, syncs, rig.files.fds);
  CHECK(results == std::vector<int>(20, 0));
  CHECK(syncs.groups() == 1);
  REQUIRE(observed.size() == 1);  // the metrics see each sync once
  CHECK(observed[0] >= 0);
  CHECK(syncfs_calls == 1);
  CHECK(fsync_calls == 0);
  CHECK(rig.worker.calls() == 1);
}

TEST_CASE("file syncs: a file alone gets its own fsync") {
  Rig rig(1);
  FileSyncs syncs = rig.Syncs(FileSyncs::Method::kFilesystem);
  CHECK(SyncAll(rig.io, syncs, rig.files.fds) == std::vector<int>{0});
  CHECK(syncfs_calls == 0);
  CHECK(fsync_calls == 1);
}

TEST_CASE("file syncs: files that arrive during a sync form the next group") {
  Rig rig(12);
  syncfs_delay_ms = 150;  // a slow disk
  FileSyncs syncs = rig.Syncs(FileSyncs::Method::kFilesystem);
  std::vector<int> results(rig.files.fds.size(), -1);
  std::vector<std::size_t> finish_order;
  auto sync_one = [&](std::size_t i) -> net::awaitable<void> {
    results[i] = co_await syncs.Sync(rig.files.fds[i], kFileBytes);
    finish_order.push_back(i);
  };
  for (std::size_t i = 0; i < 4; ++i) net::co_spawn(rig.io, sync_one(i), net::detached);
  net::co_spawn(
      rig.io,
      [&]() -> net::awaitable<void> {
        net::steady_timer timer(rig.io, 50ms);  // the first group is on the disk by now
        co_await timer.async_wait(net::use_awaitable);
        for (std::size_t i = 4; i < rig.files.fds.size(); ++i) {
          net::co_spawn(rig.io, sync_one(i), net::detached);
        }
      },
      net::detached);
  rig.io.run();
  CHECK(results == std::vector<int>(rig.files.fds.size(), 0));
  CHECK(syncs.groups() == 2);
  CHECK(syncfs_calls == 2);
  CHECK(fsync_calls == 0);
  REQUIRE(finish_order.size() == rig.files.fds.size());
  for (std::size_t k = 0; k < 4; ++k) CHECK(finish_order[k] < 4);  // the first group first
}

TEST_CASE("file syncs: when syncfs fails, each file's fsync tells whose data failed") {
  Rig rig(6);
  failing_fd = rig.files.fds[2];
  FileSyncs syncs = rig.Syncs(FileSyncs::Method::kFilesystem, &FailingSyncfs);
  const std::vector<int> results = SyncAll(rig.io, syncs, rig.files.fds);
  CHECK(results == std::vector<int>{0, 0, EIO, 0, 0, 0});
  CHECK(syncfs_calls == 1);
  CHECK(fsync_calls == 6);

  // Another program's failure only (every file's own fsync succeeds): all durable.
  ResetCalls();
  CHECK(SyncAll(rig.io, syncs, rig.files.fds) == std::vector<int>(6, 0));
  CHECK(fsync_calls == 6);
}

TEST_CASE("file syncs: a syncfs refused (seccomp) means an fsync each from then on") {
  Rig rig(8);
  FileSyncs syncs = rig.Syncs(FileSyncs::Method::kFilesystem, &RefusedSyncfs);
  const std::vector<int> first(rig.files.fds.begin(), rig.files.fds.begin() + 4);
  const std::vector<int> rest(rig.files.fds.begin() + 4, rig.files.fds.end());
  CHECK(SyncAll(rig.io, syncs, first) == std::vector<int>(4, 0));  // durable all the same
  CHECK(syncfs_calls == 1);
  CHECK(fsync_calls == 4);
  CHECK(syncs.method() == FileSyncs::Method::kEachFile);
  CHECK(SyncAll(rig.io, syncs, rest) == std::vector<int>(4, 0));
  CHECK(syncfs_calls == 1);  // not tried again
  CHECK(fsync_calls == 8);

  // A failed sync (EIO) is no refusal: the next group tries syncfs again.
  ResetCalls();
  FileSyncs failing = rig.Syncs(FileSyncs::Method::kFilesystem, &FailingSyncfs);
  CHECK(SyncAll(rig.io, failing, first) == std::vector<int>(4, 0));
  CHECK(failing.method() == FileSyncs::Method::kFilesystem);
  CHECK(SyncAll(rig.io, failing, rest) == std::vector<int>(4, 0));
  CHECK(syncfs_calls == 2);
}

TEST_CASE("file syncs: while much data of others waits, a group takes an fsync each (auto)") {
  Rig rig(6);
  FileSyncs syncs = rig.Syncs(FileSyncs::Method::kFilesystemWhenQuiet);
  dirty_now = std::int64_t{1} << 30;  // another program wrote a gigabyte
  std::vector<double> observed;
  syncs.set_on_sync([&](double seconds) { observed.push_back(seconds); });
  CHECK(SyncAll(rig.io, syncs, rig.files.fds) == std::vector<int>(6, 0));
  CHECK(syncfs_calls == 0);
  CHECK(fsync_calls == 6);
  // Each file's fsync is a call of its own, so they overlap on the device: spread over the
  // worker's threads (6 calls in one turn: batches of 2), after the group's one look at the
  // data waiting. The metrics see the six fsyncs, not the look.
  CHECK(rig.worker.calls() == 1 + 6);
  CHECK(rig.worker.hand_offs() == 1 + 3);
  CHECK(syncs.groups() == 6);
  CHECK(observed.size() == 6);
  syncs.set_on_sync(nullptr);

  // A failing file's fsync fails its own caller only.
  ResetCalls();
  dirty_now = std::int64_t{1} << 30;
  failing_fd = rig.files.fds[3];
  CHECK(SyncAll(rig.io, syncs, rig.files.fds) == std::vector<int>{0, 0, 0, EIO, 0, 0});
  CHECK(syncfs_calls == 0);

  // Up to the group's own pages and the slack: one syncfs.
  ResetCalls();
  dirty_now =
      std::int64_t{6} * 4096 + FileSyncs::kOthersDirtySlack;  // each file's page, and the slack
  CHECK(SyncAll(rig.io, syncs, rig.files.fds) == std::vector<int>(6, 0));
  CHECK(syncfs_calls == 1);
  CHECK(fsync_calls == 0);

  // Unknown (no /proc): one syncfs.
  ResetCalls();
  dirty_now = -1;
  CHECK(SyncAll(rig.io, syncs, rig.files.fds) == std::vector<int>(6, 0));
  CHECK(syncfs_calls == 1);

  // output.image_sync: syncfs takes one whatever waits.
  ResetCalls();
  dirty_now = std::int64_t{1} << 30;
  FileSyncs regardless = rig.Syncs(FileSyncs::Method::kFilesystem);
  CHECK(SyncAll(rig.io, regardless, rig.files.fds) == std::vector<int>(6, 0));
  CHECK(syncfs_calls == 1);
  CHECK(fsync_calls == 0);
}

TEST_CASE("file syncs: the data waiting to be written back, from /proc/meminfo") {
  const std::string meminfo =
      "MemTotal:       49344512 kB\n"
      "Dirty:              1536 kB\n"
      "Writeback:           512 kB\n"
      "WritebackTmp:          0 kB\n";
  CHECK(FileSyncs::ParseDirtyBytes(meminfo) == std::int64_t{2048} * 1024);
  CHECK_FALSE(FileSyncs::ParseDirtyBytes("MemTotal: 1 kB\nDirty: 5 kB\n"));  // no Writeback
  CHECK_FALSE(FileSyncs::ParseDirtyBytes("Dirty: lots\nWriteback: 0 kB\n"));
  CHECK_FALSE(FileSyncs::ParseDirtyBytes(""));
  // WritebackTmp is not Writeback.
  CHECK_FALSE(FileSyncs::ParseDirtyBytes("Dirty: 1 kB\nWritebackTmp: 2 kB\n"));
  // The real file parses.
  CHECK(FileSyncs::ParseDirtyBytes(
            std::string(std::istreambuf_iterator<char>(std::ifstream("/proc/meminfo").rdbuf()),
                        std::istreambuf_iterator<char>()))
            .has_value());
}

TEST_CASE("file syncs: each file on its own when the filesystem is not known") {
  Rig rig(5);
  failing_fd = rig.files.fds[4];
  FileSyncs syncs = rig.Syncs(FileSyncs::Method::kEachFile);
  CHECK(SyncAll(rig.io, syncs, rig.files.fds) == std::vector<int>{0, 0, 0, 0, EIO});
  CHECK(syncs.groups() == 5);
  CHECK(syncfs_calls == 0);
  CHECK(fsync_calls == 5);
}

TEST_CASE("shared file syncs: the jobs writing to one filesystem share its groups") {
  Rig rig(6);
  // A second job's directory on the same filesystem, and a third on another (tmpfs).
  Files other_dir(TempBase(), 2);
  Files elsewhere("/dev/shm", 1);
  auto open_descriptors = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                         std::filesystem::directory_iterator());
  };
  std::vector<double> observed;
  SharedFileSyncs shared(
      rig.io.get_executor(), rig.worker, [&](double seconds) { observed.push_back(seconds); },
      {.syncfs = &CountedSyncfs, .fsync = &CountedFsync, .dirty_bytes = &InjectedDirty});
  using Method = FileSyncs::Method;
  std::shared_ptr<FileSyncs> first = shared.For(rig.files.dir_fd, Method::kFilesystem);
  std::shared_ptr<FileSyncs> second = shared.For(other_dir.dir_fd, Method::kFilesystem);
  CHECK(first == second);
  CHECK(shared.For(rig.files.dir_fd, Method::kFilesystemWhenQuiet) != first);  // another method
  std::shared_ptr<FileSyncs> third = shared.For(elsewhere.dir_fd, Method::kFilesystem);
  CHECK(third != first);
  CHECK(shared.live() == 2);  // the kFilesystemWhenQuiet one is no longer held

  // Two jobs' images written in one turn take one syncfs between them.
  std::vector<int> results(5, -1);
  for (std::size_t i = 0; i < 5; ++i) {
    FileSyncs& syncs = i < 3 ? *first : *second;
    const int fd = i < 3 ? rig.files.fds[i] : other_dir.fds[i - 3];
    net::co_spawn(
        rig.io,
        [&results, &syncs, fd, i]() -> net::awaitable<void> {
          results[i] = co_await syncs.Sync(fd, kFileBytes);
        },
        net::detached);
  }
  rig.io.run();
  rig.io.restart();
  CHECK(results == std::vector<int>(5, 0));
  CHECK(syncfs_calls == 1);
  CHECK(fsync_calls == 0);
  CHECK(observed.size() == 1);  // the hook given to the registry
  // (Counted after the loop has run: its reactor opens descriptors of its own.)
  const auto descriptors_held = open_descriptors();  // the two entries' among them

  // It syncs through a descriptor of its own: the first job's may close.
  const int closed = ::dup(rig.files.dir_fd);
  REQUIRE(closed >= 0);
  std::shared_ptr<FileSyncs> via_closed = shared.For(closed, Method::kEachFile);
  ::close(closed);
  CHECK(SyncAll(rig.io, *via_closed, {rig.files.fds[3], rig.files.fds[4]}) ==
        std::vector<int>(2, 0));

  // Released by every holder, an entry is gone (and its descriptor closed).
  first.reset();
  second.reset();
  third.reset();
  via_closed.reset();
  CHECK(shared.live() == 0);
  CHECK(open_descriptors() == descriptors_held - 2);
  // A descriptor that cannot be examined gets a FileSyncs of its own, never shared.
  std::shared_ptr<FileSyncs> lone = shared.For(-1, Method::kFilesystem);
  REQUIRE(lone != nullptr);
  CHECK(shared.live() == 0);
}

}  // namespace
}  // namespace nanobatch::disk
