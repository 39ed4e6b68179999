// Journal costs: appends with group commit, then resume. First, records appended and made
// durable in groups, each group one write + fdatasync (Journal::Sync: what the engine's
// GroupCommit runs on a disk worker), against one fdatasync per record, on DIR's disk. Then
// RECORDS records (items going intent -> submitted -> completed -> downloaded, four records
// each, then finalized as the engine does: a fifth, the item's whole snapshot), and what a
// restart pays: Journal::Open (read, CRC check, parse, replay) in CPU and wall seconds, and a
// compaction. Peak RSS: run it under /usr/bin/time -v. It links the allocator nanobatch itself
// runs with (mimalloc): with glibc's, the same resume took half as long again (0.56 s against
// 0.37 s, medians of 6 alternating runs), a figure of a program nobody runs.
//
//   bazel run -c opt //tools/bench:journal_bench -- [RECORDS] [DIR] [keep|leave]
//
// "keep" reuses (and keeps) a journal left by an earlier run, for profiling the resume; "leave"
// leaves the journal as written, before compaction, in DIR/nanobatch-journal-bench-resume/, an
// output directory for timing the real binary's resume on it (`nanobatch status --out ...`).

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "runner/journal/journal.h"

namespace {

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

nanobatch::proto::Record IntentRecord(long i) {
  nanobatch::proto::Record r;
  auto* intent = r.mutable_submit_intent();
  intent->set_item_id("item-" + std::to_string(i));
  intent->set_attempt(1);
  intent->set_credits(16);
  intent->set_content_hash("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0");
  intent->set_prompt("a photorealistic portrait of a lighthouse keeper number " +
                     std::to_string(i));
  intent->set_resolution("1K");
  intent->set_aspect_ratio("auto");
  intent->set_output_format("png");
  return r;
}

// Appends `count` intents to a fresh journal in `dir`, durable `group` at a time; records/s
// (wall: the fdatasyncs are waits on the disk), or a negative number on failure.
double DurableAppendsPerSecond(const std::string& dir, long count, long group) {
  using nanobatch::journal::Journal;
  std::filesystem::remove_all(dir);
  std::string error;
  auto journal = Journal::Open(dir, {}, error);
  if (!journal) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return -1;
  }
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < count; ++i) {
    journal->Append(IntentRecord(i));
    if ((i + 1) % group == 0 && !journal->Sync(error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return -1;
    }
  }
  if (!journal->Sync(error)) return -1;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  journal.reset();
  std::filesystem::remove_all(dir);
  return static_cast<double>(count) / wall;
}

}  // namespace

int main(int argc, char** argv) {
  using nanobatch::journal::Journal;
  const long records = argc > 1 ? std::atol(argv[1]) : 1'000'000;
  const std::string dir =
      (argc > 2 ? std::string(argv[2]) : std::string("/tmp")) + "/nanobatch-journal-bench";
  // "keep" as a third argument reuses a journal left by an earlier run (for profiling the resume).
  const bool reuse = argc > 3 && std::string(argv[3]) == "keep" &&
                     std::filesystem::exists(dir + "/.nanobatch/journal.log");
  if (!reuse) std::filesystem::remove_all(dir);
  std::string error;
  if (!reuse) {
    // A busy run fills a group of 32 (Recorder::kFullGroup) with every commit; a quiet one
    // commits whatever 25 ms gathered. One record per sync is what grouping saves.
    const double grouped = DurableAppendsPerSecond(dir + "-appends", 32'000, 32);
    const double single = DurableAppendsPerSecond(dir + "-appends", 1'000, 1);
    if (grouped < 0 || single < 0) return 1;
    std::printf("journal_bench: appends made durable, on %s's disk\n",
                std::filesystem::path(dir).parent_path().c_str());
    std::printf("  group commit, 32 records per write + fdatasync: %.0f records/s\n", grouped);
    std::printf("  one fdatasync per record: %.0f records/s (group commit: %.1fx as many)\n",
                single, grouped / single);
  }
  if (!reuse) {
    auto journal = Journal::Open(dir, {}, error);
    if (!journal) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    for (long i = 0; i < records / 4; ++i) {
      const std::string id = "item-" + std::to_string(i);
      nanobatch::proto::Record r = IntentRecord(i);
      journal->Append(r);
      r.Clear();
      r.mutable_submitted()->set_item_id(id);
      r.mutable_submitted()->set_task_id("397ce9f2-0000-4000-8000-" +
                                         std::to_string(100000000000 + i));
      r.mutable_submitted()->set_credits(16);
      journal->Append(r);
      r.Clear();
      r.mutable_completed()->set_item_id(id);
      r.mutable_completed()->add_urls("https://file.aivideoapi.ai/images/2026/04/05/" + id +
                                      ".png");
      journal->Append(r);
      r.Clear();
      auto* downloaded = r.mutable_downloaded();
      downloaded->set_item_id(id);
      downloaded->set_file_name(id + ".png");
      downloaded->set_sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
      downloaded->set_bytes(1234567);
      journal->Append(r);
      journal->Finalize(id);  // done: its snapshot is written, the state keeps it compact
      if (i % 2500 == 0 && !journal->Sync(error)) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
      }
    }
    if (!journal->Sync(error)) return 1;
  }
  const auto size = std::filesystem::file_size(dir + "/.nanobatch/journal.log");

  const double cpu0 = CpuSeconds();
  const auto wall0 = std::chrono::steady_clock::now();
  auto journal = Journal::Open(dir, {}, error);
  const double open_wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const double open_cpu = CpuSeconds() - cpu0;
  if (!journal) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  if (argc > 3 && std::string(argv[3]) == "leave") {
    // A hard link keeps the file as written: compaction renames a new file into its place.
    const std::string left = dir + "-resume/.nanobatch";
    std::filesystem::remove_all(dir + "-resume");
    std::filesystem::create_directories(left);
    std::filesystem::permissions(left, std::filesystem::perms::owner_all);
    std::error_code failed;
    std::filesystem::create_hard_link(dir + "/.nanobatch/journal.log", left + "/journal.log",
                                      failed);
    if (failed) {
      std::fprintf(stderr, "linking the journal into %s: %s\n", left.c_str(),
                   failed.message().c_str());
      return 1;
    }
    std::printf("journal_bench: the journal as written is left in %s-resume\n", dir.c_str());
  }
  const auto wall1 = std::chrono::steady_clock::now();
  if (!reuse && !journal->Compact(error)) return 1;
  const double compact_wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall1).count();
  const auto compacted = std::filesystem::file_size(dir + "/.nanobatch/journal.log");

  std::printf("journal_bench: %llu records (%zu items), %.1f MB\n",
              static_cast<unsigned long long>(journal->recovery().records), journal->state().size(),
              size / 1e6);
  std::printf("  resume (open + replay): %.3f s CPU, %.3f s wall\n", open_cpu, open_wall);
  std::printf("  compaction: %.3f s wall, %.1f MB -> %.1f MB\n", compact_wall, size / 1e6,
              compacted / 1e6);
  journal.reset();
  if (!(argc > 3 && std::string(argv[3]) == "keep")) std::filesystem::remove_all(dir);
  return 0;
}
