#include "runner/serve/spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

#include "runner/fs/output_dir.h"
#include "runner/util/json_text.h"

namespace nanobatch::serve {
namespace {

constexpr std::string_view kExtensions[] = {"jsonl", "yaml", "yml"};
constexpr std::size_t kMaxCreditsFile = 16 << 20;
constexpr const char* kCancelMark = "cancelled";  // in jobs/NAME/.nanobatch/

std::string Errno() { return std::strerror(errno); }

std::int64_t Nanoseconds(const struct timespec& t) {
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

// Opens (creating if missing) the subdirectory `name` of `parent`, never through a link.
util::UniqueFd OpenDirectory(int parent, const char* name, const std::string& shown,
                             std::string& error) {
  if (::mkdirat(parent, name, 0755) != 0 && errno != EEXIST) {
    error = "cannot create " + shown + ": " + Errno();
    return {};
  }
  util::UniqueFd fd(::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) error = "cannot open " + shown + ": " + Errno() + " (it must be a directory)";
  return fd;
}

// The exit code and the cancel of a failed job, from its summary at `path` (one this service
// wrote; a file that is not one, or is larger than any summary, says nothing).
void ReadSummaryEnd(const std::string& path, FinishedJob& job) {
  constexpr std::size_t kMaxSummary = 1 << 20;
  std::string text, error;
  if (!util::ReadInputFile(path, kMaxSummary, text, error)) return;
  boost::system::error_code code;
  const boost::json::value value = boost::json::parse(text, code);
  if (code || !value.is_object()) return;
  const boost::json::object& summary = value.as_object();
  if (const auto* exit_code = summary.if_contains("exit_code");
      exit_code != nullptr && exit_code->is_int64() && exit_code->as_int64() >= 0 &&
      exit_code->as_int64() <= 255) {
    job.exit_code = static_cast<int>(exit_code->as_int64());
  }
  if (const auto* cancelled = summary.if_contains("cancelled");
      cancelled != nullptr && cancelled->is_bool()) {
    job.cancelled = cancelled->as_bool();
  }
}

// The names in a directory (without . and ..); none when it cannot be listed.
std::vector<std::string> List(int dir) {
  return fs::ListNames(dir).value_or(std::vector<std::string>());
}

// NAME.EXT with EXT a manifest extension: the split; nullopt else.
std::optional<std::pair<std::string, std::string>> SplitManifestName(const std::string& file) {
  const auto dot = file.rfind('.');
  if (dot == std::string::npos || dot == 0) return std::nullopt;
  const std::string extension = file.substr(dot + 1);
  if (std::find(std::begin(kExtensions), std::end(kExtensions), extension) ==
      std::end(kExtensions)) {
    return std::nullopt;
  }
  return std::make_pair(file.substr(0, dot), extension);
}

}  // namespace

bool Spool::IsJobName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::unique_ptr<Spool> Spool::Open(const std::string& path, std::string& error) {
  std::unique_ptr<Spool> spool(new Spool());
  spool->path_ = path;
  if (!fs::MakeParentDirectories(path, error)) return nullptr;
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    error = "cannot create the spool " + path + ": " + Errno();
    return nullptr;
  }
  spool->root_ = util::UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!spool->root_) {
    error = "cannot open the spool " + path + ": " + Errno();
    return nullptr;
  }
  const int root = spool->root_.get();
  if (!(spool->inbox_ = OpenDirectory(root, "inbox", path + "/inbox", error)) ||
      !(spool->jobs_ = OpenDirectory(root, "jobs", path + "/jobs", error)) ||
      !(spool->done_ = OpenDirectory(root, "done", path + "/done", error)) ||
      !(spool->failed_ = OpenDirectory(root, "failed", path + "/failed", error)) ||
      !(spool->state_ = OpenDirectory(root, ".nanobatch", path + "/.nanobatch", error))) {
    return nullptr;
  }
  spool->lock_ = util::UniqueFd(
      ::openat(spool->state_.get(), "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!spool->lock_) {
    error = "cannot open " + path + "/.nanobatch/lock: " + Errno();
    return nullptr;
  }
  if (::flock(spool->lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    error = errno == EWOULDBLOCK
                ? "another nanobatch serve is using the spool " + path + " (its lock is held)"
                : "cannot lock " + path + "/.nanobatch/lock: " + Errno();
    return nullptr;
  }
  if (!spool->LoadFinishedCredits(error)) return nullptr;
  return spool;
}

std::vector<InboxEntry> Spool::ScanInbox(std::vector<std::string>* ignored) {
  std::vector<InboxEntry> ready;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> seen;
  auto ignore = [&](const std::string& file, const std::string& why) {
    if (ignored != nullptr && reported_.insert(file).second) {
      ignored->push_back("inbox/" + file + ": " + why);
    }
  };
  for (const std::string& file : List(inbox_.get())) {
    if (file.front() == '.') continue;  // being written (or an upload being checked)
    struct stat info;
    if (::fstatat(inbox_.get(), file.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (!S_ISREG(info.st_mode)) {
      ignore(file, "not a regular file; left alone");
      continue;
    }
    auto split = SplitManifestName(file);
    if (!split) {
      ignore(file, "not a manifest (NAME.jsonl, NAME.yaml or NAME.yml); left alone");
      continue;
    }
    if (!IsJobName(split->first)) {
      ignore(file,
             "a job name is 1 to 128 of A-Z a-z 0-9 . _ - (not starting with '.'); rename it");
      continue;
    }
    const std::pair<std::int64_t, std::int64_t> stamp{info.st_size, Nanoseconds(info.st_mtim)};
    seen[file] = stamp;
    auto previous = last_seen_.find(file);
    if (previous == last_seen_.end() || previous->second != stamp) continue;  // next scan
    ready.push_back({split->first, file, split->second, Nanoseconds(info.st_ctim)});
  }
  last_seen_ = std::move(seen);
  std::sort(ready.begin(), ready.end(), [](const InboxEntry& a, const InboxEntry& b) {
    return a.arrived_ns != b.arrived_ns ? a.arrived_ns < b.arrived_ns : a.file < b.file;
  });
  return ready;
}

bool Spool::InInbox(const std::string& name) const {
  for (std::string_view extension : kExtensions) {
    struct stat info;
    const std::string file = name + "." + std::string(extension);
    if (::fstatat(inbox_.get(), file.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0) return true;
  }
  return false;
}

std::vector<ActiveJob> Spool::ScanActive(std::string& error) const {
  std::vector<ActiveJob> active;
  for (const std::string& name : List(jobs_.get())) {
    if (!IsJobName(name)) continue;
    util::UniqueFd state = OpenJobState(name);
    if (!state) continue;
    for (std::string_view extension : kExtensions) {
      const std::string file = "manifest." + std::string(extension);
      struct stat info;
      if (::fstatat(state.get(), file.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (!S_ISREG(info.st_mode)) {
        error = JobDir(name) + "/.nanobatch/" + file + " is not a regular file";
        continue;
      }
      struct stat mark;
      const bool cancelled = ::fstatat(state.get(), kCancelMark, &mark, AT_SYMLINK_NOFOLLOW) == 0;
      active.push_back(
          {name, JobDir(name) + "/.nanobatch/" + file, Nanoseconds(info.st_ctim), cancelled});
      break;
    }
  }
  std::sort(active.begin(), active.end(), [](const ActiveJob& a, const ActiveJob& b) {
    return a.claimed_ns != b.claimed_ns ? a.claimed_ns < b.claimed_ns : a.name < b.name;
  });
  return active;
}

std::vector<FinishedJob> Spool::ScanFinished() const {
  std::vector<FinishedJob> finished;
  constexpr std::string_view kSuffix = ".summary.json";
  for (const bool done : {true, false}) {
    const int dir = done ? done_.get() : failed_.get();
    for (const std::string& file : List(dir)) {
      if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
      const std::string name = file.substr(0, file.size() - kSuffix.size());
      if (!IsJobName(name)) continue;
      struct stat info;
      if (::fstatat(dir, file.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
      FinishedJob job{name, done, Nanoseconds(info.st_mtim)};
      if (done) {
        job.exit_code = 0;
      } else if (S_ISREG(info.st_mode)) {  // a link is not followed
        ReadSummaryEnd(path_ + "/failed/" + file, job);
      }
      finished.push_back(std::move(job));
    }
  }
  // A name in both (failed once, done later): the later summary wins.
  std::sort(finished.begin(), finished.end(), [](const FinishedJob& a, const FinishedJob& b) {
    return a.finished_ns < b.finished_ns;
  });
  return finished;
}

std::optional<std::string> Spool::Claim(const InboxEntry& entry, std::string& error) {
  auto dir = fs::OutputDir::Open(JobDir(entry.name), /*create=*/true, error);
  if (!dir) return std::nullopt;
  const std::string target = "manifest." + entry.extension;
  if (::unlinkat(dir->state_fd(), kCancelMark, 0) != 0 && errno != ENOENT) {
    error = "cannot remove " + dir->StatePathOf(kCancelMark) + ": " + Errno();
    return std::nullopt;
  }
  if (::renameat(inbox_.get(), entry.file.c_str(), dir->state_fd(), target.c_str()) != 0) {
    error = "cannot move inbox/" + entry.file + " to " + dir->StatePathOf(target) + ": " + Errno();
    return std::nullopt;
  }
  if (!fs::SyncDirectory(dir->state_fd(), error) || !fs::SyncDirectory(inbox_.get(), error)) {
    return std::nullopt;
  }
  last_seen_.erase(entry.file);
  return dir->StatePathOf(target);
}

util::UniqueFd Spool::OpenJobState(const std::string& name, std::string* error) const {
  util::UniqueFd state(::openat(jobs_.get(), (name + "/.nanobatch").c_str(),
                                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!state && error) *error = "cannot open " + JobDir(name) + "/.nanobatch: " + Errno();
  return state;
}

bool Spool::MarkCancelled(const std::string& name, std::string& error) {
  util::UniqueFd state = OpenJobState(name, &error);
  if (!state) return false;
  return fs::WriteFileAtomically(state.get(), kCancelMark,
                                 "cancelled by DELETE /jobs/" + name + "\n", fs::kPublishedFileMode,
                                 error);
}

bool Spool::Finish(const std::string& name, const std::string& manifest_path, bool done,
                   const std::string& summary_json, std::string& error) {
  const int dest = done ? done_.get() : failed_.get();
  const char* dest_name = done ? "done" : "failed";
  if (!fs::WriteFileAtomically(dest, name + ".summary.json", summary_json, fs::kPublishedFileMode,
                               error)) {
    return false;
  }
  // The other directory's summary of an earlier end of the same name is stale now.
  ::unlinkat(done ? failed_.get() : done_.get(), (name + ".summary.json").c_str(), 0);
  const std::string file = manifest_path.substr(manifest_path.rfind('/') + 1);  // manifest.EXT
  const std::string extension = file.substr(file.rfind('.') + 1);
  util::UniqueFd state = OpenJobState(name, &error);
  if (!state) return false;
  const std::string target = name + "." + extension;
  if (::renameat(state.get(), file.c_str(), dest, target.c_str()) != 0) {
    error = "cannot move " + manifest_path + " to " + path_ + "/" + dest_name + "/" + target +
            ": " + Errno();
    return false;
  }
  return fs::SyncDirectory(dest, error) && fs::SyncDirectory(state.get(), error);
}

std::optional<std::string> Spool::StageUpload(const std::string& name, std::string_view body,
                                              std::string& error, std::string_view extension) {
  const std::string staged = "." + name + ".upload." + std::string(extension);
  if (!fs::WriteFileAtomically(inbox_.get(), staged, std::string(body), fs::kPrivateFileMode,
                               error)) {
    return std::nullopt;
  }
  return path_ + "/inbox/" + staged;
}

bool Spool::PublishUpload(const std::string& name, std::string& error, std::string_view extension) {
  const std::string staged = "." + name + ".upload." + std::string(extension);
  const std::string target = name + "." + std::string(extension);
  if (::renameat(inbox_.get(), staged.c_str(), inbox_.get(), target.c_str()) != 0) {
    error = "cannot move inbox/" + staged + " to inbox/" + target + ": " + Errno();
    return false;
  }
  // Written whole and synced by us: the next scan takes it without the stability wait.
  struct stat info;
  if (::fstatat(inbox_.get(), target.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0) {
    last_seen_[target] = {info.st_size, Nanoseconds(info.st_mtim)};
  }
  return fs::SyncDirectory(inbox_.get(), error);
}

void Spool::DiscardUpload(const std::string& name, std::string_view extension) {
  ::unlinkat(inbox_.get(), ("." + name + ".upload." + std::string(extension)).c_str(), 0);
}

bool Spool::LoadFinishedCredits(std::string& error) {
  util::UniqueFd fd(::openat(state_.get(), "credits.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return true;
    error = "cannot open " + path_ + "/.nanobatch/credits.json: " + Errno();
    return false;
  }
  std::string text;
  char buffer[65536];
  ssize_t n;
  while ((n = ::read(fd.get(), buffer, sizeof buffer)) > 0 && text.size() < kMaxCreditsFile) {
    text.append(buffer, static_cast<std::size_t>(n));
  }
  boost::system::error_code code;
  boost::json::value value = boost::json::parse(text, code);
  const boost::json::object* jobs = !code && value.is_object() &&
                                            value.as_object().contains("jobs") &&
                                            value.as_object().at("jobs").is_object()
                                        ? &value.as_object().at("jobs").as_object()
                                        : nullptr;
  if (jobs == nullptr) {
    // The budget's memory of finished jobs: refusing to start is better than forgetting it.
    error = path_ +
            "/.nanobatch/credits.json is not what serve writes ({\"jobs\": {NAME: "
            "credits}}); fix or remove it (removing forgets what finished jobs spent)";
    return false;
  }
  for (const auto& [name, credits] : *jobs) {
    if (credits.is_uint64() || (credits.is_int64() && credits.as_int64() >= 0)) {
      finished_credits_[std::string(name)] = credits.to_number<std::uint64_t>();
    }
  }
  return true;
}

bool Spool::RecordFinishedCredits(const std::string& name, std::uint64_t credits,
                                  std::string& error) {
  finished_credits_[name] = credits;
  boost::json::object jobs;
  for (const auto& [job, spent] : finished_credits_) jobs[job] = spent;
  return fs::WriteFileAtomically(state_.get(), "credits.json",
                                 util::JsonText(boost::json::object{{"jobs", jobs}}) + "\n",
                                 fs::kPrivateFileMode, error);
}

}  // namespace nanobatch::serve
