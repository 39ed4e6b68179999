#pragma once
// ImageFetcher: a completed item's images, from their URLs to files in the output directory and
// records in the journal. Each URL is checked against the download policy first (https, the
// API's host and port or an allowed host and port); each download streams to a temporary file
// (size-capped, hashed, typed by its magic bytes, checked for completeness), is made durable (on
// the disk worker, with the other images written meanwhile: disk::FileSyncs), renamed and
// recorded; the item is reported done after the Recorder's next commit,
// which syncs the directory once for every image renamed since the last one. A body cut short is
// fetched again; a host the policy refuses leaves the item completed (paid, fetched by the run
// after the fix); the same refusal for several items in a row stops submitting (it is the
// configuration, not the item).
//
// Example:
//   ImageFetcher fetcher(service, recorder);
//   co_await fetcher.FetchAll(run);   // the item is DONE, given up, or left completed

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "runner/disk/file_syncs.h"
#include "runner/download/image_file.h"
#include "runner/engine/item_run.h"
#include "runner/engine/recorder.h"
#include "runner/engine/service.h"
#include "runner/engine/stop_reason.h"
#include "runner/http/address_policy.h"

namespace nanobatch::engine {

class ImageFetcher {
 public:
  ImageFetcher(Service& service, Recorder& recorder);

  enum class FetchOutcome {
    kDone,     // every image on disk: reported done
    kNotDone,  // failed, given up, or stopping: the item's lifecycle ends here
    kRedo,     // a mismatched image with download.on_mismatch: retry: queued to be paid again
  };
  boost::asio::awaitable<FetchOutcome> FetchAll(const ItemRun& run);

  std::uint64_t done() const { return done_; }  // items finished this run
  // Paid items whose images the download policy held back this run (exit 5 if unfinished).
  std::uint64_t policy_blocked() const { return policy_blocked_; }

 private:
  boost::asio::awaitable<bool> FetchOne(const ItemRun& run, int index, const std::string& url);
  // Counts one more item in a row whose image was refused (`why`: by the download policy, or by
  // the image host answering its URL with an error). A streak (RefusalStreak) stops submitting:
  // every further submission would pay for an image that cannot be had.
  void NoteRefusal(const std::string& why);
  // Makes a checked image durable and gives it its final name (the directory is synced by the
  // next commit): false (the service halted) on a disk error.
  // `item_index`: the item's place in the manifest, which picks its shard directory.
  boost::asio::awaitable<bool> Publish(download::ImageFile& file, const std::string& base_name,
                                       std::uint32_t item_index, std::string& file_name);

  Service& service_;
  Recorder& recorder_;
  const config::Config& config_;
  // Where images may be downloaded from, by address: parsed once from download.allowed_networks.
  const http::AddressPolicy addresses_;
  // Makes images durable before their rename, several with one call where the output
  // filesystem allows (output.image_sync).
  // Shared with the other jobs writing to the same filesystem (Service::image_syncs).
  std::shared_ptr<disk::FileSyncs> image_syncs_;
  RefusalStreak refusals_;
  std::uint64_t policy_blocked_ = 0;
  std::uint64_t done_ = 0;
};

}  // namespace nanobatch::engine
