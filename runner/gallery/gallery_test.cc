#include "runner/gallery/gallery.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "runner/journal/journal.h"
#include "runner/journal/test_records.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::gallery {
namespace {

TEST_CASE("gallery: items, images and failures as embedded data; hostile text stays text") {
  testing::TempDir dir;
  std::string error;
  auto journal = journal::Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(journal, error);
  journal::AppendFinishedItem(*journal, "a");
  // An item whose prompt tries to close the script element, and that failed with an error the
  // server wrote.
  proto::Record intent;
  intent.mutable_submit_intent()->set_item_id("b");
  intent.mutable_submit_intent()->set_prompt("</script><script>alert(1)</script>");
  intent.mutable_submit_intent()->set_resolution("2K");
  intent.mutable_submit_intent()->set_credits(24);
  intent.mutable_submit_intent()->set_meta_json("{\"label\":\"x<y\"}");
  journal->Append(intent);
  proto::Record gave_up;
  gave_up.mutable_gave_up()->set_item_id("b");
  gave_up.mutable_gave_up()->set_error_code("content_policy_violation");
  gave_up.mutable_gave_up()->set_message("refused <b>");
  journal->Append(gave_up);

  GalleryCounts counts;
  const std::string data = GalleryData(journal->state(), counts);
  CHECK(counts.items == 2);
  CHECK(counts.images == 1);
  CHECK(counts.failed == 1);
  CHECK(data.find('<') == std::string::npos);
  const boost::json::array items = boost::json::parse(data).as_array();
  REQUIRE(items.size() == 2);
  const boost::json::array& b = items[1].as_array();
  CHECK(b[0] == "b");
  CHECK(b[1] == "failed");
  CHECK(b[2] == "</script><script>alert(1)</script>");
  CHECK(b[8] == "content_policy_violation");
  CHECK(b[9] == "refused <b>");
  CHECK(b[11].as_object().at("label") == "x<y");
  const boost::json::array& a_images = items[0].as_array()[10].as_array();
  REQUIRE(a_images.size() == 1);
  CHECK(a_images[0].as_array()[0] == "a.png");

  const std::string page = GalleryPage(journal->state(), counts);
  CHECK(page.find("@DATA@") == std::string::npos);
  CHECK(page.find("</script><script>alert") == std::string::npos);
  CHECK(page.find("Content-Security-Policy") != std::string::npos);
  CHECK(WriteGallery(journal->state(), journal->dir(), counts, error));
  CHECK(dir.Read("index.html") == page);
}

TEST_CASE("gallery: an image name that would leave the directory is left out") {
  testing::TempDir dir;
  std::string error;
  auto journal = journal::Journal::Open(dir.path(), {}, error);
  REQUIRE_MESSAGE(journal, error);
  journal::AppendFinishedItem(*journal, "a");
  proto::Record downloaded;
  downloaded.mutable_downloaded()->set_item_id("a");
  downloaded.mutable_downloaded()->set_file_name("../../etc/passwd");
  journal->Append(downloaded);
  GalleryCounts counts;
  CHECK(GalleryData(journal->state(), counts).find("passwd") == std::string::npos);
}

}  // namespace
}  // namespace nanobatch::gallery
