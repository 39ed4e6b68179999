#include "runner/output/output_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

#include "runner/util/json_arena.h"
#include "runner/util/json_text.h"
#include "runner/util/json_writer.h"

namespace nanobatch::output {
namespace json = boost::json;
namespace {

// False when the lines did not go out whole: the files are then rebuilt at the end of the run.
bool AppendBytes(int fd, const std::string& lines) {
  if (fd < 0) return false;
  ssize_t n;
  do {
    n = ::write(fd, lines.data(), lines.size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(lines.size());
}

}  // namespace

namespace {

// The item's own columns (manifest `meta:`) after nanobatch's, in their order: a column of the
// same name as one already written (only an old or damaged journal could hold one) never
// replaces it, and text that is not a JSON object adds nothing. They are parsed and
// re-serialized by boost::json, as they always were. Last on the line: `line` keeps their names
// as views into this function's arena.
void AddMetaColumns(const proto::ItemSnapshot& item, util::JsonObjectWriter& line) {
  if (item.meta_json().empty()) return;
  util::JsonArena<> arena;
  boost::system::error_code error;
  json::value meta = json::parse(item.meta_json(), error, arena.storage());
  if (error || !meta.is_object()) return;
  for (const auto& [name, value] : meta.as_object()) {
    if (!line.Has(name)) line.RawNamed(name, util::JsonText(value));
  }
}

}  // namespace

OutputFiles::OutputFiles(const fs::OutputDir& dir) : dir_(dir) {}

OutputFiles::~OutputFiles() {
  if (metadata_fd_ >= 0) ::close(metadata_fd_);
  if (failed_fd_ >= 0) ::close(failed_fd_);
}

// Room for a line's fixed columns and punctuation besides its free text: the line is then built
// in one allocation, not grown by doubling from empty.
constexpr std::size_t kLineOverhead = 512;

std::string OutputFiles::MetadataLine(const proto::ItemSnapshot& item,
                                      const proto::Downloaded& image) {
  std::string text;
  text.reserve(kLineOverhead + item.prompt().size() + item.meta_json().size() +
               image.file_name().size() + image.mismatch().size());
  util::JsonObjectWriter line(text);
  line.String("file_name", image.file_name());
  line.String("id", item.item_id());
  line.String("prompt", item.prompt());
  line.String("task_id", item.task_id());
  line.String("resolution", item.resolution());
  line.String("aspect_ratio", item.aspect_ratio());
  line.String("output_format", item.output_format());
  line.String("sha256", image.sha256());
  line.Number("bytes", image.bytes());
  // The task's price; with several images per task every line repeats it.
  line.Number("credits", item.credits());
  line.Number("image_index", image.index());
  // From the image's header; absent when it did not tell (an older journal, an odd format).
  if (image.width() > 0 && image.height() > 0) {
    line.Number("width", image.width());
    line.Number("height", image.height());
  }
  if (!image.mismatch().empty()) line.String("mismatch", image.mismatch());
  if (item.image_urls_size() > 0) line.StringArray("image_urls", item.image_urls());
  AddMetaColumns(item, line);
  line.Close();
  text.push_back('\n');
  return text;
}

std::string OutputFiles::FailureLine(const proto::ItemSnapshot& item) {
  std::string text;
  text.reserve(kLineOverhead + item.prompt().size() + item.meta_json().size() +
               item.last_error_message().size());
  util::JsonObjectWriter line(text);
  line.String("id", item.item_id());
  line.String("error_code", item.last_error_code());
  line.String("message", item.last_error_message());
  line.Number("attempts", item.attempt());
  line.Number("failed_tasks", item.failed_tasks());
  line.String("task_id", item.task_id());
  line.String("prompt", item.prompt());
  AddMetaColumns(item, line);
  line.Close();
  text.push_back('\n');
  return text;
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
  // The queued lines are in the new files already: they are lines of the state's items.
  queued_metadata_.clear();
  queued_failed_.clear();
  if (metadata_fd_ >= 0) ::close(metadata_fd_);
  if (failed_fd_ >= 0) ::close(failed_fd_);
  metadata_fd_ = fs::OpenFileAt(dir_.fd(), "metadata.jsonl", O_WRONLY | O_APPEND);
  failed_fd_ = fs::OpenFileAt(dir_.fd(), "failed.jsonl", O_WRONLY | O_APPEND);
  stale_ = metadata_fd_ < 0 || failed_fd_ < 0;
  return true;
}

bool OutputFiles::Finish(const journal::JournalState& state, std::string& error) {
  Flush();
  if (stale_) return Rewrite(state, error);
  if (::fdatasync(metadata_fd_) != 0 || ::fdatasync(failed_fd_) != 0) {
    error = std::string("syncing metadata.jsonl and failed.jsonl: ") + std::strerror(errno);
    return Rewrite(state, error);
  }
  return true;
}

void OutputFiles::AppendImage(const proto::ItemSnapshot& item, const proto::Downloaded& image) {
  Queue(queued_metadata_, MetadataLine(item, image));
}

void OutputFiles::AppendFailure(const proto::ItemSnapshot& item) {
  Queue(queued_failed_, FailureLine(item));
}

void OutputFiles::Queue(std::string& queue, const std::string& line) {
  queue.append(line);
  if (queue.size() >= kFlushBytes) Flush();
}

void OutputFiles::Flush() {
  WriteQueue(metadata_fd_, queued_metadata_);
  WriteQueue(failed_fd_, queued_failed_);
}

void OutputFiles::WriteQueue(int fd, std::string& queue) {
  if (queue.empty()) return;
  if (!AppendBytes(fd, queue)) stale_ = true;
  queue.clear();
}

}  // namespace nanobatch::output
