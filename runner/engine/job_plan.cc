#include "runner/engine/job_plan.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "runner/download/image_file.h"
#include "runner/fs/output_dir.h"

namespace nanobatch::engine {
namespace {

// An item given up on after its task completed, for a failure of its downloads alone.
bool IsPaidDownload(const proto::ItemSnapshot& item) {
  const std::string& code = item.last_error_code();
  return !item.task_id().empty() && item.urls_size() > 0 &&
         (code == "download_failed" || code == "download_refused" || code == "bad_image" ||
          code == "image_too_large");
}

}  // namespace

JobPlanner::JobPlanner(const journal::JournalState& state, int out_fd, PlanOptions options)
    : state_(state), out_fd_(out_fd), options_(std::move(options)), seen_(state.size()) {}

void JobPlanner::Visit(const manifest::Item& item, std::uint32_t index, util::InputErrors& errors) {
  const bool redo = !options_.redo.empty() && options_.redo.count(item.id) > 0;
  if (redo) redo_found_.insert(item.id);
  // Items of other shards are another run's (the whole manifest is still validated).
  if (!manifest::InShard(options_.shard, item.id)) return;
  ++plan_.items;
  const proto::ItemSnapshot* snapshot = state_.Find(item.id);
  if (snapshot == nullptr) {
    plan_.fresh.push_back(index);
    return;
  }
  if (auto index = state_.IndexOf(item.id)) seen_[*index] = true;
  if (snapshot->departed()) plan_.returned.push_back(item.id);
  // An item whose content changed under the same explicit id would make the journal describe a
  // different image than the manifest asks for.
  if (!snapshot->content_hash().empty() &&
      snapshot->content_hash() != manifest::ContentHash(item)) {
    errors.Add({options_.manifest, item.line, "id",
                "\"" + item.id + "\" was already generated from different content in " +
                    options_.out + "; give the changed item a new id"});
    return;
  }
  if (redo) {
    switch (snapshot->phase()) {
      case proto::ItemSnapshot::DONE:
      case proto::ItemSnapshot::GAVE_UP:
        plan_.redo.push_back(item.id);
        plan_.fresh.push_back(index);
        return;
      case proto::ItemSnapshot::QUEUED:
        break;  // not generated yet: this run submits it anyway
      default:
        errors.Add({options_.manifest, item.line, "id",
                    "--redo " + item.id +
                        ": its task is still open (submitted, or images still to download); "
                        "run without --redo to finish it, then redo it"});
        return;
    }
  }
  switch (snapshot->phase()) {
    case proto::ItemSnapshot::INTENT:
      // Interrupted between recording the intent and its outcome: the POST may have gone out.
      if (options_.callbacks && !snapshot->callback_token().empty()) {
        plan_.recover.push_back(index);
      } else {
        plan_.abandon.push_back(item.id);
        plan_.fresh.push_back(index);
      }
      break;
    case proto::ItemSnapshot::SUBMITTED:
    case proto::ItemSnapshot::COMPLETED:
      plan_.resume.push_back(index);
      break;
    case proto::ItemSnapshot::DONE: {
      ++plan_.done;
      // A final image that is gone or has the wrong size is fetched again (the URL is
      // permanent, api.md), not paid for again. Looked up through the output directory's
      // descriptor, never through a link: a link planted under an image's name counts as
      // missing and is replaced by the download.
      bool intact = true;
      for (const auto& image : snapshot->images()) {
        struct stat info;
        const std::string& name = image.file_name();
        intact = intact && fs::StatPublished(out_fd_, name, info) && S_ISREG(info.st_mode) &&
                 static_cast<std::uint64_t>(info.st_size) == image.bytes() &&
                 (!options_.verify_images || download::FileSha256(out_fd_, name) == image.sha256());
      }
      if (!intact) {
        plan_.refetch.push_back(item.id);
        plan_.resume.push_back(index);
      }
      break;
    }
    case proto::ItemSnapshot::GAVE_UP:
      if (options_.retry_failed && IsPaidDownload(*snapshot)) {
        // Its task completed and was paid for; only its images failed to arrive (an image host's
        // error, a body that was no image): the URLs are permanent, so they are downloaded again
        // rather than paid for again. `--redo ID` generates it anew on purpose.
        plan_.refetch.push_back(item.id);
        plan_.resume.push_back(index);
      } else if (options_.retry_failed) {
        plan_.fresh.push_back(index);
      } else {
        ++plan_.failed;
      }
      break;
    default:
      plan_.fresh.push_back(index);
      break;
  }
}

void JobPlanner::Finish(const manifest::ItemStore& store, util::InputErrors& errors) {
  for (const std::string& id : options_.redo) {
    if (redo_found_.count(id) == 0) {
      errors.Add(
          {"command line", 0, "--redo", "\"" + id + "\" is no item of " + options_.manifest});
    }
  }
  for (std::uint32_t index = 0; index < state_.size(); ++index) {
    if (seen_[index]) continue;
    const std::string id(state_.IdAt(index));
    if (!state_.DepartedAt(index)) plan_.departed.push_back(id);
    // Its images are still in the directory: a manifest item whose file names would overwrite
    // them is refused (two items of earlier runs are left as they are).
    if (state_.ImagesAt(index) == 0) continue;
    if (auto other = store.Clash(id)) {
      std::string error;
      auto item = store.Load(*other, error);
      const std::string clashing = item ? item->id : std::string("?");
      errors.Add({options_.manifest, store.line(*other), "id",
                  "\"" + clashing + "\" would overwrite the images of \"" + id +
                      "\", generated by an earlier run in " + options_.out +
                      "; give the item another id"});
    }
  }
  seen_.clear();
  seen_.shrink_to_fit();
}

}  // namespace nanobatch::engine
