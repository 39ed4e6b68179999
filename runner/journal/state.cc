#include "runner/journal/state.h"

#include <algorithm>
#include <stdexcept>

#include "runner/util/fnv.h"

namespace nanobatch::journal {
namespace {

bool IsOpen(Phase phase) {
  return phase == proto::ItemSnapshot::INTENT || phase == proto::ItemSnapshot::SUBMITTED;
}

bool IsFinished(Phase phase) {
  return phase == proto::ItemSnapshot::DONE || phase == proto::ItemSnapshot::GAVE_UP;
}

// Images are kept one per index, and only for indexes below urls_size() (see kDownloaded), so
// counting them is enough: replay stays linear however many URLs a task has.
bool AllImagesDown(const proto::ItemSnapshot& item) {
  return item.urls_size() > 0 && item.images_size() == item.urls_size();
}

std::uint64_t HashId(std::string_view id) {
  const std::uint64_t hash = util::Fnv1a64(id);
  return hash ^ (hash >> 29);  // FNV's low bits alone index the table poorly
}

}  // namespace

// One item: its whole snapshot while in memory (`live`), or, compact, what the totals count and
// where its snapshot record is in the journal.
struct JournalState::Slot {
  std::unique_ptr<proto::ItemSnapshot> live;
  std::uint64_t offset = 0;  // compact: the snapshot record's frame in the journal file
  std::uint64_t credits_spent = 0;
  std::uint32_t id_offset = 0;  // in ids_
  std::uint32_t id_length = 0;
  std::uint32_t possible_duplicates = 0;
  std::uint32_t failed_tasks = 0;
  std::uint16_t images = 0;
  std::uint16_t flagged_images = 0;
  std::uint16_t error_code = 0;  // in codes_
  Phase phase = proto::ItemSnapshot::QUEUED;
  bool departed = false;
  // What the record at `offset` says about it: an item departs or returns without its snapshot
  // being written again, and then only a re-encoded snapshot carries the change.
  bool departed_in_record = false;
};

JournalState::JournalState() = default;
JournalState::~JournalState() = default;

std::size_t JournalState::size() const { return slots_.size(); }

void JournalState::Reserve(std::size_t items) {
  ids_.reserve(items * 16);
  std::size_t capacity = 1024;
  while (capacity < items * 2) capacity *= 2;
  if (capacity > table_.size()) {
    table_.assign(capacity, 0);
    for (std::uint32_t i = 0; i < slots_.size(); ++i) Index(i);
  }
}

std::string_view JournalState::IdAt(std::uint32_t index) const {
  const Slot& slot = slots_[index];
  return std::string_view(ids_).substr(slot.id_offset, slot.id_length);
}

bool JournalState::DepartedAt(std::uint32_t index) const {
  const Slot& slot = slots_[index];
  return slot.live ? slot.live->departed() : slot.departed;
}

std::uint32_t JournalState::ImagesAt(std::uint32_t index) const {
  const Slot& slot = slots_[index];
  return slot.live ? static_cast<std::uint32_t>(slot.live->images_size()) : slot.images;
}

void JournalState::Index(std::uint32_t slot) {
  const std::size_t mask = table_.size() - 1;
  for (std::size_t i = HashId(IdAt(slot)) & mask;; i = (i + 1) & mask) {
    if (table_[i] == 0) {
      table_[i] = slot + 1;
      return;
    }
  }
}

std::optional<std::uint32_t> JournalState::Lookup(std::string_view id) const {
  if (table_.empty()) return std::nullopt;
  const std::size_t mask = table_.size() - 1;
  for (std::size_t i = HashId(id) & mask; table_[i] != 0; i = (i + 1) & mask) {
    if (IdAt(table_[i] - 1) == id) return table_[i] - 1;
  }
  return std::nullopt;
}

std::optional<std::uint32_t> JournalState::IndexOf(std::string_view id) const { return Lookup(id); }

JournalState::Slot& JournalState::SlotFor(std::string_view id, std::int64_t unix_time, bool live) {
  if (auto index = Lookup(id)) return slots_[*index];
  if ((slots_.size() + 1) * 10 > table_.size() * 6)
    Reserve(std::max<std::size_t>(slots_.size() * 2, 512));
  Slot& slot = slots_.emplace_back();
  slot.id_offset = static_cast<std::uint32_t>(ids_.size());
  slot.id_length = static_cast<std::uint32_t>(id.size());
  ids_.append(id);
  Index(static_cast<std::uint32_t>(slots_.size() - 1));
  if (live) {
    slot.live = std::make_unique<proto::ItemSnapshot>();
    slot.live->set_item_id(id.data(), id.size());
    slot.live->set_first_unix_time(unix_time);
  } else {
    ++compact_;  // queued, without a snapshot: the caller makes it compact
  }
  ++totals_.items;
  Count(slot, +1);
  return slot;
}

bool JournalState::Load(const Slot& slot, proto::ItemSnapshot& out) const {
  if (!loader_ || !loader_(slot.offset, out)) return false;
  out.set_departed(slot.departed);  // the flag may have changed since the record was written
  return true;
}

proto::ItemSnapshot& JournalState::Live(Slot& slot) {
  if (slot.live) return *slot.live;
  auto live = std::make_unique<proto::ItemSnapshot>();
  if (!Load(slot, *live)) {
    // Our own journal cannot be read back where it was written: nothing sensible can follow.
    throw std::runtime_error("journal: cannot read back the snapshot of an item at byte " +
                             std::to_string(slot.offset));
  }
  slot.live = std::move(live);
  --compact_;
  return *slot.live;
}

std::uint16_t JournalState::CodeIndex(std::string_view code) {
  for (std::size_t i = 0; i < codes_.size(); ++i) {
    if (codes_[i] == code) return static_cast<std::uint16_t>(i);
  }
  if (codes_.size() >= 65535) return 0;  // more distinct codes than that: counted under the first
  codes_.emplace_back(code);
  return static_cast<std::uint16_t>(codes_.size() - 1);
}

void JournalState::Compact(Slot& slot, std::uint64_t offset) {
  if (!slot.live) {
    slot.offset = offset;  // a newer copy of the same snapshot (compaction)
    slot.departed_in_record = slot.departed;
    return;
  }
  if (!IsFinished(slot.live->phase())) return;
  CompactFrom(slot, FinishedSnapshot::Of(*slot.live), offset);
}

void JournalState::CompactFrom(Slot& slot, const FinishedSnapshot& item, std::uint64_t offset) {
  slot.offset = offset;
  slot.phase = item.phase;
  slot.departed = item.departed;
  slot.departed_in_record = item.departed;
  slot.credits_spent = item.credits_spent;
  slot.possible_duplicates = item.possible_duplicates;
  slot.failed_tasks = item.failed_tasks;
  slot.images = static_cast<std::uint16_t>(item.images);
  slot.flagged_images = static_cast<std::uint16_t>(item.flagged_images);
  slot.error_code = CodeIndex(item.last_error_code);
  if (slot.live) {
    slot.live.reset();
    ++compact_;
  }
}

void JournalState::MakeCompactAt(std::uint32_t index, std::uint64_t offset) {
  if (index < slots_.size()) Compact(slots_[index], offset);
}

const proto::ItemSnapshot* JournalState::FinishedInMemory(std::string_view id,
                                                          std::uint32_t& index) const {
  const auto found = Lookup(id);
  if (!found) return nullptr;
  index = *found;
  const proto::ItemSnapshot* item = slots_[index].live.get();
  return item != nullptr && IsFinished(item->phase()) ? item : nullptr;
}

void JournalState::ApplyOwnSnapshot(std::uint32_t index, std::int64_t unix_time,
                                    std::uint64_t offset) {
  if (index >= slots_.size()) return;
  Slot& slot = slots_[index];
  if (!slot.live || !IsFinished(slot.live->phase())) return;
  // Apply's kItemSnapshot case, for a snapshot equal to the one in memory: nothing in the item
  // changes, it is not done anew (recent_done_), and it becomes compact.
  ++records_;
  NoteTime(unix_time);
  Count(slot, -1);
  Compact(slot, offset);
  Count(slot, +1);
}

void JournalState::ApplyFinishedSnapshot(const FinishedSnapshot& snapshot, std::int64_t unix_time,
                                         std::uint64_t offset) {
  ++records_;
  NoteTime(unix_time);
  ApplyFinished(snapshot, offset);
}

void JournalState::ApplyFinished(const FinishedSnapshot& snapshot, std::uint64_t offset) {
  // An item first met here is made compact at once: nothing of it is built in memory (and so no
  // first time is kept: its snapshot record has it).
  Slot& slot = SlotFor(snapshot.item_id, /*unix_time=*/0, /*live=*/false);
  Count(slot, -1);
  // A finished item's own snapshot (Finalize) repeats what is known: it is not done anew.
  const bool was_done = (slot.live ? slot.live->phase() : slot.phase) == proto::ItemSnapshot::DONE;
  CompactFrom(slot, snapshot, offset);
  if (snapshot.phase == proto::ItemSnapshot::DONE && !was_done) NoteDone(snapshot.last_unix_time);
  Count(slot, +1);
}

void JournalState::NoteDone(std::int64_t unix_time) {
  recent_done_.push_back(unix_time);
  if (recent_done_.size() > kRecentDoneTimes) recent_done_.pop_front();
}

void JournalState::NoteTime(std::int64_t unix_time) {
  if (unix_time == 0) return;
  if (totals_.first_unix_time == 0 || unix_time < totals_.first_unix_time) {
    totals_.first_unix_time = unix_time;
  }
  totals_.last_unix_time = std::max(totals_.last_unix_time, unix_time);
}

const proto::ItemSnapshot* JournalState::Find(std::string_view id) const {
  auto index = Lookup(id);
  if (!index) return nullptr;
  const Slot& slot = slots_[*index];
  if (slot.live) return slot.live.get();
  return Load(slot, loaded_) ? &loaded_ : nullptr;
}

void JournalState::ForEachItem(const std::function<void(const proto::ItemSnapshot&)>& visit) const {
  proto::ItemSnapshot scratch;
  for (const Slot& slot : slots_) {
    if (slot.live) {
      visit(*slot.live);
    } else if (Load(slot, scratch)) {
      visit(scratch);
    } else {
      throw std::runtime_error("journal: cannot read back the snapshot of an item at byte " +
                               std::to_string(slot.offset));
    }
  }
}

// Adds (sign +1) or removes (sign -1) an item's contribution to the totals, so that any change
// is "remove, mutate, add back" and the totals cannot drift.
void JournalState::Count(const Slot& slot, int sign) {
  auto add = [sign](std::uint64_t& counter, std::uint64_t amount) {
    counter = sign > 0 ? counter + amount : counter - amount;
  };
  const proto::ItemSnapshot* item = slot.live.get();
  const Phase phase = item ? item->phase() : slot.phase;
  const bool departed = item ? item->departed() : slot.departed;
  if (departed) {
    add(totals_.departed, 1);
  } else {
    switch (phase) {
      case proto::ItemSnapshot::QUEUED:
        add(totals_.queued, 1);
        break;
      case proto::ItemSnapshot::INTENT:
        add(totals_.intent, 1);
        break;
      case proto::ItemSnapshot::SUBMITTED:
        add(totals_.submitted, 1);
        break;
      case proto::ItemSnapshot::COMPLETED:
        add(totals_.completed, 1);
        break;
      case proto::ItemSnapshot::DONE:
        add(totals_.done, 1);
        break;
      case proto::ItemSnapshot::GAVE_UP:
        add(totals_.gave_up, 1);
        break;
      default:
        break;
    }
  }
  if (item) {
    if (IsOpen(phase)) add(totals_.credits_reserved, item->credits());
    add(totals_.credits_spent, item->credits_spent());
    add(totals_.possible_duplicates, item->possible_duplicates());
    add(totals_.failed_tasks, item->failed_tasks());
    add(totals_.images, static_cast<std::uint64_t>(item->images_size()));
    add(totals_.flagged_images, FlaggedImages(*item));
  } else {
    add(totals_.credits_spent, slot.credits_spent);
    add(totals_.possible_duplicates, slot.possible_duplicates);
    add(totals_.failed_tasks, slot.failed_tasks);
    add(totals_.images, slot.images);
    add(totals_.flagged_images, slot.flagged_images);
  }
}

bool JournalState::IsWellFormed(const proto::Record& record) {
  // proto3 enums are open: a snapshot may carry a phase number this version does not know (a
  // corrupt frame whose checksum happens to hold, or a newer nanobatch). Such an item would be
  // in no phase: never counted, never resumed (found by fuzzing the journal).
  return !record.has_item_snapshot() ||
         proto::ItemSnapshot::Phase_IsValid(record.item_snapshot().phase());
}

void JournalState::Apply(const proto::Record& record, std::optional<std::uint64_t> offset) {
  proto::Record copy(record);
  Apply(std::move(copy), offset);
}

void JournalState::Apply(proto::Record&& record, std::optional<std::uint64_t> offset) {
  if (!IsWellFormed(record)) return;  // recovery reports such a frame as corrupt first
  ++records_;
  const std::int64_t t = record.unix_time();
  NoteTime(t);
  // Abandoning an open intent: the request may have created (and charged) a task.
  auto abandon_intent = [](proto::ItemSnapshot& item) {
    item.set_possible_duplicates(item.possible_duplicates() + 1);
    item.set_credits_spent(item.credits_spent() + item.credits());
    item.set_phase(proto::ItemSnapshot::QUEUED);
  };

  switch (record.event_case()) {
    case proto::Record::kSubmitIntent: {
      auto& intent = *record.mutable_submit_intent();
      Slot& slot = SlotFor(intent.item_id(), t);
      Count(slot, -1);
      proto::ItemSnapshot& item = Live(slot);
      item.set_departed(false);
      if (item.phase() == proto::ItemSnapshot::INTENT) abandon_intent(item);
      item.set_content_hash(std::move(*intent.mutable_content_hash()));
      item.set_prompt(std::move(*intent.mutable_prompt()));
      item.set_resolution(std::move(*intent.mutable_resolution()));
      item.set_aspect_ratio(std::move(*intent.mutable_aspect_ratio()));
      item.set_output_format(std::move(*intent.mutable_output_format()));
      *item.mutable_image_urls() = std::move(*intent.mutable_image_urls());
      item.set_attempt(intent.attempt());
      item.set_credits(intent.credits());
      // protobuf allocates a string for every set, even of "": these two are often empty.
      if (intent.callback_token().empty()) {
        item.clear_callback_token();
      } else {
        item.set_callback_token(std::move(*intent.mutable_callback_token()));
      }
      if (intent.meta_json().empty()) {
        item.clear_meta_json();
      } else {
        item.set_meta_json(std::move(*intent.mutable_meta_json()));
      }
      item.clear_task_id();
      item.clear_urls();
      item.clear_images();
      item.set_phase(proto::ItemSnapshot::INTENT);
      item.set_last_unix_time(t);
      Count(slot, +1);
      break;
    }
    case proto::Record::kIntentAbandoned: {
      Slot& slot = SlotFor(record.intent_abandoned().item_id(), t);
      Count(slot, -1);
      proto::ItemSnapshot& item = Live(slot);
      item.set_departed(false);
      if (item.phase() == proto::ItemSnapshot::INTENT) abandon_intent(item);
      item.set_last_error_code("possible_duplicate");
      item.set_last_error_message(record.intent_abandoned().reason());
      item.set_last_unix_time(t);
      Count(slot, +1);
      break;
    }
    case proto::Record::kSubmitted: {
      auto& submitted = *record.mutable_submitted();
      // No task id names no task. Only a fault could write one (0.1.0 did, for a submit whose
      // outcome was lost at a stop, after recording that loss): taken for what it is, nothing,
      // the item stays queued and is submitted again, its lost submit counted once.
      if (submitted.task_id().empty()) break;
      Slot& slot = SlotFor(submitted.item_id(), t);
      Count(slot, -1);
      proto::ItemSnapshot& item = Live(slot);
      item.set_departed(false);
      item.set_task_id(std::move(*submitted.mutable_task_id()));
      item.set_credits(submitted.credits());
      item.set_phase(proto::ItemSnapshot::SUBMITTED);
      item.set_last_unix_time(t);
      Count(slot, +1);
      break;
    }
    case proto::Record::kCompleted: {
      auto& completed = *record.mutable_completed();
      Slot& slot = SlotFor(completed.item_id(), t);
      Count(slot, -1);
      proto::ItemSnapshot& item = Live(slot);
      item.set_departed(false);
      if (IsOpen(item.phase())) item.set_credits_spent(item.credits_spent() + item.credits());
      if (!completed.task_id().empty()) item.set_task_id(std::move(*completed.mutable_task_id()));
      *item.mutable_urls() = std::move(*completed.mutable_urls());
      item.clear_images();
      item.set_phase(proto::ItemSnapshot::COMPLETED);
      item.set_last_unix_time(t);
      Count(slot, +1);
      break;
    }
    case proto::Record::kDownloaded: {
      auto& downloaded = *record.mutable_downloaded();
      Slot& slot = SlotFor(downloaded.item_id(), t);
      Count(slot, -1);
      proto::ItemSnapshot& item = Live(slot);
      // An image for no URL of the current task (a record of an older task) is not this task's.
      if (downloaded.index() >= static_cast<unsigned>(item.urls_size())) {
        Count(slot, +1);
        break;
      }
      item.set_departed(false);
      auto* images = item.mutable_images();
      auto existing = std::find_if(images->begin(), images->end(), [&](const auto& image) {
        return image.index() == downloaded.index();
      });
      // Moved: swapped in (both on the heap), or copied from a record on an arena.
      if (existing != images->end())
        *existing = std::move(downloaded);
      else
        *images->Add() = std::move(downloaded);
      if (item.phase() == proto::ItemSnapshot::COMPLETED && AllImagesDown(item)) {
        item.set_phase(proto::ItemSnapshot::DONE);
        NoteDone(t);
      }
      item.set_last_unix_time(t);
      Count(slot, +1);
      break;
    }
    case proto::Record::kRedone: {
      const auto& redone = record.redone();
      Slot& slot = SlotFor(redone.item_id(), t);
      Count(slot, -1);
      proto::ItemSnapshot& item = Live(slot);
      // Only a settled item is generated again: an open task or intent may still be paid for.
      if (!IsOpen(item.phase())) {
        item.set_departed(false);
        item.set_redos(item.redos() + 1);
        if (redone.mismatch()) item.set_mismatch_redos(item.mismatch_redos() + 1);
        item.clear_task_id();
        item.clear_urls();
        item.clear_images();
        item.set_last_error_code("");
        item.set_last_error_message(redone.reason());
        item.set_phase(proto::ItemSnapshot::QUEUED);
        item.set_last_unix_time(t);
      }
      Count(slot, +1);
      break;
    }
    case proto::Record::kTaskFailed: {
      const auto& failed = record.task_failed();
      Slot& slot = SlotFor(failed.item_id(), t);
      Count(slot, -1);
      proto::ItemSnapshot& item = Live(slot);
      item.set_departed(false);
      if (IsOpen(item.phase()) && failed.credits_spent_unknown()) {
        item.set_credits_spent(item.credits_spent() + item.credits());
      }
      if (!failed.task_id().empty()) item.set_failed_tasks(item.failed_tasks() + 1);
      item.set_last_error_code(failed.error_code());
      item.set_last_error_message(failed.message());
      if (item.phase() != proto::ItemSnapshot::DONE &&
          item.phase() != proto::ItemSnapshot::GAVE_UP) {
        item.set_phase(proto::ItemSnapshot::QUEUED);
      }
      item.set_last_unix_time(t);
      Count(slot, +1);
      break;
    }
    case proto::Record::kGaveUp: {
      const auto& gave_up = record.gave_up();
      Slot& slot = SlotFor(gave_up.item_id(), t);
      Count(slot, -1);
      proto::ItemSnapshot& item = Live(slot);
      item.set_departed(false);
      if (IsOpen(item.phase())) {
        // Giving up on an open task: its fate is unknown, so its credits count as spent.
        item.set_credits_spent(item.credits_spent() + item.credits());
      }
      item.set_last_error_code(gave_up.error_code());
      item.set_last_error_message(gave_up.message());
      item.set_phase(proto::ItemSnapshot::GAVE_UP);
      item.set_last_unix_time(t);
      Count(slot, +1);
      break;
    }
    case proto::Record::kItemSnapshot: {
      const auto& snapshot = record.item_snapshot();
      // A finished item whose whole snapshot is this record need not stay in memory.
      if (IsFinished(snapshot.phase()) && offset) {
        ApplyFinished(FinishedSnapshot::Of(snapshot), *offset);
        break;
      }
      Slot& slot = SlotFor(snapshot.item_id(), t);
      Count(slot, -1);
      const bool was_done =
          (slot.live ? slot.live->phase() : slot.phase) == proto::ItemSnapshot::DONE;
      if (!slot.live) {
        slot.live = std::make_unique<proto::ItemSnapshot>();
        --compact_;
      }
      *slot.live = snapshot;
      if (snapshot.phase() == proto::ItemSnapshot::DONE && !was_done) {
        NoteDone(snapshot.last_unix_time());
      }
      Count(slot, +1);
      break;
    }
    case proto::Record::kItemDeparted:
    case proto::Record::kItemReturned: {
      // Only the flag changes: a compact item stays compact.
      const bool departed = record.event_case() == proto::Record::kItemDeparted;
      Slot& slot = SlotFor(
          departed ? record.item_departed().item_id() : record.item_returned().item_id(), t);
      Count(slot, -1);
      if (slot.live) slot.live->set_departed(departed);
      slot.departed = departed;
      Count(slot, +1);
      break;
    }
    case proto::Record::kRunStarted:
      last_run_ = record.run_started();
      if (last_run_.started_unix_time() == 0) last_run_.set_started_unix_time(t);
      has_run_ = true;
      break;
    case proto::Record::EVENT_NOT_SET:
      break;
  }
}

std::map<std::string, std::uint64_t> JournalState::FailuresByCode() const {
  std::map<std::string, std::uint64_t> failures;
  for (const Slot& slot : slots_) {
    if (slot.live) {
      if (slot.live->phase() == proto::ItemSnapshot::GAVE_UP)
        ++failures[slot.live->last_error_code()];
    } else if (slot.phase == proto::ItemSnapshot::GAVE_UP) {
      ++failures[codes_[slot.error_code]];
    }
  }
  return failures;
}

void JournalState::ForEachSnapshotRecord(const RecordSink& sink) const {
  ForEachSnapshot(sink, nullptr);
}

void JournalState::ForEachSnapshot(
    const RecordSink& sink,
    const std::function<void(std::uint64_t offset, std::uint32_t index)>& compact_sink) const {
  proto::Record record;
  for (std::uint32_t index = 0; index < slots_.size(); ++index) {
    const Slot& slot = slots_[index];
    if (compact_sink && !slot.live && slot.departed == slot.departed_in_record) {
      compact_sink(slot.offset, index);
      continue;
    }
    proto::ItemSnapshot* snapshot = record.mutable_item_snapshot();
    if (slot.live) {
      *snapshot = *slot.live;
    } else if (!Load(slot, *snapshot)) {
      throw std::runtime_error("journal: cannot read back the snapshot of an item at byte " +
                               std::to_string(slot.offset));
    }
    record.set_unix_time(snapshot->last_unix_time());
    sink(record, index);
  }
  if (has_run_) {
    record.Clear();
    record.set_unix_time(totals_.last_unix_time);
    *record.mutable_run_started() = last_run_;
    sink(record, std::nullopt);
  }
}

}  // namespace nanobatch::journal
