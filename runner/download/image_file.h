#pragma once
// Writing one downloaded image safely: the body streams into a temporary file in the output
// directory's temporary area while SHA-256 is computed and the structure is checked
// (ImageCheck); only a complete, synced image is renamed to its final name (and the directory
// synced), so a partial image never appears under a final name. Every file operation goes
// through the OutputDir's descriptors and never follows a link.
//
// Example:
//   ImageFile file(journal.dir());
//   file.Write(data, size) ...
//   std::string final_name, error;
//   if (file.Commit("cat", final_name, error) == ImageFile::Committed::kOk) { "cat.png" }

#include <cstdint>
#include <string>
#include <string_view>

#include "runner/download/image_check.h"
#include "runner/fs/output_dir.h"
#include "runner/http/client.h"
#include "runner/util/sha256.h"

namespace nanobatch::download {

// SHA-256 (hex) of the file `name` in `dir` (never through a link); "" if it cannot be read.
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
  // Checks the image, fsyncs, renames to `<out>/<base_name>.<ext>`, fsyncs the directory.
  Committed Commit(const std::string& base_name, std::string& file_name, std::string& error);

  std::uint64_t bytes() const { return bytes_; }
  const std::string& sha256() const { return sha256_hex_; }

 private:
  const fs::OutputDir& dir_;
  std::string temp_name_;
  int fd_ = -1;
  std::string error_;
  ImageCheck check_;
  util::Sha256 hash_;
  std::string sha256_hex_;
  std::uint64_t bytes_ = 0;
  bool committed_ = false;
};

}  // namespace nanobatch::download
