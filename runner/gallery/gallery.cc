#include "runner/gallery/gallery.h"

#include <boost/json.hpp>

#include "runner/gallery/page_html.h"  // kGalleryPage: page.html, generated
#include "runner/util/json_text.h"

namespace nanobatch::gallery {
namespace {

namespace json = boost::json;

std::string_view StateName(proto::ItemSnapshot::Phase phase) {
  switch (phase) {
    case proto::ItemSnapshot::DONE:
      return "done";
    case proto::ItemSnapshot::GAVE_UP:
      return "failed";
    case proto::ItemSnapshot::QUEUED:
      return "queued";
    case proto::ItemSnapshot::INTENT:
      return "submitting";
    case proto::ItemSnapshot::SUBMITTED:
      return "submitted";
    case proto::ItemSnapshot::COMPLETED:
      return "downloading";
    default:
      return "unknown";
  }
}

}  // namespace

std::string GalleryData(const journal::JournalState& state, GalleryCounts& counts) {
  json::array items;
  state.ForEachItem([&](const proto::ItemSnapshot& item) {
    if (item.departed()) return;  // no longer in the manifest
    json::array images;
    for (const auto& image : item.images()) {
      if (!fs::IsPublishedName(image.file_name())) continue;  // never a path out of the directory
      images.push_back(json::array{image.file_name(), image.width(), image.height(), image.bytes(),
                                   image.mismatch()});
    }
    json::value columns = nullptr;
    if (!item.meta_json().empty()) {
      boost::system::error_code error;
      json::value parsed = json::parse(item.meta_json(), error);
      if (!error && parsed.is_object()) columns = std::move(parsed);
    }
    const bool failed = item.phase() == proto::ItemSnapshot::GAVE_UP;
    ++counts.items;
    counts.images += images.size();
    counts.failed += failed;
    items.push_back(
        json::array{item.item_id(), StateName(item.phase()), item.prompt(), item.resolution(),
                    item.aspect_ratio(), item.output_format(), item.credits(), item.task_id(),
                    failed ? item.last_error_code() : "", failed ? item.last_error_message() : "",
                    std::move(images), std::move(columns)});
  });
  // JSON has '<' only inside strings, where \u003c means the same: no text can end the
  // <script> element it is embedded in.
  const std::string text = util::JsonText(items);
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    if (c == '<') {
      escaped += "\\u003c";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

std::string GalleryPage(const journal::JournalState& state, GalleryCounts& counts) {
  std::string page(kGalleryPage);
  const std::string marker = "@DATA@";
  page.replace(page.find(marker), marker.size(), GalleryData(state, counts));
  return page;
}

bool WriteGallery(const journal::JournalState& state, const fs::OutputDir& dir,
                  GalleryCounts& counts, std::string& error) {
  return fs::WriteFileAtomically(dir.fd(), "index.html", GalleryPage(state, counts),
                                 fs::kPublishedFileMode, error);
}

}  // namespace nanobatch::gallery
