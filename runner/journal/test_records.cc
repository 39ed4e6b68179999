#include "runner/journal/test_records.h"

namespace nanobatch::journal {

void AppendFinishedItem(Journal& journal, const std::string& id) {
  proto::Record intent;
  auto* submit_intent = intent.mutable_submit_intent();
  submit_intent->set_item_id(id);
  submit_intent->set_credits(16);
  submit_intent->set_attempt(1);
  submit_intent->set_prompt("a long prompt for " + id);
  submit_intent->set_content_hash(std::string(64, 'c'));
  journal.Append(intent);
  proto::Record submitted;
  submitted.mutable_submitted()->set_item_id(id);
  submitted.mutable_submitted()->set_task_id("task-" + id);
  submitted.mutable_submitted()->set_credits(16);
  journal.Append(submitted);
  proto::Record completed;
  completed.mutable_completed()->set_item_id(id);
  completed.mutable_completed()->add_urls("https://f.example/" + id + ".png");
  journal.Append(completed);
  proto::Record downloaded;
  downloaded.mutable_downloaded()->set_item_id(id);
  downloaded.mutable_downloaded()->set_file_name(id + ".png");
  downloaded.mutable_downloaded()->set_bytes(1234);
  journal.Append(downloaded);
}

}  // namespace nanobatch::journal
