#include "runner/serve/spool.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <map>

#include "runner/testing/temp_dir.h"

namespace nanobatch::serve {
namespace {

using testing::TempDir;

bool Exists(const std::string& path) {
  struct stat info;
  return ::lstat(path.c_str(), &info) == 0;
}

TEST_CASE("spool: layout created, one daemon per spool") {
  TempDir dir;
  std::string error;
  auto spool = Spool::Open(dir.File("spool"), error);
  REQUIRE(spool);
  for (const char* sub : {"inbox", "jobs", "done", "failed", ".nanobatch/lock"}) {
    CHECK(Exists(dir.File("spool/") + sub));
  }
  CHECK_FALSE(Spool::Open(dir.File("spool"), error));
  CHECK(error.find("another nanobatch serve") != std::string::npos);
  spool.reset();
  CHECK(Spool::Open(dir.File("spool"), error));
}

TEST_CASE("spool: job names are the id charset") {
  CHECK(Spool::IsJobName("cats-2026.v1_a"));
  CHECK_FALSE(Spool::IsJobName(""));
  CHECK_FALSE(Spool::IsJobName(".hidden"));
  CHECK_FALSE(Spool::IsJobName("a/b"));
  CHECK_FALSE(Spool::IsJobName(".."));
  CHECK_FALSE(Spool::IsJobName("with space"));
  CHECK_FALSE(Spool::IsJobName(std::string(129, 'a')));
}

TEST_CASE("spool: inbox scans take stable manifests in arrival order; the rest is left alone") {
  TempDir dir;
  std::string error;
  auto spool = Spool::Open(dir.File("spool"), error);
  REQUIRE(spool);
  dir.Write("spool/inbox/b.jsonl", "{\"prompt\":\"b\"}\n");
  usleep(20'000);
  dir.Write("spool/inbox/a.yaml", "- prompt: a\n");
  dir.Write("spool/inbox/.partial.jsonl", "{\"pro");
  dir.Write("spool/inbox/notes.txt", "hello");
  dir.Write("spool/inbox/bad name.jsonl", "{}");
  std::vector<std::string> ignored;
  // First sight: nothing is taken (a file still growing must be seen unchanged twice).
  CHECK(spool->ScanInbox(&ignored).empty());
  CHECK(ignored.size() == 2);
  auto ready = spool->ScanInbox(&ignored);
  CHECK(ignored.size() == 2);  // reported once
  REQUIRE(ready.size() == 2);
  CHECK(ready[0].name == "b");
  CHECK(ready[1].name == "a");
  CHECK(ready[1].extension == "yaml");
  // A file that changed between scans waits again.
  dir.Write("spool/inbox/b.jsonl", "{\"prompt\":\"b\"}\n{\"prompt\":\"b2\"}\n");
  ready = spool->ScanInbox();
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].name == "a");
  CHECK(spool->InInbox("b"));
  CHECK_FALSE(spool->InInbox("zzz"));
}

TEST_CASE("spool: claim, active after a restart, finish with its summary") {
  TempDir dir;
  std::string error;
  auto spool = Spool::Open(dir.File("spool"), error);
  REQUIRE(spool);
  dir.Write("spool/inbox/job1.jsonl", "{\"prompt\":\"x\"}\n");
  spool->ScanInbox();
  auto ready = spool->ScanInbox();
  REQUIRE(ready.size() == 1);
  auto manifest = spool->Claim(ready[0], error);
  REQUIRE(manifest);
  CHECK(*manifest == dir.File("spool/jobs/job1/.nanobatch/manifest.jsonl"));
  CHECK_FALSE(Exists(dir.File("spool/inbox/job1.jsonl")));
  spool.reset();

  spool = Spool::Open(dir.File("spool"), error);
  REQUIRE(spool);
  auto active = spool->ScanActive(error);
  REQUIRE(active.size() == 1);
  CHECK(active[0].name == "job1");
  CHECK(active[0].manifest == *manifest);

  REQUIRE(spool->Finish("job1", *manifest, /*done=*/false, "{\"exit_code\":1}\n", error));
  CHECK(dir.Read("spool/failed/job1.summary.json") == "{\"exit_code\":1}\n");
  CHECK(Exists(dir.File("spool/failed/job1.jsonl")));
  CHECK(spool->ScanActive(error).empty());
  auto finished = spool->ScanFinished();
  REQUIRE(finished.size() == 1);
  CHECK_FALSE(finished[0].done);
  CHECK(finished[0].exit_code == 1);
  CHECK_FALSE(finished[0].cancelled);
}

TEST_CASE("spool: a finished job's exit code and cancel come back from its summary, if sane") {
  TempDir dir;
  std::string error;
  auto spool = Spool::Open(dir.File("spool"), error);
  REQUIRE(spool);
  dir.Write("spool/done/ok.summary.json", "{\"exit_code\":0}\n");
  dir.Write("spool/failed/stopped.summary.json", "{\"exit_code\":3,\"cancelled\":true}\n");
  dir.Write("spool/failed/queued.summary.json", "{\"cancelled\":true}\n");
  dir.Write("spool/failed/junk.summary.json", "not json");
  dir.Write("spool/failed/odd.summary.json", "{\"exit_code\":-7,\"cancelled\":\"yes\"}");
  dir.Write("spool/failed/huge.summary.json",
            "{\"exit_code\":1,\"pad\":\"" + std::string(2 << 20, 'x') + "\"}");
  REQUIRE(::mkfifo(dir.File("spool/failed/fifo.summary.json").c_str(), 0600) == 0);
  std::map<std::string, FinishedJob> by_name;
  for (FinishedJob& job : spool->ScanFinished()) by_name[job.name] = job;  // and no hang
  REQUIRE(by_name.size() == 7);
  CHECK(by_name["ok"].exit_code == 0);
  CHECK(by_name["stopped"].exit_code == 3);
  CHECK(by_name["stopped"].cancelled);
  CHECK(by_name["queued"].exit_code == -1);
  CHECK(by_name["queued"].cancelled);
  for (const char* silent : {"junk", "odd", "huge", "fifo"}) {
    CAPTURE(silent);
    CHECK(by_name[silent].exit_code == -1);
    CHECK_FALSE(by_name[silent].cancelled);
  }
}

TEST_CASE("spool: what finished jobs spent survives a restart; a damaged record stops serve") {
  TempDir dir;
  std::string error;
  {
    auto spool = Spool::Open(dir.File("spool"), error);
    REQUIRE(spool);
    REQUIRE(spool->RecordFinishedCredits("a", 48, error));
    REQUIRE(spool->RecordFinishedCredits("b", 16, error));
    REQUIRE(spool->RecordFinishedCredits("a", 64, error));  // the journal's latest total
  }
  {
    auto spool = Spool::Open(dir.File("spool"), error);
    REQUIRE(spool);
    CHECK(spool->finished_credits().at("a") == 64);
    CHECK(spool->finished_credits().at("b") == 16);
  }
  dir.Write("spool/.nanobatch/credits.json", "[1,2");
  CHECK_FALSE(Spool::Open(dir.File("spool"), error));
  CHECK(error.find("credits.json") != std::string::npos);
}

TEST_CASE("spool: uploads are staged under a dot name, then published") {
  TempDir dir;
  std::string error;
  auto spool = Spool::Open(dir.File("spool"), error);
  REQUIRE(spool);
  REQUIRE(spool->StageUpload("up", "{\"prompt\":\"p\"}\n", error));
  CHECK(spool->ScanInbox().empty());
  REQUIRE(spool->PublishUpload("up", error));
  auto ready = spool->ScanInbox();  // ours, whole: no stability wait
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].name == "up");
  REQUIRE(spool->StageUpload("gone", "x", error));
  spool->DiscardUpload("gone");
  CHECK_FALSE(Exists(dir.File("spool/inbox/.gone.upload.jsonl")));
}

}  // namespace
}  // namespace nanobatch::serve
