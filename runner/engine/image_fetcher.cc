#include "runner/engine/image_fetcher.h"

#include "runner/download/image_file.h"
#include "runner/http/url.h"
#include "runner/util/log.h"
#include "runner/util/server_text.h"

namespace nanobatch::engine {

namespace net = boost::asio;
using util::LogError;
using util::LogWarning;

namespace {

// The config's networks were validated when it was loaded (ValidateConfig).
http::AddressPolicy DownloadAddresses(const config::DownloadConfig& download) {
  std::vector<http::Network> networks;
  for (const std::string& text : download.allowed_networks) {
    if (auto network = http::Network::Parse(text)) networks.push_back(*network);
  }
  return http::AddressPolicy(std::move(networks));
}

// output.image_sync (validated with the config) for the output filesystem `fd` is on.
disk::FileSyncs::Method ImageSyncMethod(const std::string& setting, int fd) {
  using Method = disk::FileSyncs::Method;
  if (setting == "fsync") return Method::kEachFile;
  return disk::FileSyncs::MethodFor(
      fd, setting == "syncfs" ? Method::kFilesystem : Method::kFilesystemWhenQuiet);
}

}  // namespace

ImageFetcher::ImageFetcher(Service& service, Recorder& recorder)
    : service_(service),
      recorder_(recorder),
      config_(service.config()),
      addresses_(DownloadAddresses(config_.download)),
      image_syncs_(service.image_syncs().For(
          recorder.journal().dir().tmp_fd(),
          ImageSyncMethod(config_.output.image_sync, recorder.journal().dir().tmp_fd()))) {}

net::awaitable<bool> ImageFetcher::Publish(download::ImageFile& file, const std::string& base_name,
                                           std::uint32_t item_index, std::string& file_name) {
  const int synced = co_await image_syncs_->Sync(file.fd(), file.bytes());
  std::string error;
  if (synced != 0) {
    service_.Halt(StopReason::kDisk, file.SyncError(synced));
    co_return false;
  }
  const std::uint32_t shard_size = config_.output.shard_size;
  bool new_directory = false;
  const auto shard =
      shard_size > 0 ? std::optional<std::uint32_t>(item_index / shard_size) : std::nullopt;
  if (file.Publish(base_name, file_name, error, shard, &new_directory) !=
      download::ImageFile::Committed::kOk) {
    service_.Halt(StopReason::kDisk, error);
    co_return false;
  }
  // The directories are synced by the item's commit (FetchAll).
  recorder_.NoteRenamed(file.published_dir());
  if (new_directory) recorder_.NoteRenamed(recorder_.journal().dir().fd());
  co_return true;
}

net::awaitable<ImageFetcher::FetchOutcome> ImageFetcher::FetchAll(const ItemRun& run) {
  const std::vector<std::string> urls(recorder_.Snapshot(run)->urls().begin(),
                                      recorder_.Snapshot(run)->urls().end());
  if (urls.empty()) {
    // A completed task recorded without URLs (an older journal, or a crash between the two
    // records of an output problem): it was charged; it is not paid for again.
    recorder_.RecordGaveUp(run, "no_images", "the task completed with no image URL");
    co_await recorder_.Commit();
    co_return FetchOutcome::kNotDone;
  }
  for (int k = 0; k < static_cast<int>(urls.size()); ++k) {
    bool have = false;
    for (const auto& image : recorder_.Snapshot(run)->images())
      have = have || image.index() == static_cast<unsigned>(k);
    if (have) continue;
    if (!co_await FetchOne(run, k, urls[k])) co_return FetchOutcome::kNotDone;
  }
  if (recorder_.Snapshot(run)->phase() != proto::ItemSnapshot::DONE)
    co_return FetchOutcome::kNotDone;
  // Its images' names and records durable (one directory sync for the group), then reported
  // done; the finalized snapshot rides along with the next commit.
  if (!co_await recorder_.Commit()) co_return FetchOutcome::kNotDone;
  if (config_.download.on_mismatch == "retry" && recorder_.Snapshot(run)->mismatch_redos() == 0) {
    std::string mismatch;
    for (const auto& image : recorder_.Snapshot(run)->images()) {
      if (!image.mismatch().empty()) mismatch = image.mismatch();
    }
    if (!mismatch.empty()) {
      LogWarning(ItemLabel(recorder_.log_prefix(), run) + ": " + mismatch +
                 "; generating it once more (download.on_mismatch: retry)");
      if (!co_await recorder_.Redo(run.id, /*mismatch=*/true, mismatch)) {
        co_return FetchOutcome::kNotDone;
      }
      co_return FetchOutcome::kRedo;
    }
  }
  ++done_;
  recorder_.RecordDone(run);
  co_return FetchOutcome::kDone;
}

net::awaitable<bool> ImageFetcher::FetchOne(const ItemRun& run, int index, const std::string& url) {
  std::string why;
  auto endpoint = http::ParseUrl(url, &why);
  const http::DownloadRefusal refusal =
      !endpoint ? http::DownloadRefusal::kNotHttps
                : http::CheckDownload(*endpoint, service_.api_endpoint(),
                                      config_.download.allowed_hosts, &why);
  if (refusal != http::DownloadRefusal::kNone) {
    const std::string shown = util::ServerText(url, 200);
    if (refusal == http::DownloadRefusal::kHostNotAllowed) {
      // Allowing the host is the user's call: the item stays completed (paid), and the run that
      // follows the fix downloads it without paying again.
      ++policy_blocked_;
      LogError(ItemLabel(recorder_.log_prefix(), run) + ": image " + shown +
               " not downloaded: " + why);
    } else {
      recorder_.RecordGaveUp(run, "download_refused", "image URL " + shown + " refused: " + why);
      co_await recorder_.Commit();
    }
    NoteRefusal(why);
    co_return false;
  }
  if (service_.halted() || !co_await service_.downloads().Acquire(&service_.halt_signal()))
    co_return false;
  // A download slot bounds the bodies streaming at once; it is given back as soon as the body
  // is in, so that syncing the file (disk work) does not hold up the next download.
  util::HeldUnit slot{service_.downloads()};

  const std::string base_name = index == 0 ? run.id : run.id + "-" + std::to_string(index);
  std::string image_problem;  // a bad body, if the attempts end on one
  int missing_status = 0;     // a 403 or 404, if the attempts end on one
  // Attempts the image host did not deliver (5xx, network errors): retry.max_attempts of them
  // with no other image downloaded since the first is an image host delivering nothing. Every
  // paid task would wait out the same: the run stops (true) and the next run downloads.
  unsigned undelivered = 0;
  std::uint64_t delivered_before = 0;
  const auto host_down = [&](const std::string& what) {
    if (undelivered++ == 0) delivered_before = service_.downloads_succeeded();
    if (undelivered < config_.retry.max_attempts ||
        service_.downloads_succeeded() != delivered_before) {
      return false;
    }
    service_.Halt(StopReason::kImagesUndelivered,
                  std::to_string(undelivered) + " downloads of " + util::ServerText(url, 200) +
                      " in a row failed, and no other image came through meanwhile: " + what);
    return true;
  };
  for (unsigned attempt = 0; attempt < config_.retry.max_attempts; ++attempt) {
    if (attempt > 0 &&
        co_await service_.HaltableSleep(ToDuration(service_.backoff().Delay(attempt - 1))))
      co_return false;
    // What the attempts ended on decides how the item ends: only the last one's counts.
    image_problem.clear();
    missing_status = 0;
    download::ImageFile file(recorder_.journal().dir());
    if (!file.ok()) {
      service_.Halt(StopReason::kDisk, file.error());
      co_return false;
    }
    auto result =
        co_await service_.client().Download(*endpoint, file, config_.download.max_bytes,
                                            ToDuration(config_.timeouts.download_s), addresses_);
    if (auto* network = std::get_if<http::NetworkError>(&result)) {
      if (service_.halted()) co_return false;
      if (network->refused_by_policy) {
        // As for a host not allowed: the user's call, the item stays completed (paid).
        ++policy_blocked_;
        LogError(ItemLabel(recorder_.log_prefix(), run) + ": image " + util::ServerText(url, 200) +
                 " not downloaded: " + network->what);
        NoteRefusal(network->what);
        co_return false;
      }
      if (network->permanent) {
        service_.Halt(StopReason::kMisconfigured, network->what);
        co_return false;
      }
      if (network->too_large) {
        // Larger than download.max_bytes, announced or counted: the same URL would be as large
        // again. The item fails (paid: --retry-failed downloads it after the limit is raised).
        const std::string why = "the image is larger than download.max_bytes (" +
                                std::to_string(config_.download.max_bytes) +
                                " bytes); raise it and run again with --retry-failed to download "
                                "it without paying again";
        recorder_.RecordGaveUp(run, "image_too_large", why);
        co_await recorder_.Commit();
        NoteRefusal(why);
        co_return false;
      }
      if (!file.ok()) {
        service_.Halt(StopReason::kDisk, file.error());
        co_return false;
      }
      if (host_down(network->what)) co_return false;
      util::LogTransient("downloads retried", ItemLabel(recorder_.log_prefix(), run) +
                                                  ": download failed (" + network->what +
                                                  "), retrying");
      continue;
    }
    const auto& outcome = std::get<http::DownloadOutcome>(result);
    service_.counters().download_bytes += outcome.bytes;
    if (!outcome.content_encoding.empty()) {
      // Asked for identity, sent compressed: the same URL answers the same way again. Paid, so
      // the item fails as a bad image that --retry-failed downloads again, paying nothing.
      const std::string why =
          "the image host sent the image encoded (Content-Encoding: " +
          util::ServerText(outcome.content_encoding, 64) +
          ") although asked for identity; nanobatch stores images as their hosts keep them and "
          "decodes nothing";
      recorder_.RecordGaveUp(run, "bad_image", why);
      co_await recorder_.Commit();
      NoteRefusal(why);
      co_return false;
    }
    if (outcome.status != 200) {
      const int status = outcome.status;
      const std::string answered = "image URL answered HTTP " + std::to_string(status);
      // A server's or proxy's failure, a rate limit, or a 1xx in place of the image (a 101
      // nobody asked for): fetched again.
      if (status >= 500 || status == 429 || status == 408 || (status >= 100 && status < 200)) {
        if (host_down(answered)) co_return false;
        continue;
      }
      if (status >= 300 && status < 400) {
        // A redirect is never followed: where it points is the server's word, unchecked. As for
        // a host not allowed, the item stays completed (paid) for a later run to fetch.
        ++policy_blocked_;
        const std::string why = answered + ", a redirect, which is never followed";
        LogError(ItemLabel(recorder_.log_prefix(), run) + ": image " + util::ServerText(url, 200) +
                 " not downloaded: " + why);
        NoteRefusal(why);
        co_return false;
      }
      if (status == 403 || status == 404) {
        // Perhaps not there yet (a CDN answers so until the file reaches it): fetched again
        // within the attempts, and given up on when it stays so.
        missing_status = status;
        util::LogTransient("downloads retried", ItemLabel(recorder_.log_prefix(), run) + ": " +
                                                    answered + "; downloading again");
        continue;
      }
      // 410 Gone, 401, 400 and the rest: the URL has no image for us.
      recorder_.RecordGaveUp(run, "download_failed", answered);
      co_await recorder_.Commit();
      NoteRefusal(answered);
      co_return false;
    }
    std::string file_name, error;
    switch (file.Check(error)) {
      case download::ImageFile::Committed::kOk:
        slot.Release();
        if (!co_await Publish(file, base_name, run.index, file_name)) co_return false;
        break;
      case download::ImageFile::Committed::kNotAnImage:
      case download::ImageFile::Committed::kIncomplete:
        // Possibly a body cut short on the way: fetched again, and given up on only when the
        // server keeps sending it so.
        image_problem = error;
        util::LogTransient("downloads retried", ItemLabel(recorder_.log_prefix(), run) + ": " +
                                                    error + "; downloading again");
        continue;
      case download::ImageFile::Committed::kIo:
        service_.Halt(StopReason::kDisk, error);
        co_return false;
    }
    refusals_.Accepted();
    service_.DownloadSucceeded();
    proto::Record record;
    auto* downloaded = record.mutable_downloaded();
    downloaded->set_item_id(run.id);
    downloaded->set_index(static_cast<unsigned>(index));
    downloaded->set_file_name(file_name);
    downloaded->set_sha256(file.sha256());
    downloaded->set_bytes(file.bytes());
    downloaded->set_width(file.pixel_size().width);
    downloaded->set_height(file.pixel_size().height);
    if (config_.download.on_mismatch != "keep") {
      std::string mismatch =
          download::DescribeMismatch(run.output_format, run.aspect_ratio, file.type(),
                                     file.pixel_size().width, file.pixel_size().height);
      // Set only when there is one: protobuf allocates a string for every set, even of "".
      if (!mismatch.empty()) downloaded->set_mismatch(std::move(mismatch));
    }
    // Not waited for: the item's end (FetchAll) commits it. Lost in a crash, it costs one
    // download of a file that is already here, never credits.
    recorder_.Append(std::move(record));
    co_return true;
  }
  if (missing_status != 0) {
    const std::string answered = "image URL answered HTTP " + std::to_string(missing_status) +
                                 " (" + std::to_string(config_.retry.max_attempts) + " downloads)";
    recorder_.RecordGaveUp(run, "download_failed", answered);
    co_await recorder_.Commit();
    NoteRefusal(answered);
    co_return false;
  }
  if (!image_problem.empty()) {
    recorder_.RecordGaveUp(
        run, "bad_image",
        image_problem + " (" + std::to_string(config_.retry.max_attempts) + " downloads)");
    co_await recorder_.Commit();
    NoteRefusal(image_problem);
    co_return false;
  }
  LogWarning(ItemLabel(recorder_.log_prefix(), run) +
             ": download kept failing; it will be retried by the next run");
  co_return false;
}

void ImageFetcher::NoteRefusal(const std::string& why) {
  if (refusals_.Refused()) {
    service_.StopSubmitting(StopReason::kDownloadPolicy,
                            std::to_string(refusals_.length()) + " items in a row: " + why);
  }
}

}  // namespace nanobatch::engine
