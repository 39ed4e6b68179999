#pragma once
// TempDir: a fresh directory for one test, under $TEST_TMPDIR when Bazel provides it, removed
// with everything in it when the test ends.
//
// Example:
//   TempDir dir;
//   std::string path = dir.Write("m.jsonl", "{\"prompt\":\"cat\"}\n");

#include <string>
#include <string_view>

namespace nanobatch::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string File(std::string_view name) const;
  // Writes `content` to File(name) and returns that path.
  std::string Write(std::string_view name, std::string_view content) const;
  // The whole content of File(name); empty when it does not exist.
  std::string Read(std::string_view name) const;

 private:
  std::string path_;
};

}  // namespace nanobatch::testing
