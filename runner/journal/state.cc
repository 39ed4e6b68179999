#include "runner/journal/state.h"

#include <algorithm>

namespace nanobatch::journal {
namespace {

bool IsOpen(Phase phase) {
  return phase == proto::ItemSnapshot::INTENT || phase == proto::ItemSnapshot::SUBMITTED;
}

// Images are kept one per index, and only for indexes below urls_size() (see kDownloaded), so
// counting them is enough: replay stays linear however many URLs a task has.
bool AllImagesDown(const proto::ItemSnapshot& item) {
  return item.urls_size() > 0 && item.images_size() == item.urls_size();
}

}  // namespace

const proto::ItemSnapshot* JournalState::Find(std::string_view id) const {
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? nullptr : it->second;
}

proto::ItemSnapshot& JournalState::Item(const std::string& id, std::int64_t unix_time) {
  auto it = by_id_.find(id);
  if (it != by_id_.end()) return *it->second;
  items_.push_back(google::protobuf::Arena::CreateMessage<proto::ItemSnapshot>(arena_.get()));
  proto::ItemSnapshot& item = *items_.back();
  item.set_item_id(id);
  item.set_first_unix_time(unix_time);
  by_id_.emplace(id, &item);
  ++totals_.items;
  Count(item, +1);
  return item;
}

// Adds (sign +1) or removes (sign -1) an item's contribution to the totals, so that any change
// is "remove, mutate, add back" and the totals cannot drift.
void JournalState::Count(const proto::ItemSnapshot& item, int sign) {
  auto add = [sign](std::uint64_t& counter, std::uint64_t amount) {
    counter = sign > 0 ? counter + amount : counter - amount;
  };
  if (item.departed()) {
    add(totals_.departed, 1);
  } else
    switch (item.phase()) {
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
  if (IsOpen(item.phase())) add(totals_.credits_reserved, item.credits());
  add(totals_.credits_spent, item.credits_spent());
  add(totals_.possible_duplicates, item.possible_duplicates());
  add(totals_.failed_tasks, item.failed_tasks());
  add(totals_.images, static_cast<std::uint64_t>(item.images_size()));
}

void JournalState::Apply(const proto::Record& record) {
  ++records_;
  const std::int64_t t = record.unix_time();
  if (t != 0) {
    if (totals_.first_unix_time == 0 || t < totals_.first_unix_time) totals_.first_unix_time = t;
    totals_.last_unix_time = std::max(totals_.last_unix_time, t);
  }
  // Abandoning an open intent: the request may have created (and charged) a task.
  auto abandon_intent = [](proto::ItemSnapshot& item) {
    item.set_possible_duplicates(item.possible_duplicates() + 1);
    item.set_credits_spent(item.credits_spent() + item.credits());
    item.set_phase(proto::ItemSnapshot::QUEUED);
  };

  switch (record.event_case()) {
    case proto::Record::kSubmitIntent: {
      const auto& intent = record.submit_intent();
      proto::ItemSnapshot& item = Item(intent.item_id(), t);
      Count(item, -1);
      item.set_departed(false);
      if (item.phase() == proto::ItemSnapshot::INTENT) abandon_intent(item);
      item.set_content_hash(intent.content_hash());
      item.set_prompt(intent.prompt());
      item.set_resolution(intent.resolution());
      item.set_aspect_ratio(intent.aspect_ratio());
      item.set_output_format(intent.output_format());
      *item.mutable_image_urls() = intent.image_urls();
      item.set_attempt(intent.attempt());
      item.set_credits(intent.credits());
      item.set_callback_token(intent.callback_token());
      item.clear_task_id();
      item.clear_urls();
      item.clear_images();
      item.set_phase(proto::ItemSnapshot::INTENT);
      item.set_last_unix_time(t);
      Count(item, +1);
      break;
    }
    case proto::Record::kIntentAbandoned: {
      proto::ItemSnapshot& item = Item(record.intent_abandoned().item_id(), t);
      Count(item, -1);
      item.set_departed(false);
      if (item.phase() == proto::ItemSnapshot::INTENT) abandon_intent(item);
      item.set_last_error_code("possible_duplicate");
      item.set_last_error_message(record.intent_abandoned().reason());
      item.set_last_unix_time(t);
      Count(item, +1);
      break;
    }
    case proto::Record::kSubmitted: {
      const auto& submitted = record.submitted();
      proto::ItemSnapshot& item = Item(submitted.item_id(), t);
      Count(item, -1);
      item.set_departed(false);
      item.set_task_id(submitted.task_id());
      item.set_credits(submitted.credits());
      item.set_phase(proto::ItemSnapshot::SUBMITTED);
      item.set_last_unix_time(t);
      Count(item, +1);
      break;
    }
    case proto::Record::kCompleted: {
      const auto& completed = record.completed();
      proto::ItemSnapshot& item = Item(completed.item_id(), t);
      Count(item, -1);
      item.set_departed(false);
      if (IsOpen(item.phase())) item.set_credits_spent(item.credits_spent() + item.credits());
      if (!completed.task_id().empty()) item.set_task_id(completed.task_id());
      *item.mutable_urls() = completed.urls();
      item.clear_images();
      item.set_phase(proto::ItemSnapshot::COMPLETED);
      item.set_last_unix_time(t);
      Count(item, +1);
      break;
    }
    case proto::Record::kDownloaded: {
      const auto& downloaded = record.downloaded();
      proto::ItemSnapshot& item = Item(downloaded.item_id(), t);
      // An image for no URL of the current task (a record of an older task) is not this task's.
      if (downloaded.index() >= static_cast<unsigned>(item.urls_size())) break;
      Count(item, -1);
      item.set_departed(false);
      auto* images = item.mutable_images();
      auto existing = std::find_if(images->begin(), images->end(), [&](const auto& image) {
        return image.index() == downloaded.index();
      });
      if (existing != images->end())
        *existing = downloaded;
      else
        *images->Add() = downloaded;
      if (item.phase() == proto::ItemSnapshot::COMPLETED && AllImagesDown(item)) {
        item.set_phase(proto::ItemSnapshot::DONE);
        recent_done_.push_back(t);
        if (recent_done_.size() > 4096) recent_done_.pop_front();
      }
      item.set_last_unix_time(t);
      Count(item, +1);
      break;
    }
    case proto::Record::kTaskFailed: {
      const auto& failed = record.task_failed();
      proto::ItemSnapshot& item = Item(failed.item_id(), t);
      Count(item, -1);
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
      Count(item, +1);
      break;
    }
    case proto::Record::kGaveUp: {
      const auto& gave_up = record.gave_up();
      proto::ItemSnapshot& item = Item(gave_up.item_id(), t);
      Count(item, -1);
      item.set_departed(false);
      if (IsOpen(item.phase())) {
        // Giving up on an open task: its fate is unknown, so its credits count as spent.
        item.set_credits_spent(item.credits_spent() + item.credits());
      }
      item.set_last_error_code(gave_up.error_code());
      item.set_last_error_message(gave_up.message());
      item.set_phase(proto::ItemSnapshot::GAVE_UP);
      item.set_last_unix_time(t);
      Count(item, +1);
      break;
    }
    case proto::Record::kItemSnapshot: {
      const auto& snapshot = record.item_snapshot();
      proto::ItemSnapshot& item = Item(snapshot.item_id(), t);
      Count(item, -1);
      item = snapshot;
      if (item.phase() == proto::ItemSnapshot::DONE) recent_done_.push_back(item.last_unix_time());
      Count(item, +1);
      break;
    }
    case proto::Record::kItemDeparted: {
      proto::ItemSnapshot& item = Item(record.item_departed().item_id(), t);
      Count(item, -1);
      item.set_departed(true);
      Count(item, +1);
      break;
    }
    case proto::Record::kItemReturned: {
      proto::ItemSnapshot& item = Item(record.item_returned().item_id(), t);
      Count(item, -1);
      item.set_departed(false);
      Count(item, +1);
      break;
    }
    case proto::Record::kRunStarted:
      last_run_ = record.run_started();
      has_run_ = true;
      break;
    case proto::Record::EVENT_NOT_SET:
      break;
  }
}

std::map<std::string, std::uint64_t> JournalState::FailuresByCode() const {
  std::map<std::string, std::uint64_t> failures;
  for (const auto& item : items_) {
    if (item->phase() == proto::ItemSnapshot::GAVE_UP) ++failures[item->last_error_code()];
  }
  return failures;
}

void JournalState::ForEachSnapshotRecord(
    const std::function<void(const proto::Record&)>& sink) const {
  proto::Record record;
  for (const auto& item : items_) {
    record.set_unix_time(item->last_unix_time());
    *record.mutable_item_snapshot() = *item;
    sink(record);
  }
  if (has_run_) {
    record.Clear();
    record.set_unix_time(totals_.last_unix_time);
    *record.mutable_run_started() = last_run_;
    sink(record);
  }
}

}  // namespace nanobatch::journal
