#include "runner/engine/job_inputs.h"

#include "runner/util/log.h"

namespace nanobatch::engine {

std::variant<JobInputs, JobInputsFailure> OpenJobInputs(const JobInputsSpec& spec,
                                                        util::InputErrors& errors) {
  std::string error;
  journal::OpenFailure failure = journal::OpenFailure::kNone;
  auto journal = journal::Journal::Open(spec.plan.out, {.salvage = spec.salvage}, error, &failure);
  if (!journal) {
    // A lock held by another runner, a corrupt journal or an out that is not a directory needs
    // the user (2); a disk problem is resumable once space or permissions are fixed (3). Nothing
    // was submitted either way.
    return JobInputsFailure{failure == journal::OpenFailure::kIo ? 3 : 2, error};
  }
  for (const std::string& warning : journal->recovery().warnings) util::LogWarning(warning);

  // One pass over the manifest validates every item and plans each one from the journal; the
  // items themselves are not kept (the store re-reads each when its turn comes).
  JobPlanner planner(journal->state(), journal->dir().fd(), spec.plan);
  std::unique_ptr<manifest::ItemStore> store = manifest::ItemStore::Open(
      spec.plan.manifest, spec.defaults,
      [&](manifest::Item&& item, std::uint32_t index) { planner.Visit(item, index, errors); },
      errors);
  if (errors.empty()) planner.Finish(*store, errors);
  if (!errors.empty()) return JobInputsFailure{2, ""};
  store->ReleaseNameIndex();  // validated and planned: the run needs items by index only
  return JobInputs{std::move(journal), std::move(store), planner.Take()};
}

}  // namespace nanobatch::engine
