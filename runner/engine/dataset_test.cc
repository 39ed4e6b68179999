// Dataset ergonomics end to end (the real binary against the simulator): manifest matrices,
// repeats and columns, image facts and mismatches, and generating items again on purpose.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "runner/disk/file_syncs.h"
#include "runner/testing/fake_api_process.h"
#include "runner/testing/runner_job.h"
#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::engine {
namespace {

namespace json = boost::json;
using testing::FakeApiProcess;
using testing::ProcessResult;
using testing::Stat;
using testing::TempDir;

constexpr const char* kBinary = testing::kNanobatchBinary;

using Job = testing::FastJob;

std::map<std::string, json::object> LinesById(const std::vector<json::object>& lines) {
  std::map<std::string, json::object> by_id;
  for (const auto& line : lines) by_id[std::string(line.at("id").as_string())] = line;
  return by_id;
}

TEST_CASE("dataset: a YAML matrix with meta columns: every expansion paid once, columns written") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "10", "--processing-ms", "20"});
  Job job(dir, api, "");
  job.manifest =
      dir.Write("pets.yaml",
                "- id: pets\n"
                "  prompt: \"a {subject}, {style}\"\n"
                "  output_format: png\n"
                "  matrix: {subject: [cat, dog], style: [ink, oil], aspect_ratio: [\"1:1\"]}\n"
                "  meta: {split: train, source: 7}\n"
                "- {id: sky, prompt: a sky, repeat: 2, meta: {label: sky}}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  CHECK(result.exit_code == 0);
  CHECK(Stat(api.Stats(), "submissions") == 6);
  auto by_id = LinesById(job.Lines("metadata.jsonl"));
  REQUIRE(by_id.size() == 6);
  REQUIRE(by_id.count("pets.dog.oil.1x1") == 1);
  const json::object& dog = by_id["pets.dog.oil.1x1"];
  CHECK(dog.at("prompt") == "a dog, oil");
  CHECK(dog.at("aspect_ratio") == "1:1");
  CHECK(dog.at("split") == "train");
  CHECK(dog.at("source") == 7);
  CHECK(dog.at("subject") == "dog");
  CHECK(dog.at("style") == "oil");
  CHECK(dog.at("file_name") == "pets.dog.oil.1x1.png");
  CHECK(std::filesystem::exists(job.out + "/pets.dog.oil.1x1.png"));
  REQUIRE(by_id.count("sky.r2") == 1);
  CHECK(by_id["sky.r2"].at("label") == "sky");
  CHECK(by_id["sky.r1"].at("prompt") == "a sky");

  // validate reports what the file expands to.
  ProcessResult validate = testing::RunProcess({kBinary, "validate", job.manifest});
  CHECK(validate.exit_code == 0);
  CHECK(validate.out.find(": 6 items (1K: 6), expanded from 2 entries by matrix: and repeat:") !=
        std::string::npos);
}

TEST_CASE("dataset: image sizes are recorded; a mismatch is flagged, kept, or retried once") {
  TempDir dir;
  // Prompts with "odd" get square images in the other format, the first time.
  FakeApiProcess api(dir,
                     {"--pending-ms", "10", "--processing-ms", "20", "--mismatch-once", "odd"});
  const std::string manifest =
      "{\"id\":\"a\",\"prompt\":\"odd a\",\"aspect_ratio\":\"16:9\",\"output_format\":\"png\"}\n"
      "{\"id\":\"b\",\"prompt\":\"odd b\",\"aspect_ratio\":\"16:9\",\"output_format\":\"png\"}\n"
      "{\"id\":\"c\",\"prompt\":\"c\",\"aspect_ratio\":\"16:9\",\"output_format\":\"png\"}\n";

  SUBCASE("flag (the default): a mismatch column, counted by status") {
    Job job(dir, api, manifest);
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 0);
    auto by_id = LinesById(job.Lines("metadata.jsonl"));
    REQUIRE(by_id.size() == 3);
    CHECK(by_id["a"].at("mismatch") == "asked png, received jpg; asked 16:9, received 32x32 (1:1)");
    CHECK(by_id["a"].at("file_name") == "a.jpg");
    CHECK(by_id["a"].at("width") == 32);
    CHECK(by_id["c"].count("mismatch") == 0);
    CHECK(by_id["c"].at("width") == 43);  // 16:9 over the area of 32 x 32
    CHECK(by_id["c"].at("height") == 24);
    CHECK(job.Status().at("flagged_images") == 2);
    ProcessResult status = testing::RunProcess({kBinary, "status", "--out", job.out});
    CHECK(status.out.find("2 not as asked") != std::string::npos);
    CHECK(Stat(api.Stats(), "submissions") == 3);
  }
  SUBCASE("keep: sizes only") {
    Job job(dir, api, manifest, "download: {on_mismatch: keep}\n");
    CHECK(job.Run().exit_code == 0);
    auto by_id = LinesById(job.Lines("metadata.jsonl"));
    REQUIRE(by_id.size() == 3);
    CHECK(by_id["a"].count("mismatch") == 0);
    CHECK(by_id["a"].at("height") == 32);
    CHECK(job.Status().at("flagged_images") == 0);
  }
  SUBCASE("retry: each mismatched item is paid once more, the first image kept aside") {
    Job job(dir, api, manifest, "download: {on_mismatch: retry}\n");
    ProcessResult result = job.Run();
    INFO(result.err);
    CHECK(result.exit_code == 0);
    CHECK(Stat(api.Stats(), "submissions") == 5);  // a and b twice
    auto by_id = LinesById(job.Lines("metadata.jsonl"));
    REQUIRE(by_id.size() == 3);
    CHECK(by_id["a"].count("mismatch") == 0);
    CHECK(by_id["a"].at("file_name") == "a.png");
    CHECK(std::filesystem::exists(job.out + "/.previous/a.1.jpg"));
    CHECK_FALSE(std::filesystem::exists(job.out + "/a.jpg"));
    CHECK(job.Status().at("credits_spent") == 5 * 16);
    CHECK(job.Status().at("flagged_images") == 0);
    CHECK(result.err.find("generating it once more") != std::string::npos);
  }
}

TEST_CASE("dataset: run --redo pays again for chosen items only, keeping their old images") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "10", "--processing-ms", "20"});
  Job job(dir, api,
          "{\"id\":\"a\",\"prompt\":\"a\",\"output_format\":\"png\"}\n"
          "{\"id\":\"b\",\"prompt\":\"b\",\"output_format\":\"png\"}\n"
          "{\"id\":\"c\",\"prompt\":\"c\",\"output_format\":\"png\"}\n");
  REQUIRE(job.Run().exit_code == 0);
  const std::string old_task =
      std::string(LinesById(job.Lines("metadata.jsonl"))["b"].at("task_id").as_string());

  // An id that is no item: usage error, nothing paid.
  ProcessResult unknown = job.Run({"--redo", "zz"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("--redo: \"zz\" is no item of") != std::string::npos);
  CHECK(Stat(api.Stats(), "submissions") == 3);

  ProcessResult redo = job.Run({"--redo", "b,c"});
  INFO(redo.err);
  CHECK(redo.exit_code == 0);
  CHECK(Stat(api.Stats(), "submissions") == 5);
  auto by_id = LinesById(job.Lines("metadata.jsonl"));
  REQUIRE(by_id.size() == 3);
  CHECK(by_id["b"].at("task_id").as_string() != old_task);
  CHECK(std::filesystem::exists(job.out + "/.previous/b.1.png"));
  CHECK(std::filesystem::exists(job.out + "/.previous/c.1.png"));
  CHECK_FALSE(std::filesystem::exists(job.out + "/.previous/a.1.png"));
  CHECK(std::filesystem::exists(job.out + "/b.png"));
  CHECK(job.Status().at("done") == 3);
  CHECK(job.Status().at("credits_spent") == 5 * 16);

  // Resuming without --redo pays nothing more.
  CHECK(job.Run().exit_code == 0);
  CHECK(Stat(api.Stats(), "submissions") == 5);
}

TEST_CASE("dataset: estimate and run --dry-run price what is left; nothing sent or written") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "10", "--processing-ms", "20"});
  Job job(dir, api,
          "{\"id\":\"a\",\"prompt\":\"a\"}\n"
          "{\"id\":\"b\",\"prompt\":\"b\"}\n");
  REQUIRE(job.Run().exit_code == 0);
  dir.Write("manifest.jsonl",
            "{\"id\":\"a\",\"prompt\":\"a\"}\n"
            "{\"id\":\"b\",\"prompt\":\"b\"}\n"
            "{\"id\":\"c\",\"prompt\":\"c\",\"resolution\":\"4K\"}\n"
            "{\"id\":\"d\",\"prompt\":\"d\",\"resolution\":\"2K\"}\n");
  const std::string journal_before = dir.Read("out/.nanobatch/journal.log");
  ProcessResult estimate =
      testing::RunProcess({kBinary, "estimate", "--config", job.config, "--manifest", job.manifest,
                           "--out", job.out, "--budget-credits", "50", "--json"});
  INFO(estimate.err);
  REQUIRE(estimate.exit_code == 0);
  const json::object figures = json::parse(estimate.out).as_object();
  CHECK(figures.at("items") == 4);
  CHECK(figures.at("done") == 2);
  CHECK(figures.at("to_submit") == 2);
  CHECK(figures.at("credits") == 36 + 24);
  CHECK(figures.at("usd").to_number<double>() == doctest::Approx(0.3));
  CHECK(figures.at("credits_spent") == 32);
  CHECK(figures.at("budget_needed") == 92);
  CHECK(figures.at("budget_enough") == false);

  ProcessResult dry = testing::RunProcess({kBinary, "run", "--dry-run", "--config", job.config,
                                           "--manifest", job.manifest, "--out", job.out});
  CHECK(dry.exit_code == 0);
  CHECK(dry.out.find("dry run: validated, nothing sent") != std::string::npos);
  CHECK(dry.out.find("to pay:   2 tasks, 60 credits ($0.30") != std::string::npos);
  CHECK(Stat(api.Stats(), "submissions") == 2);
  CHECK(dir.Read("out/.nanobatch/journal.log") == journal_before);

  // A new directory is not created; a bad manifest is exit 2 with its errors.
  ProcessResult fresh = testing::RunProcess(
      {kBinary, "run", "--dry-run", "--manifest", job.manifest, "--out", dir.File("new")});
  CHECK(fresh.exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(dir.File("new")));
  dir.Write("bad.jsonl", "{\"prompt\":\"x\",\"resolution\":\"8K\"}\n");
  ProcessResult bad = testing::RunProcess(
      {kBinary, "estimate", "--manifest", dir.File("bad.jsonl"), "--out", dir.File("new")});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("bad.jsonl:1: resolution") != std::string::npos);
}

// Quotes one argument for sh.
std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The longest stretch, in display columns, between two line starts (\r or \n) of a terminal
// transcript, escape sequences not counted.
std::size_t WidestLine(const std::string& transcript) {
  std::size_t widest = 0, columns = 0;
  for (std::size_t i = 0; i < transcript.size(); ++i) {
    const char c = transcript[i];
    if (c == '\r' || c == '\n') {
      columns = 0;
    } else if (c == '\033') {
      while (i < transcript.size() && !std::isalpha(static_cast<unsigned char>(transcript[i]))) ++i;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      widest = std::max(widest, ++columns);
    }
  }
  return widest;
}

TEST_CASE("dataset: on a terminal, a bar that never wraps, redrawn on resize, and a summary") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "200", "--processing-ms", "400", "--p-reset", "0.3"});
  std::string manifest;
  for (int i = 0; i < 30; ++i) {
    manifest +=
        "{\"id\":\"t" + std::to_string(i) + "\",\"prompt\":\"p " + std::to_string(i) + "\"}\n";
  }
  Job job(dir, api, manifest, "limits: {max_in_flight: 6, rate: 50}\n");
  std::string command;
  for (const std::string& arg : job.Args()) command += ShellQuote(arg) + " ";
  // A real terminal (script(1) gives the run a pseudo-terminal): 60 columns, then 40 once the
  // run is under way, with the SIGWINCH a terminal sends on a resize.
  const std::string shell = "stty cols 60; " + command + " & pid=$!; sleep 1.5; stty cols 40; " +
                            "kill -WINCH $pid; wait $pid";
  ProcessResult result =
      testing::RunProcess({"/usr/bin/script", "-q", "-e", "-c", shell, dir.File("transcript")},
                          {{"AIVIDEOAPI_API_KEY", "sk-test"}}, std::chrono::seconds(90));
  const std::string transcript = dir.Read("transcript");
  INFO(transcript);
  CHECK(result.exit_code == 0);
  // Bars before the resize fit 60 columns, and every one after the first narrower one fits 40
  // (only bar stretches, which start after an erase and hold a percentage, are measured).
  std::vector<std::size_t> widths;
  for (std::size_t at = transcript.find("\033[K"); at != std::string::npos;
       at = transcript.find("\033[K", at + 1)) {
    const std::size_t end = transcript.find_first_of("\r\n", at);
    const std::string bar =
        transcript.substr(at + 3, end == std::string::npos ? end : end - at - 3);
    if (bar.find('%') != std::string::npos) widths.push_back(WidestLine(bar));
  }
  const auto narrow =
      std::find_if(widths.begin(), widths.end(), [](std::size_t width) { return width < 40; });
  REQUIRE(narrow != widths.end());
  REQUIRE(narrow != widths.begin());  // some bars were drawn at 60 columns first
  CHECK(*std::max_element(widths.begin(), narrow) < 60);
  CHECK(*std::max_element(widths.begin(), narrow) > 40);
  CHECK(*std::max_element(narrow, widths.end()) < 40);
  CHECK(transcript.find("nanobatch run ended, exit 0") != std::string::npos);
  CHECK(transcript.find("done      30 of 30 items") != std::string::npos);
  // Transient retries are counted on the bar and in the summary, not logged one by one.
  CHECK(transcript.find("WARN item") == std::string::npos);
  CHECK(transcript.find("  retried   ") != std::string::npos);  // "N downloads retried"
  CHECK(transcript.find("downloads retried") != std::string::npos);
}

TEST_CASE("dataset: the gallery opens in headless Chromium with every image, filters and search") {
  TempDir dir;
  FakeApiProcess api(
      dir, {"--pending-ms", "10", "--processing-ms", "20", "--reject-substring", "forbidden"});
  std::string manifest;
  for (int i = 0; i < 12; ++i) {
    const bool rejected = i == 3 || i == 7;
    manifest += "{\"id\":\"g" + std::to_string(i) + "\",\"prompt\":\"" +
                (rejected ? "forbidden " : "") + (i % 2 ? "a cat " : "a dog ") + std::to_string(i) +
                "\",\"resolution\":\"" + (i < 8 ? "1K" : "2K") +
                "\",\"output_format\":\"png\",\"meta\":{\"label\":\"<b>x</b>\"}}\n";
  }
  Job job(dir, api, manifest);
  CHECK(job.Run().exit_code == 1);  // two items refused by the API
  ProcessResult gallery = testing::RunProcess({kBinary, "gallery", "--out", job.out});
  INFO(gallery.err);
  REQUIRE(gallery.exit_code == 0);
  CHECK(gallery.out.find("index.html: 10 images, 2 failed, 12 items") != std::string::npos);

  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  const std::string screenshot =
      (outputs != nullptr ? std::string(outputs) : dir.path()) + "/gallery.png";
  // Cats are the odd ids: 1 3 5 7 9 11, two of which (3, 7) failed.
  ProcessResult check = testing::RunProcess(
      {"/usr/bin/python3", "tools/gallery/gallery_check.py", job.out + "/index.html", "--images",
       "10", "--failed", "2", "--screenshot", screenshot, "--search", "a cat", "--search-cards",
       "6", "--resolution", "2K", "--resolution-images", "4"},
      {}, std::chrono::seconds(120));
  INFO(check.out);
  INFO(check.err);
  CHECK(check.exit_code == 0);
  CHECK(check.out.find("\"console\": []") != std::string::npos);
  REQUIRE(std::filesystem::exists(screenshot));
  CHECK(std::filesystem::file_size(screenshot) > 10000);
}

TEST_CASE("dataset: images sharded into numbered directories, resumed, redone and checked there") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "10", "--processing-ms", "20"});
  std::string manifest;
  for (int i = 0; i < 10; ++i) {
    manifest += "{\"id\":\"s" + std::to_string(i) + "\",\"prompt\":\"p" + std::to_string(i) +
                "\",\"output_format\":\"png\"}\n";
  }
  Job job(dir, api, manifest, "output: {shard_size: 4}\n");
  ProcessResult result = job.Run();
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  auto by_id = LinesById(job.Lines("metadata.jsonl"));
  REQUIRE(by_id.size() == 10);
  CHECK(by_id["s0"].at("file_name") == "00000/s0.png");
  CHECK(by_id["s5"].at("file_name") == "00001/s5.png");
  CHECK(by_id["s9"].at("file_name") == "00002/s9.png");
  for (const auto& [id, line] : by_id) {
    CHECK(std::filesystem::exists(job.out + "/" + std::string(line.at("file_name").as_string())));
  }
  CHECK_FALSE(std::filesystem::exists(job.out + "/s0.png"));

  // A deleted image is fetched again into its directory, not paid again; --verify-images reads
  // them through their directories.
  std::filesystem::remove(job.out + "/00001/s5.png");
  result = job.Run({"--verify-images"});
  CHECK(result.exit_code == 0);
  CHECK(std::filesystem::exists(job.out + "/00001/s5.png"));
  CHECK(Stat(api.Stats(), "submissions") == 10);

  // Redone: the old image leaves its directory for .previous/.
  result = job.Run({"--redo", "s9"});
  CHECK(result.exit_code == 0);
  CHECK(std::filesystem::exists(job.out + "/.previous/s9.1.png"));
  CHECK(std::filesystem::exists(job.out + "/00002/s9.png"));
  CHECK(Stat(api.Stats(), "submissions") == 11);

  ProcessResult gallery = testing::RunProcess({kBinary, "gallery", "--out", job.out});
  CHECK(gallery.out.find("10 images") != std::string::npos);
  CHECK(dir.Read("out/index.html").find("00002/s9.png") != std::string::npos);
}

// The syncs a run made, counted by tools/bench's LD_PRELOAD shim (every sync made `delay_ms`
// slow, so that images finish while a sync is on the disk).
json::object RunCountingSyncs(TempDir& dir, const Job& job, const std::string& tag, int delay_ms) {
  const std::string counts = dir.File(tag + ".syncs.json");
  ProcessResult result = testing::RunProcess(
      job.Args(), {{"AIVIDEOAPI_API_KEY", job.key},
                   {"LD_PRELOAD", std::filesystem::absolute("tools/bench/libslow_sync.so")},
                   {"NB_SYNC_DELAY_MS", std::to_string(delay_ms)},
                   {"NB_SYNC_COUNT_FILE", counts},
                   // Under ASan its runtime must come first; the shim only wraps three calls.
                   {"ASAN_OPTIONS", "verify_asan_link_order=0"}});
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  return json::parse(dir.Read(tag + ".syncs.json")).as_object();
}

TEST_CASE("dataset: images made durable together (output.image_sync) or one fsync each") {
  TempDir dir;
  FakeApiProcess api(dir, {"--pending-ms", "10", "--processing-ms", "20"});
  constexpr int kItems = 24;
  std::string manifest;
  for (int i = 0; i < kItems; ++i) {
    manifest += "{\"id\":\"i" + std::to_string(i) + "\",\"prompt\":\"p" + std::to_string(i) +
                "\",\"output_format\":\"png\"}\n";
  }
  // auto, the default, takes a syncfs or an fsync each group by how much data of other programs
  // waits to be written back, which this test does not control: its outputs are checked, and
  // its choice in file_syncs_test.
  for (const char* mode : {"syncfs", "fsync", "auto"}) {
    INFO(mode);
    Job job(dir, api, manifest,
            std::string("limits: {max_downloads: 8}\noutput: {image_sync: ") + mode + "}\n");
    job.out = dir.File(std::string("out-") + mode);
    const json::object syncs = RunCountingSyncs(dir, job, mode, 30);
    auto by_id = LinesById(job.Lines("metadata.jsonl"));
    CHECK(by_id.size() == kItems);
    // Every image is whole and is what its record says.
    CHECK(job.Run({"--verify-images"}).exit_code == 0);
    std::filesystem::create_directories(job.out);
    const int out_fd = ::open(job.out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    // syncfs is taken only where the output filesystem qualifies (MethodFor says which).
    const bool grouped = std::string(mode) == "syncfs" &&
                         disk::FileSyncs::MethodFor(out_fd) != disk::FileSyncs::Method::kEachFile;
    ::close(out_fd);
    if (std::string(mode) == "auto") continue;
    if (grouped) {
      // Images that finished while a sync was on the disk shared the next one.
      CHECK(Stat(syncs, "syncfs") >= 1);
      CHECK(Stat(syncs, "syncfs") < kItems);
    } else {
      CHECK(Stat(syncs, "syncfs") == 0);
      CHECK(Stat(syncs, "fsync") >= kItems);  // each image's own, and the directory's
    }
  }
}

TEST_CASE("dataset: export --format webdataset writes tar shards of image + json samples") {
  TempDir dir;
  FakeApiProcess api(dir,
                     {"--pending-ms", "10", "--processing-ms", "20", "--images-per-task", "2"});
  Job job(
      dir, api,
      "{\"id\":\"a.b\",\"prompt\":\"a\",\"output_format\":\"png\",\"meta\":{\"split\":\"train\"}}\n"
      "{\"id\":\"c\",\"prompt\":\"c\",\"output_format\":\"jpg\"}\n"
      "{\"id\":\"d\",\"prompt\":\"d\",\"output_format\":\"png\"}\n");
  REQUIRE(job.Run().exit_code == 0);
  const std::string to = dir.File("shards");
  ProcessResult exported =
      testing::RunProcess({kBinary, "export", "--out", job.out, "--format", "webdataset", "--to",
                           to, "--samples-per-shard", "4"});
  INFO(exported.err);
  REQUIRE(exported.exit_code == 0);
  CHECK(exported.out.find("6 samples in 2 shards") != std::string::npos);
  ProcessResult listing = testing::RunProcess({"/bin/tar", "-tf", to + "/shard-000000.tar"});
  CHECK(listing.out ==
        "000000000.png\n000000000.json\n000000001.png\n000000001.json\n000000002.jpg\n"
        "000000002.json\n000000003.jpg\n000000003.json\n");
  ProcessResult second = testing::RunProcess({"/bin/tar", "-tf", to + "/shard-000001.tar"});
  CHECK(second.out == "000000004.png\n000000004.json\n000000005.png\n000000005.json\n");
  // A sample's json is its metadata line with its key; the image is byte for byte the file.
  ProcessResult json_text =
      testing::RunProcess({"/bin/tar", "-xOf", to + "/shard-000000.tar", "000000001.json"});
  const json::object sample = json::parse(json_text.out).as_object();
  CHECK(sample.at("key") == "000000001");
  CHECK(sample.at("id") == "a.b");
  CHECK(sample.at("image_index") == 1);
  CHECK(sample.at("split") == "train");
  const std::string extracted = dir.File("x");
  std::filesystem::create_directory(extracted);
  CHECK(testing::RunProcess({"/bin/tar", "-xf", to + "/shard-000000.tar", "-C", extracted})
            .exit_code == 0);
  CHECK(dir.Read("x/000000001.png") ==
        dir.Read("out/" + std::string(sample.at("file_name").as_string())));
  // No temporary left; a missing image is left out, said, and exit 1.
  CHECK_FALSE(std::filesystem::exists(to + "/.shard-000000.tar.tmp"));
  std::filesystem::remove(job.out + "/d.png");
  ProcessResult partial =
      testing::RunProcess({kBinary, "export", "--out", job.out, "--to", dir.File("shards2")});
  CHECK(partial.exit_code == 1);
  CHECK(partial.out.find("5 samples in 1 shard ") != std::string::npos);
  CHECK(partial.err.find("1 image is missing or changed on disk") != std::string::npos);
  // Exported again into the first directory, in fewer shards: the earlier export's shard-000001
  // goes (a loader globbing shard-*.tar read its samples twice); other names stay.
  dir.Write("shards/notes.txt", "mine");
  dir.Write("shards/shard-1.tar", "not a name export writes");
  ProcessResult again = testing::RunProcess({kBinary, "export", job.out, "--to", to});
  CHECK(again.out.find("5 samples in 1 shard ") != std::string::npos);
  CHECK(std::filesystem::exists(to + "/shard-000000.tar"));
  CHECK_FALSE(std::filesystem::exists(to + "/shard-000001.tar"));
  CHECK(std::filesystem::exists(to + "/notes.txt"));
  CHECK(std::filesystem::exists(to + "/shard-1.tar"));
  CHECK(
      testing::RunProcess({kBinary, "export", "--out", job.out, "--format", "parquet", "--to", to})
          .exit_code == 2);
  // Never into the dataset itself or its state; a count that is no positive whole number is
  // refused (CLI11 read "-5" as 2^64 - 5).
  for (const std::string& into : {job.out, job.out + "/", job.out + "/.nanobatch/x"}) {
    CAPTURE(into);
    const ProcessResult refused =
        testing::RunProcess({kBinary, "export", "--out", job.out, "--to", into});
    CHECK(refused.exit_code == 2);
    CHECK(refused.err.find("is the run's output directory or its state") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(job.out + "/shard-000000.tar"));
  for (const char* count : {"0", "-5", "1e3", "x"}) {
    CAPTURE(count);
    const ProcessResult refused =
        testing::RunProcess({kBinary, "export", "--out", job.out, "--to", dir.File("s3"),
                             "--samples-per-shard", count});
    CHECK(refused.exit_code == 2);
    CHECK(refused.err.find("--samples-per-shard must be a whole number from 1 to") !=
          std::string::npos);
  }
  CHECK(testing::RunProcess({kBinary, "export", "--out", job.out, "--to", job.out + "/shards",
                             "--samples-per-shard", "2"})
            .exit_code == 1);  // a subdirectory is fine (exit 1: the image removed above)
}

}  // namespace
}  // namespace nanobatch::engine
