#pragma once
// Writing one downloaded image safely: the body streams into a temporary file in the output
// directory's temporary area while SHA-256 is computed and the structure is checked
// (ImageCheck); only a complete image, once synced, is renamed to its final name, so a partial
// image never appears under a final name. Every file operation goes through the OutputDir's
// descriptors and never follows a link.
//
// Committing is three steps, so that the blocking one can run off the event loop: Check() (a
// whole image?), the caller's sync of fd() (disk::FileSyncs, on a disk worker, together with
// other images), Publish() (the rename). The caller then syncs the directory, once for every
// image published together.
//
// Example:
//   ImageFile file(journal.dir());
//   file.Write(data, size) ...
//   std::string final_name, error;
//   if (file.Check(error) == ImageFile::Committed::kOk &&
//       co_await file_syncs.Sync(file.fd()) == 0 &&
//       file.Publish("cat", final_name, error) == ImageFile::Committed::kOk) { "cat.png" }

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runner/download/image_check.h"
#include "runner/fs/output_dir.h"
#include "runner/http/client.h"
#include "runner/util/sha256.h"

namespace nanobatch::download {

// SHA-256 (hex) of the published image `name` in output directory `dir` (a plain name or one in
// a shard directory; never through a link); "" if it cannot be read.
std::string FileSha256(int dir, const std::string& name);
// SHA-256 (hex) of the file at `path`; "" if it cannot be read.
std::string FileSha256(const std::string& path);

class ImageFile : public http::BodySink {
 public:
  explicit ImageFile(const fs::OutputDir& dir);
  ~ImageFile() override;  // removes the temporary file unless committed
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;

  bool ok() const { return fd_ >= 0 && error_.empty(); }
  const std::string& error() const { return error_; }
  bool Write(const char* data, std::size_t size) override;

  enum class Committed {
    kOk,
    kNotAnImage,  // the bytes are no PNG, JPEG or WebP: the server's answer, not a disk problem
    kIncomplete,  // an image cut short (no IEND, no EOI, short RIFF)
    kIo,          // the disk refused: full, read-only, permissions
  };
  // Whether the bytes are one whole image (kOk), or why not.
  Committed Check(std::string& error);
  // The temporary file's descriptor, to be synced before Publish (it stays open until then).
  int fd() const { return fd_; }
  // After a successful Check and sync: renames to `<out>/<base_name>.<ext>`. The directory is
  // not synced here.
  // With `shard`, into that shard directory (`<out>/<NNNNN>/<base_name>.<ext>`); `new_directory`
  // tells that the shard directory was made now (`<out>` itself changed).
  Committed Publish(const std::string& base_name, std::string& file_name, std::string& error,
                    std::optional<std::uint32_t> shard = std::nullopt,
                    bool* new_directory = nullptr);
  // The directory the image was published into (the output directory or a shard's).
  int published_dir() const { return published_dir_; }
  // The message for a failed sync of fd() (`result`: its errno).
  std::string SyncError(int result) const;

  std::uint64_t bytes() const { return bytes_; }
  const std::string& sha256() const { return sha256_hex_; }
  // After a successful Check: "png", "jpg" or "webp", and the pixel size (0 x 0 if unknown).
  const std::string& type() const { return type_; }
  PixelSize pixel_size() const { return pixel_size_; }

 private:
  const fs::OutputDir& dir_;
  std::string temp_name_;
  int fd_ = -1;
  std::string error_;
  ImageCheck check_;
  std::string type_;  // png, jpg, webp: known after Check
  PixelSize pixel_size_;
  util::Sha256 hash_;
  std::string sha256_hex_;
  std::uint64_t bytes_ = 0;
  bool committed_ = false;
  int published_dir_ = -1;
};

}  // namespace nanobatch::download
