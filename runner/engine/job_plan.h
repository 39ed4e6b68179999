#pragma once
// JobPlan: what a run must do for each item of its manifest, decided from the journal in the
// manifest's one validation pass (JobPlanner::Visit is ItemStore's visitor), as lists of item
// indexes: 4 bytes an item rather than a copy of it. Nothing is written while planning; the run
// writes what the plan implies (abandoned intents, images to fetch again) once it starts.
//
// The planner also refuses, with an error naming the manifest line, an item whose content
// changed under an id the journal knows, and (after the pass, Finish) an item whose image names
// would overwrite those of an earlier run's item that left the manifest.
//
// Example:
//   JobPlanner planner(journal.state(), journal.dir().fd(), options);
//   auto store = manifest::ItemStore::Open(path, defaults, [&](Item&& item, std::uint32_t i) {
//     planner.Visit(item, i, errors); }, errors);
//   planner.Finish(*store, errors);
//   JobPlan plan = planner.Take();

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "runner/journal/state.h"
#include "runner/manifest/item.h"
#include "runner/manifest/item_store.h"
#include "runner/manifest/shard.h"
#include "runner/util/input_error.h"

namespace nanobatch::engine {

struct JobPlan {
  std::uint32_t items = 0;             // the manifest's items in this run's shard
  std::uint32_t done = 0;              // of those, finished (images on disk or to fetch again)
  std::uint32_t failed = 0;            // given up on and not retried (no --retry-failed)
  std::vector<std::uint32_t> fresh;    // to submit: never submitted, queued, or retried
  std::vector<std::uint32_t> resume;   // a task to settle, or images to fetch: no new payment
  std::vector<std::uint32_t> recover;  // an intent left open, with a callback token
  // Intents left open without a way to learn their task, by id: abandoned (possible duplicates)
  // when the run starts, and submitted again (they are in `fresh` too).
  std::vector<std::string> abandon;
  // Done, but an image is missing or changed on disk, or given up on for its downloads alone and
  // retried (--retry-failed), by id: fetched again from its permanent URL when the run starts,
  // not paid again (they are in `resume` too).
  std::vector<std::string> refetch;
  // Journal items no longer in the manifest (left alone; marked departed when the run starts),
  // and items marked so that are in the manifest again (counted again).
  std::vector<std::string> departed;
  std::vector<std::string> returned;
  // Settled items to generate again on purpose (`run --redo`), by id: their images moved to
  // .previous/ and the items queued when the run starts (they are in `fresh` too).
  std::vector<std::string> redo;
};

// Every member has an initializer, so designated initializers may name only what they set
// (GCC's -Wmissing-field-initializers counts the others otherwise).
struct PlanOptions {
  std::string manifest{};        // for error messages
  std::string out{};             // for error messages
  bool callbacks = false;        // open intents wait for their callbacks (JobPlan::recover)
  bool retry_failed = false;     // items given up on are submitted again
  bool verify_images = false;    // hash finished images, not only their sizes
  manifest::Shard shard{};       // only the items of this shard are planned
  std::set<std::string> redo{};  // ids to generate again, paying again (`run --redo`)
};

class JobPlanner {
 public:
  JobPlanner(const journal::JournalState& state, int out_fd, PlanOptions options);

  void Visit(const manifest::Item& item, std::uint32_t index, util::InputErrors& errors);
  // After the pass: the journal's items that left the manifest, and name clashes with them.
  void Finish(const manifest::ItemStore& store, util::InputErrors& errors);
  JobPlan Take() { return std::move(plan_); }
  const JobPlan& plan() const { return plan_; }

 private:
  const journal::JournalState& state_;
  int out_fd_;
  PlanOptions options_;
  JobPlan plan_;
  std::vector<bool> seen_;            // by journal index: items met in the manifest
  std::set<std::string> redo_found_;  // ids of options_.redo met in the manifest
};

}  // namespace nanobatch::engine
