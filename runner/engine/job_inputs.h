#pragma once
// OpenJobInputs: everything a Job needs before anything is spent, shared by `run` and `serve`:
// the output directory's journal (its lock held from here on), the whole manifest validated and
// planned against it in one pass, and the store that re-reads each item when its turn comes.
//
// Example:
//   util::InputErrors errors;
//   auto opened = OpenJobInputs({.plan = {...}, .defaults = config.defaults}, errors);
//   if (auto* failure = std::get_if<JobInputsFailure>(&opened)) return failure->exit_code;

#include <memory>
#include <string>
#include <variant>

#include "runner/engine/job_plan.h"
#include "runner/journal/journal.h"
#include "runner/manifest/item.h"
#include "runner/manifest/item_store.h"
#include "runner/util/input_error.h"

namespace nanobatch::engine {

struct JobInputsSpec {
  PlanOptions plan;  // manifest and out paths, callbacks, retry_failed, verify_images, shard
  manifest::ItemDefaults defaults;
  bool salvage = false;  // continue from a journal corrupt in the middle
};

struct JobInputs {
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<manifest::ItemStore> store;
  JobPlan plan;
};

struct JobInputsFailure {
  // 2: bad input (the manifest's errors are in `errors`; or a lock held by another runner, a
  // corrupt journal, an out that is no directory: `message`); 3: the disk (resumable once fixed).
  int exit_code = 2;
  std::string message;  // empty when the errors say it all
};

std::variant<JobInputs, JobInputsFailure> OpenJobInputs(const JobInputsSpec& spec,
                                                        util::InputErrors& errors);

}  // namespace nanobatch::engine
