// Power loss, simulated: a finished run's journal is cut at many byte positions (what a power
// cut can leave: everything up to some write, nothing after), put beside the images in a fresh
// directory, and the same command resumes there. For every cut the resume must finish, pay only
// for the items whose task id the cut journal does not hold, and leave only correct images.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runner/download/image_file.h"
#include "runner/testing/fake_api_process.h"
#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::chaos {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
constexpr const char* kBinary = testing::kNanobatchBinary;

TEST_CASE("power loss: a journal cut at any byte resumes correctly and pays only what it lost") {
  testing::TempDir dir;
  testing::FakeApiProcess api(dir, {"--pending-ms", "2", "--processing-ms", "3"});
  std::string manifest_text;
  for (int i = 0; i < 12; ++i) {
    manifest_text += "{\"id\":\"w" + std::to_string(i) + "\",\"prompt\":\"power " +
                     std::to_string(i) + "\",\"output_format\":\"" + (i % 2 ? "png" : "jpg") +
                     "\"}\n";
  }
  const std::string manifest = dir.Write("manifest.jsonl", manifest_text);
  const std::string config = dir.Write("config.yaml",
                                       "polling: {first_poll_s: 0.02, max_interval_s: 0.1}\n"
                                       "limits: {rate: 500, burst: 50}\n"
                                       "log: {progress_interval_s: 60}\n");
  const std::map<std::string, std::string> env = {{"AIVIDEOAPI_API_KEY", "sk-test"}};
  const std::string original = dir.File("original");
  REQUIRE(testing::RunProcess(api.RunnerArgs(config, manifest, original), env).exit_code == 0);
  const std::string journal = dir.Read("original/.nanobatch/journal.log");
  REQUIRE(journal.size() > 500);

  std::vector<std::size_t> cuts;
  for (std::size_t n = 0; n < journal.size(); n += journal.size() / 23 + 1) cuts.push_back(n);
  for (std::size_t back = 1; back <= 5; ++back) cuts.push_back(journal.size() - back);
  cuts.push_back(journal.size());

  for (std::size_t cut : cuts) {
    CAPTURE(cut);
    const std::string copy = dir.File("cut-" + std::to_string(cut));
    fs::create_directories(copy + "/.nanobatch");
    for (const auto& entry : fs::directory_iterator(original)) {
      if (entry.is_regular_file())
        fs::copy_file(entry.path(), copy + "/" + entry.path().filename().string());
    }
    std::ofstream(copy + "/.nanobatch/journal.log", std::ios::binary)
        .write(journal.data(), static_cast<std::streamsize>(cut));

    // What the cut journal still knows decides what must be paid again.
    std::int64_t known = 0;
    testing::ProcessResult status =
        testing::RunProcess({kBinary, "status", "--out", copy, "--json"});
    if (status.exit_code == 0) {
      json::object s = json::parse(status.out).as_object();
      known = s.at("submitted").as_int64() + s.at("completed_awaiting_download").as_int64() +
              s.at("done").as_int64();
    }
    const std::int64_t before = api.Stats().at("submissions").as_int64();
    testing::ProcessResult resumed =
        testing::RunProcess(api.RunnerArgs(config, manifest, copy), env);
    INFO(resumed.err);
    REQUIRE(resumed.exit_code == 0);
    CHECK(api.Stats().at("submissions").as_int64() - before == 12 - known);

    std::ifstream metadata(copy + "/metadata.jsonl");
    std::string line;
    int images = 0;
    while (std::getline(metadata, line)) {
      json::object entry = json::parse(line).as_object();
      CHECK(download::FileSha256(copy + "/" + std::string(entry.at("file_name").as_string())) ==
            entry.at("sha256").as_string());
      ++images;
    }
    CHECK(images == 12);
  }
}

}  // namespace
}  // namespace nanobatch::chaos
