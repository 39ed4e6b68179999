#pragma once
// Writing one downloaded image safely: the body streams into a temporary file under
// `<out>/.nanobatch/tmp/` while SHA-256 is computed; the type is read from the magic bytes; only
// a complete, synced file is renamed to its final name (and the directory synced), so a partial
// image never appears under a final name.
//
// Example:
//   ImageFile file(tmp_dir + "/cat-0.part");
//   file.Write(data, size) ...
//   std::string final_name;
//   file.Commit(out_dir, "cat", final_name, error);   // -> "cat.png"

#include <cstdint>
#include <string>
#include <string_view>

#include "runner/http/client.h"
#include "runner/util/sha256.h"

namespace nanobatch::download {

// SHA-256 (hex) of a file's content, read in chunks; "" if it cannot be read.
std::string FileSha256(const std::string& path);

// "png", "jpg", "webp", or "" when the bytes are none of these.
std::string_view DetectImageType(std::string_view first_bytes);

class ImageFile : public http::BodySink {
 public:
  explicit ImageFile(std::string temp_path);
  ~ImageFile() override;  // removes the temporary file unless committed
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;

  bool ok() const { return fd_ >= 0 && error_.empty(); }
  const std::string& error() const { return error_; }
  bool Write(const char* data, std::size_t size) override;

  // Checks the type, fsyncs, renames to `<out_dir>/<base_name>.<ext>`, fsyncs the directory.
  bool Commit(const std::string& out_dir, const std::string& base_name, std::string& file_name,
              std::string& error);

  std::uint64_t bytes() const { return bytes_; }
  const std::string& sha256() const { return sha256_hex_; }

 private:
  std::string temp_path_;
  int fd_ = -1;
  std::string error_;
  std::string head_;  // the first bytes, for the magic check
  util::Sha256 hash_;
  std::string sha256_hex_;
  std::uint64_t bytes_ = 0;
  bool committed_ = false;
};

}  // namespace nanobatch::download
