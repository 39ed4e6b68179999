#include "runner/output/output_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

#include "runner/util/json_arena.h"

namespace nanobatch::output {
namespace json = boost::json;
namespace {

// False when the line did not go out whole: the files are then rebuilt at the end of the run.
bool AppendLine(int fd, const std::string& line) {
  if (fd < 0) return false;
  ssize_t n;
  do {
    n = ::write(fd, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(line.size());
}

}  // namespace

namespace {

// The item's own columns (manifest `meta:`) after nanobatch's: a column of the same name as one
// of ours (only an old or damaged journal could hold one) never replaces ours, and text that is
// not a JSON object adds nothing.
void AddMetaColumns(const proto::ItemSnapshot& item, json::object& line) {
  if (item.meta_json().empty()) return;
  boost::system::error_code error;
  json::value meta = json::parse(item.meta_json(), error, line.storage());
  if (error || !meta.is_object()) return;
  for (auto& [name, value] : meta.as_object()) {
    if (!line.contains(name)) line.emplace(name, std::move(value));
  }
}

}  // namespace

OutputFiles::OutputFiles(const fs::OutputDir& dir) : dir_(dir) {}

OutputFiles::~OutputFiles() {
  if (metadata_fd_ >= 0) ::close(metadata_fd_);
  if (failed_fd_ >= 0) ::close(failed_fd_);
}

std::string OutputFiles::MetadataLine(const proto::ItemSnapshot& item,
                                      const proto::Downloaded& image) {
  util::JsonArena<> arena;  // one line per image: no heap allocation per column
  json::object line(
      {
          {"file_name", image.file_name()},
          {"id", item.item_id()},
          {"prompt", item.prompt()},
          {"task_id", item.task_id()},
          {"resolution", item.resolution()},
          {"aspect_ratio", item.aspect_ratio()},
          {"output_format", item.output_format()},
          {"sha256", image.sha256()},
          {"bytes", image.bytes()},
          // The task's price; with several images per task every line repeats it.
          {"credits", item.credits()},
          {"image_index", image.index()},
      },
      arena.storage());
  // From the image's header; absent when it did not tell (an older journal, an odd format).
  if (image.width() > 0 && image.height() > 0) {
    line["width"] = image.width();
    line["height"] = image.height();
  }
  if (!image.mismatch().empty()) line["mismatch"] = image.mismatch();
  if (item.image_urls_size() > 0) {
    json::array urls(arena.storage());
    for (const auto& url : item.image_urls()) urls.emplace_back(url);
    line["image_urls"] = std::move(urls);
  }
  AddMetaColumns(item, line);
  return json::serialize(line) + "\n";
}

std::string OutputFiles::FailureLine(const proto::ItemSnapshot& item) {
  util::JsonArena<> arena;
  json::object line(
      {
          {"id", item.item_id()},
          {"error_code", item.last_error_code()},
          {"message", item.last_error_message()},
          {"attempts", item.attempt()},
          {"failed_tasks", item.failed_tasks()},
          {"task_id", item.task_id()},
          {"prompt", item.prompt()},
      },
      arena.storage());
  AddMetaColumns(item, line);
  return json::serialize(line) + "\n";
}

bool OutputFiles::Rewrite(const journal::JournalState& state, std::string& error) {
  // Streamed: a million finished items make a file of hundreds of megabytes, never a string.
  fs::AtomicFileWriter metadata(dir_.fd(), "metadata.jsonl", fs::kPublishedFileMode);
  fs::AtomicFileWriter failed(dir_.fd(), "failed.jsonl", fs::kPublishedFileMode);
  state.ForEachItem([&](const proto::ItemSnapshot& item) {
    if (item.phase() == proto::ItemSnapshot::GAVE_UP) failed.Write(FailureLine(item));
    if (item.phase() == proto::ItemSnapshot::DONE) {
      for (const auto& image : item.images()) metadata.Write(MetadataLine(item, image));
    }
  });
  if (!metadata.Commit(error) || !failed.Commit(error)) return false;
  if (metadata_fd_ >= 0) ::close(metadata_fd_);
  if (failed_fd_ >= 0) ::close(failed_fd_);
  metadata_fd_ = fs::OpenFileAt(dir_.fd(), "metadata.jsonl", O_WRONLY | O_APPEND);
  failed_fd_ = fs::OpenFileAt(dir_.fd(), "failed.jsonl", O_WRONLY | O_APPEND);
  stale_ = metadata_fd_ < 0 || failed_fd_ < 0;
  return true;
}

bool OutputFiles::Finish(const journal::JournalState& state, std::string& error) {
  if (stale_) return Rewrite(state, error);
  if (::fdatasync(metadata_fd_) != 0 || ::fdatasync(failed_fd_) != 0) {
    error = std::string("syncing metadata.jsonl and failed.jsonl: ") + std::strerror(errno);
    return Rewrite(state, error);
  }
  return true;
}

void OutputFiles::AppendImage(const proto::ItemSnapshot& item, const proto::Downloaded& image) {
  if (!AppendLine(metadata_fd_, MetadataLine(item, image))) stale_ = true;
}

void OutputFiles::AppendFailure(const proto::ItemSnapshot& item) {
  if (!AppendLine(failed_fd_, FailureLine(item))) stale_ = true;
}

}  // namespace nanobatch::output
