#pragma once
// Recorder: the one writer of a job's journal and output files. Everything the engine learns
// goes through it first: records are appended (and applied to the journal's state at once) and
// made durable by Commit(), which group-commits every record appended in the same turn of the
// event loop with one fdatasync. A journal that cannot be written halts the service (exit 3:
// free space, then run again).
//
// Example:
//   recorder.AppendIntent(run, token);
//   if (!co_await recorder.Commit()) co_return;   // durable, or stopping

#include <boost/asio/awaitable.hpp>
#include <string>

#include "runner/engine/item_run.h"
#include "runner/engine/service.h"
#include "runner/journal/journal.h"
#include "runner/output/output_files.h"

namespace nanobatch::engine {

class Recorder {
 public:
  Recorder(Service& service, journal::Journal& journal);

  boost::asio::awaitable<bool> Commit();
  void Append(proto::Record record) { journal_.Append(std::move(record)); }
  const proto::ItemSnapshot* Snapshot(const ItemRun& run) const {
    return journal_.state().Find(run.item.id);
  }
  journal::Journal& journal() { return journal_; }
  output::OutputFiles& outputs() { return outputs_; }

  // The intent is recorded once the rate limiter lets its POST go: a crash can then leave open
  // only the intents whose POST was about to go out or was out, which is the window the API
  // leaves (no idempotency key). The ledger's held credits become the journal's reservation.
  void AppendIntent(const ItemRun& run, const std::string& callback_token);
  void RecordSubmitted(const ItemRun& run, const std::string& task_id, bool revealed);
  // The submission was not sent, or the API answered that no task was created.
  void RecordNotSent(const ItemRun& run, const std::string& code, const std::string& message);
  // The submission's fate is unknown (no usable answer): its credits count as spent.
  void RecordAbandoned(const std::string& item_id, const std::string& why);
  // The item failed for good: recorded, its failed.jsonl line written, finalized. `code` and
  // `message` are copied: they often come from the item's own snapshot, which Finalize releases.
  void RecordGaveUp(const ItemRun& run, std::string code, std::string message);
  // The item's images are all on disk: its metadata.jsonl lines, then finalized.
  void RecordDone(const ItemRun& run);

 private:
  Service& service_;
  journal::Journal& journal_;
  output::OutputFiles outputs_;
  util::AsyncEvent flushed_;
  bool flushing_ = false;
};

}  // namespace nanobatch::engine
