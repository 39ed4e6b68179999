#pragma once
// Spool: the directory serve takes its work from (interface.md "serve"):
//
//   inbox/NAME.jsonl|.yaml|.yml   renamed in by the user (or POST /jobs); names starting with '.'
//                                 are ignored, so a file still being written is never taken
//   jobs/NAME/                    the job's output directory (layout of `run --out`); while the
//                                 job is active its manifest is jobs/NAME/.nanobatch/manifest.EXT,
//                                 and jobs/NAME/.nanobatch/cancelled says DELETE /jobs/NAME
//                                 asked it to end (it ends in failed/, not resumed)
//   done/NAME.EXT + NAME.summary.json     ended with exit 0
//   failed/NAME.EXT + NAME.summary.json   ended with exit 1, 2 or 4
//   .nanobatch/lock               one daemon per spool (flock)
//   .nanobatch/credits.json       what finished jobs spent, for the service-wide budget
//
// Every operation is a rename, a write or a listing relative to a directory descriptor taken at
// Open(), by a plain name (no '/', no link followed): nothing the spool does reaches outside it.
// Only job names of the id charset ([A-Za-z0-9._-]{1,128}, not starting with '.') are taken.
//
// Example:
//   auto spool = Spool::Open("/var/lib/nanobatch/spool", error);
//   for (const InboxEntry& entry : spool->ScanInbox()) { auto path = spool->Claim(entry, error); }

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runner/util/input_file.h"

namespace nanobatch::serve {

struct InboxEntry {
  std::string name;             // the job name: the file name without its extension
  std::string file;             // NAME.EXT, in inbox/
  std::string extension;        // jsonl, yaml or yml
  std::int64_t arrived_ns = 0;  // ctime: the moment it was renamed in
};

struct ActiveJob {
  std::string name;
  std::string manifest;  // jobs/NAME/.nanobatch/manifest.EXT
  std::int64_t claimed_ns = 0;
  bool cancelled = false;  // jobs/NAME/.nanobatch/cancelled exists
};

struct FinishedJob {
  std::string name;
  bool done = false;  // done/ (exit 0) or failed/
  std::int64_t finished_ns = 0;
  // From its summary, so GET /jobs reads the same after a restart: how it ended (-1 when the
  // summary does not say), and whether DELETE /jobs/NAME ended it.
  int exit_code = -1;
  bool cancelled = false;
};

class Spool {
 public:
  // Creates what is missing and takes the spool's lock; nullptr with `error` otherwise (another
  // daemon holds it, or the path is unusable).
  static std::unique_ptr<Spool> Open(const std::string& path, std::string& error);

  // The id charset: what the API allows as an item id is what a job name may be.
  static bool IsJobName(std::string_view name);

  const std::string& path() const { return path_; }
  std::string JobDir(const std::string& name) const { return path_ + "/jobs/" + name; }

  // Manifests in inbox/ ready to be taken, in arrival order (then by name). A file whose size or
  // modification time changed since the previous scan waits for the next one (a `cp` straight
  // into inbox/, against the rules, is then still mostly safe). Files that cannot be jobs are
  // reported once each in `ignored` ("inbox/notes.txt: ...").
  std::vector<InboxEntry> ScanInbox(std::vector<std::string>* ignored = nullptr);
  // Jobs taken earlier and not finished (a restart, or a stop for the budget): resumed first.
  std::vector<ActiveJob> ScanActive(std::string& error) const;
  // Finished jobs, from the summaries in done/ and failed/.
  std::vector<FinishedJob> ScanFinished() const;

  // Moves inbox/FILE to jobs/NAME/.nanobatch/manifest.EXT (creating the job's directory) and
  // returns the manifest's path. A cancel mark an earlier run of the name left goes.
  std::optional<std::string> Claim(const InboxEntry& entry, std::string& error);
  // Writes DEST/NAME.summary.json, then moves the job's manifest to DEST/NAME.EXT, DEST being
  // done/ or failed/. The summary comes first: a crash in between leaves an active job that is
  // resumed and finished again.
  bool Finish(const std::string& name, const std::string& manifest_path, bool done,
              const std::string& summary_json, std::string& error);

  // Marks the active job NAME cancelled (jobs/NAME/.nanobatch/cancelled, synced): a restart
  // before it ends finishes it rather than resuming it.
  bool MarkCancelled(const std::string& name, std::string& error);

  // POST /jobs: writes `body` to inbox/.NAME.upload.EXT (ignored by scans: a dot name), synced,
  // and returns its path, for the caller to validate. Then either Publish (renamed to
  // inbox/NAME.EXT) or Discard. EXT: "jsonl" or "yaml".
  std::optional<std::string> StageUpload(const std::string& name, std::string_view body,
                                         std::string& error, std::string_view extension = "jsonl");
  bool PublishUpload(const std::string& name, std::string& error,
                     std::string_view extension = "jsonl");
  void DiscardUpload(const std::string& name, std::string_view extension = "jsonl");
  // Whether inbox/ holds a manifest of job NAME (any extension).
  bool InInbox(const std::string& name) const;

  // What finished jobs spent, by name (a job finished twice keeps its journal's latest total:
  // the journal counts every run of that directory).
  const std::map<std::string, std::uint64_t>& finished_credits() const { return finished_credits_; }
  bool RecordFinishedCredits(const std::string& name, std::uint64_t credits, std::string& error);

 private:
  Spool() = default;
  bool LoadFinishedCredits(std::string& error);
  // jobs/NAME/.nanobatch, not following a link; invalid with `error` (when given) set if absent.
  util::UniqueFd OpenJobState(const std::string& name, std::string* error = nullptr) const;

  std::string path_;
  util::UniqueFd root_, inbox_, jobs_, done_, failed_, state_, lock_;
  // inbox file -> (size, mtime ns) at the previous scan
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> last_seen_;
  std::set<std::string> reported_;  // ignored files already reported
  std::map<std::string, std::uint64_t> finished_credits_;
};

}  // namespace nanobatch::serve
