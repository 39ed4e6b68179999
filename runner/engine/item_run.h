#pragma once
// ItemRun: one item during its lifecycle, read from the manifest when the lifecycle starts and
// held only while it runs (memory follows the work in flight, not the manifest's size); and the
// typed outcomes of the lifecycle's steps.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "runner/manifest/item.h"

namespace nanobatch::engine {

// What the whole lifecycle reads is held by value; the manifest item (prompt, the user's columns,
// input image URLs: what only a submission reads) is behind a pointer, dropped while the task
// waits (ShedSubmitFields) so that thousands of waiting items do not each hold a prompt (the
// journal has it as submitted). Job::Resubmit reads it back from the manifest. This also keeps
// the lifecycle's coroutine frame, which holds an ItemRun, in a smaller allocation class.
struct ItemRun {
  explicit ItemRun(manifest::Item manifest_item, std::uint32_t manifest_index)
      : id(manifest_item.id),
        resolution(manifest_item.resolution),
        aspect_ratio(manifest_item.aspect_ratio),
        output_format(manifest_item.output_format),
        index(manifest_index),
        item(std::make_unique<manifest::Item>(std::move(manifest_item))) {}

  std::string id;
  std::string resolution;
  std::string aspect_ratio;
  std::string output_format;
  std::uint32_t price = 0;
  std::uint32_t failed_tasks_base = 0;   // failed tasks before this run's fresh attempts
  std::uint32_t index = 0;               // in the manifest (its shard directory: output.shard_size)
  std::unique_ptr<manifest::Item> item;  // null once shed
};

inline void ShedSubmitFields(ItemRun& run) { run.item.reset(); }

// How a log line names the item: "item ID", after its job's name under serve, where the lines of
// several jobs (and items of the same id) interleave: "job NAME: item ID". `job_prefix` is the
// job's ("job NAME: ", or empty for `run`).
inline std::string ItemLabel(std::string_view job_prefix, const ItemRun& run) {
  std::string label(job_prefix);
  label += "item ";
  label += run.id;
  return label;
}

// The manifest item, for a submission. A shed item here is a bug: Job::Resubmit reloads it.
inline const manifest::Item& SubmitFields(const ItemRun& run) {
  if (!run.item) throw std::logic_error("item " + run.id + " is submitted without its fields");
  return *run.item;
}

// How a submission ended: a task id recorded; the item failed for good (or, for a recovered
// intent, went back to the queue); or nothing more this run (stopping, budget, API down).
enum class SubmitOutcome { kSubmitted, kFailedItem, kStopped };

// How awaiting a task ended. kStillOpen: neither finished nor known to be lost (past its
// deadline, or the run is stopping): it stays submitted and the next run polls it again, never
// pays for it again.
enum class TaskOutcome { kCompleted, kTaskFailed, kGaveUp, kStillOpen };

}  // namespace nanobatch::engine
