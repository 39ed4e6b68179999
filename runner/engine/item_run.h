#pragma once
// ItemRun: one item during its lifecycle, read from the manifest when the lifecycle starts and
// held only while it runs (memory follows the work in flight, not the manifest's size); and the
// typed outcomes of the lifecycle's steps.

#include <cstdint>
#include <string>
#include <vector>

#include "runner/manifest/item.h"

namespace nanobatch::engine {

struct ItemRun {
  manifest::Item item;
  std::string content_hash;
  std::uint32_t price = 0;
  std::uint32_t failed_tasks_base = 0;  // failed tasks before this run's fresh attempts
  std::uint32_t index = 0;              // in the manifest (its shard directory: output.shard_size)
  // ShedSubmitFields() dropped what only a submission reads; Job::Resubmit reads it back.
  bool shed = false;
};

// While its task waits, an item needs its id, keys and price, not what only a submission reads
// (the prompt, the user's columns, input image URLs, the content hash): those are dropped, so
// that thousands of waiting items do not each hold a prompt (the journal has it as submitted).
inline void ShedSubmitFields(ItemRun& run) {
  if (run.shed) return;
  run.shed = true;
  run.item.prompt = std::string();
  run.item.meta_json = std::string();
  run.item.image_urls = std::vector<std::string>();
  run.content_hash = std::string();
}

// How a submission ended: a task id recorded; the item failed for good (or, for a recovered
// intent, went back to the queue); or nothing more this run (stopping, budget, API down).
enum class SubmitOutcome { kSubmitted, kFailedItem, kStopped };

// How awaiting a task ended. kStillOpen: neither finished nor known to be lost (past its
// deadline, or the run is stopping): it stays submitted and the next run polls it again, never
// pays for it again.
enum class TaskOutcome { kCompleted, kTaskFailed, kGaveUp, kStillOpen };

}  // namespace nanobatch::engine
