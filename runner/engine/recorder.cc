#include "runner/engine/recorder.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "runner/util/log.h"

namespace nanobatch::engine {

namespace net = boost::asio;

Recorder::Recorder(Service& service, journal::Journal& journal, std::string log_prefix)
    : service_(service),
      journal_(journal),
      log_prefix_(std::move(log_prefix)),
      outputs_(journal.dir()),
      syncs_(service.executor(), service.disk(),
             {.pending = [this] { return journal_.pending_records() + (renamed_.empty() ? 0 : 1); },
              .begin = [this] { return BeginSync(); },
              .end = [this](int result, std::string& error) { return EndSync(result, error); }},
             kCommitInterval, kFullGroup) {
  syncs_.set_on_sync(
      [&service](double seconds) { service.counters().journal_sync_seconds.Observe(seconds); });
}

std::function<int()> Recorder::BeginSync() {
  outputs_.Flush();  // the output lines of the items this commit records, one write per file
  // The directories first: a record of an image is never durable before the image's name.
  return [dirs = std::exchange(renamed_, {}), write = journal_.BeginBatch()]() -> int {
    for (const int dir : dirs) {
      if (::fsync(dir) != 0) return -errno;  // negative: a directory's
    }
    return write();
  };
}

bool Recorder::EndSync(int result, std::string& error) {
  if (result >= 0) return journal_.EndBatch(result, error);
  journal_.EndBatch(-result, error);  // the batch was not written: the journal stops
  error = "cannot sync " + journal_.dir().path() + ": " + std::strerror(-result);
  return false;
}

net::awaitable<bool> Recorder::Commit() {
  if (journal_.failed()) co_return false;
  const bool ok = co_await syncs_.Commit();
  // Every change of reserved or spent credits is followed by a commit: a submit loop waiting
  // for credits to come back re-checks now.
  service_.NotifyBudgetChanged();
  if (!ok) {
    service_.Halt(StopReason::kDisk, syncs_.error() + "; free space in " + journal_.dir().path() +
                                         " (or fix its permissions) and run the same command "
                                         "again");
  } else if (journal_.space_error() != 0 && !service_.submitting_stopped()) {
    // The disk is nearly full: what the journal still has allocated is kept for the submits
    // already sent and the tasks already running. Nothing new starts.
    service_.StopSubmitting(
        StopReason::kDisk,
        "the disk holding " + journal_.dir().path() + " is full: the journal cannot allocate " +
            std::to_string(journal::Journal::kReserveAhead >> 20) + " MiB ahead (" +
            std::strerror(journal_.space_error()) +
            "); the tasks already paid for are recorded, and finished where the disk allows");
  }
  co_return ok;
}

void Recorder::AppendIntent(const ItemRun& run, const std::string& callback_token) {
  const manifest::Item& item = SubmitFields(run);
  service_.ledger().Recorded(run.price);  // from here on the journal holds the reservation
  const proto::ItemSnapshot* snapshot = Snapshot(run);
  proto::Record record;
  auto* intent = record.mutable_submit_intent();
  intent->set_item_id(run.id);
  // Hashed here, not held by the item: only the intent records it.
  intent->set_content_hash(manifest::ContentHash(item));
  intent->set_attempt((snapshot ? snapshot->attempt() : 0) + 1);
  intent->set_credits(run.price);
  intent->set_prompt(item.prompt);
  intent->set_resolution(run.resolution);
  intent->set_aspect_ratio(run.aspect_ratio);
  intent->set_output_format(run.output_format);
  for (const std::string& url : item.image_urls) intent->add_image_urls(url);
  // Often empty, and protobuf allocates a string for every set, even of "".
  if (!callback_token.empty()) intent->set_callback_token(callback_token);
  if (!item.meta_json.empty()) intent->set_meta_json(item.meta_json);
  Append(std::move(record));
}

void Recorder::RecordSubmitted(const ItemRun& run, const std::string& task_id, bool revealed) {
  proto::Record record;
  auto* submitted = record.mutable_submitted();
  submitted->set_item_id(run.id);
  submitted->set_task_id(task_id);
  submitted->set_credits(run.price);
  submitted->set_attempt(Snapshot(run)->attempt());
  submitted->set_revealed_by_callback(revealed);
  Append(std::move(record));
}

void Recorder::RecordNotSent(const ItemRun& run, const std::string& code,
                             const std::string& message) {
  proto::Record record;
  auto* failed = record.mutable_task_failed();
  failed->set_item_id(run.id);
  failed->set_error_code(code);
  failed->set_message(message);
  Append(std::move(record));
  service_.NotifyBudgetChanged();
}

void Recorder::RecordAbandoned(const std::string& item_id, const std::string& why) {
  proto::Record record;
  record.mutable_intent_abandoned()->set_item_id(item_id);
  record.mutable_intent_abandoned()->set_reason(why);
  Append(std::move(record));
}

void Recorder::RecordGaveUp(const ItemRun& run, std::string code, std::string message) {
  proto::Record record;
  auto* gave_up = record.mutable_gave_up();
  gave_up->set_item_id(run.id);
  gave_up->set_error_code(code);
  gave_up->set_message(message);
  const proto::ItemSnapshot* snapshot = Snapshot(run);
  gave_up->set_attempts(snapshot ? snapshot->attempt() : 0);
  Append(std::move(record));
  outputs_.AppendFailure(*Snapshot(run));
  util::LogWarning(ItemLabel(log_prefix_, run) + " failed for good: " + code + ": " + message);
  journal_.Finalize(run.id);  // finished: kept compact from now on
  service_.NotifyBudgetChanged();
}

boost::asio::awaitable<bool> Recorder::Redo(const std::string& item_id, bool mismatch,
                                            const std::string& reason) {
  const proto::ItemSnapshot* snapshot = journal_.state().Find(item_id);
  if (snapshot == nullptr) co_return true;
  std::vector<std::pair<std::string, std::string>> moves;  // final name -> name in .previous/
  for (const auto& image : snapshot->images()) {
    const std::string& name = image.file_name();
    // In .previous/ by its file name (its shard directory, if any, left behind).
    const std::string file = name.substr(name.rfind('/') + 1);
    const auto dot = file.rfind('.');
    const std::string stem = dot == std::string::npos ? file : file.substr(0, dot);
    const std::string extension = dot == std::string::npos ? "" : file.substr(dot);
    moves.emplace_back(name, stem + "." + std::to_string(snapshot->attempt()) + extension);
  }
  // The worker touches only these names and the directory's descriptors (read-only on the
  // loop's side); the message comes back through `error`, read after the call.
  auto error = std::make_shared<std::string>();
  const fs::OutputDir* dir = &journal_.dir();
  // Named: in a co_await expression, GCC 12 destroys a temporary with a destructor twice (here a
  // lambda holding `moves`, converted to the worker's std::function).
  std::function<int()> move_all = [dir, moves = std::move(moves), error] {
    for (const auto& [from, to] : moves) {
      if (!fs::MoveToPrevious(*dir, from, to, *error)) return 1;
    }
    return 0;
  };
  const int moved = co_await service_.disk().Run(std::move(move_all));
  if (moved != 0) {
    service_.Halt(StopReason::kDisk, *error);
    co_return false;
  }
  proto::Record record;
  auto* redone = record.mutable_redone();
  redone->set_item_id(item_id);
  redone->set_mismatch(mismatch);
  redone->set_reason(reason);
  Append(std::move(record));
  co_return true;
}

void Recorder::RecordDone(const ItemRun& run) {
  const proto::ItemSnapshot* done = Snapshot(run);
  for (const auto& image : done->images()) outputs_.AppendImage(*done, image);
  journal_.Finalize(run.id);  // finished: kept compact from now on
}

}  // namespace nanobatch::engine
