#include <doctest/doctest.h>

#include <string>

#include "proto/journal.pb.h"

namespace {

TEST_CASE("journal proto: a Completed record round-trips through its wire form") {
  nanobatch::proto::Record record;
  record.set_unix_time(1775383910);
  auto* completed = record.mutable_completed();
  completed->set_item_id("cat-001");
  completed->set_task_id("397ce9f2-aaaa");
  completed->add_urls("https://file.aivideoapi.ai/images/a.png");
  completed->add_urls("https://file.aivideoapi.ai/images/b.png");

  std::string wire;
  REQUIRE(record.SerializeToString(&wire));

  nanobatch::proto::Record decoded;
  REQUIRE(decoded.ParseFromString(wire));
  CHECK(decoded.unix_time() == 1775383910);
  REQUIRE(decoded.event_case() == nanobatch::proto::Record::kCompleted);
  CHECK(decoded.completed().item_id() == "cat-001");
  CHECK(decoded.completed().task_id() == "397ce9f2-aaaa");
  REQUIRE(decoded.completed().urls_size() == 2);
  CHECK(decoded.completed().urls(1) == "https://file.aivideoapi.ai/images/b.png");
}

TEST_CASE("journal proto: garbage bytes are rejected, not misread") {
  nanobatch::proto::Record decoded;
  // A field header announcing a length-delimited field far longer than the buffer.
  const std::string garbage("\x52\xff\xff\xff\x0f", 5);
  CHECK_FALSE(decoded.ParseFromString(garbage));
}

TEST_CASE("journal proto: every event kind keeps its own case") {
  nanobatch::proto::Record record;
  record.mutable_submit_intent()->set_item_id("x");
  CHECK(record.event_case() == nanobatch::proto::Record::kSubmitIntent);
  record.mutable_gave_up()->set_item_id("x");
  CHECK(record.event_case() == nanobatch::proto::Record::kGaveUp);
  CHECK_FALSE(record.has_submit_intent());
}

}  // namespace
