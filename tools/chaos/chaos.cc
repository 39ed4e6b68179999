#include "tools/chaos/chaos.h"

#include <signal.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "runner/download/image_file.h"
#include "runner/testing/fake_api_process.h"
#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::chaos {
namespace {

namespace json = boost::json;
constexpr const char* kBinary = testing::kNanobatchBinary;

}  // namespace

std::string ChaosReport::Summary() const {
  std::ostringstream out;
  out << "chaos: " << kills << " SIGKILLs, " << restarts << " runs, " << seconds << " s\n"
      << "  items done:                      " << items_done << "\n"
      << "  images checked against server:   " << images_checked << "\n"
      << "  server submissions:              " << server_submissions << "\n"
      << "  server duplicate submissions:    " << server_duplicate_submissions << "\n"
      << "  reported possible duplicates:    " << reported_possible_duplicates << "\n"
      << "  credits charged / budget:        " << credits_charged << " / " << budget << "\n"
      << "  verdict: " << (ok ? "OK" : "FAILED") << "\n";
  for (const std::string& failure : failures) out << "  broken: " << failure << "\n";
  return out.str();
}

ChaosReport RunChaos(const ChaosOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  ChaosReport report;
  testing::TempDir temp;
  const std::string work = options.work_dir.empty() ? temp.path() : options.work_dir;
  std::filesystem::create_directories(work);
  testing::TempDir& dir = temp;

  // Tasks take 0.2-1 s, so kills land in every phase: intents, polls, downloads.
  testing::FakeApiProcess api(
      dir, {"--pending-ms", "200", "--processing-ms", "400", "--latency-jitter", "0.5",
            "--images-per-task", "1", "--seed", std::to_string(options.seed)});
  std::string manifest;
  std::int64_t cost = 0;
  static const char* kResolutions[] = {"1K", "2K", "4K"};
  static const int kPrices[] = {16, 24, 36};
  for (int i = 0; i < options.items; ++i) {
    manifest += "{\"id\":\"c" + std::to_string(i) + "\",\"prompt\":\"chaos prompt " +
                std::to_string(i) + "\",\"resolution\":\"" + kResolutions[i % 3] +
                "\",\"output_format\":\"" + (i % 2 ? "png" : "jpg") + "\"}\n";
    cost += kPrices[i % 3];
  }
  // Room for the possible duplicates that kills can cause, and no more.
  report.budget = cost + std::int64_t{36} * 4 * (options.kills + 1);
  const std::string manifest_path = work + "/manifest.jsonl";
  std::ofstream(manifest_path) << manifest;
  const std::string config = work + "/config.yaml";
  std::ofstream(config) << "polling: {first_poll_s: 0.2, max_interval_s: 0.5}\n"
                           "retry: {base_delay_s: 0.02, max_delay_s: 0.2}\n"
                           "limits: {rate: 60, burst: 10, max_in_flight: 64}\n"
                           "log: {progress_interval_s: 60}\n";
  const std::string out = work + "/out";
  std::vector<std::string> args = api.RunnerArgs(config, manifest_path, out);
  args.insert(args.end(), {"--budget-credits", std::to_string(report.budget)});
  const std::map<std::string, std::string> env = {{"AIVIDEOAPI_API_KEY", "sk-test"}};

  std::mt19937_64 random(options.seed);
  std::uniform_int_distribution<int> kill_after(options.min_kill_ms, options.max_kill_ms);
  int final_code = -1;
  // Bounded: `kills` killed runs, then at most 5 runs to the end.
  for (int run = 0; run < options.kills + 5; ++run) {
    testing::BackgroundProcess runner(args, env, work + "/runs.log");
    ++report.restarts;
    if (report.kills < options.kills) {
      const int code = runner.Wait(std::chrono::milliseconds(kill_after(random)));
      if (code >= 0) {  // it finished before the kill: the job is done
        final_code = code;
        break;
      }
      runner.Signal(SIGKILL);
      runner.Wait(std::chrono::seconds(10));
      ++report.kills;
      continue;
    }
    final_code = runner.Wait(std::chrono::seconds(300));
    if (final_code != 3) break;  // 3 (resumable) only if something transient stopped it
  }
  if (final_code != 0) {
    report.failures.push_back("the last run exited " + std::to_string(final_code) + ", not 0");
  }

  // The server's view.
  json::object stats = api.Stats(/*detail=*/true);
  report.server_submissions = stats.at("submissions").as_int64();
  report.server_duplicate_submissions = stats.at("duplicate_prompt_submissions").as_int64();
  report.credits_charged = stats.at("credits_charged").as_int64();
  const json::object& served = stats.at("image_sha256").as_object();

  // The runner's view.
  testing::ProcessResult status = testing::RunProcess({kBinary, "status", "--out", out, "--json"});
  if (status.exit_code == 0) {
    json::object s = json::parse(status.out).as_object();
    report.items_done = s.at("done").as_int64();
    report.reported_possible_duplicates = s.at("possible_duplicate_submissions").as_int64();
  } else {
    report.failures.push_back("status failed: " + status.err);
  }

  // Every item: exactly one image, byte-identical to something the server served.
  std::map<std::string, int> images_per_item;
  std::ifstream metadata(out + "/metadata.jsonl");
  std::string line;
  std::set<std::string> served_hashes;
  for (const auto& [path, sha] : served) served_hashes.insert(std::string(sha.as_string()));
  while (std::getline(metadata, line)) {
    json::object entry = json::parse(line).as_object();
    const std::string file = out + "/" + std::string(entry.at("file_name").as_string());
    const std::string sha = download::FileSha256(file);
    ++images_per_item[std::string(entry.at("id").as_string())];
    ++report.images_checked;
    if (sha != entry.at("sha256").as_string())
      report.failures.push_back(file + ": hash differs from metadata");
    if (served_hashes.count(sha) == 0)
      report.failures.push_back(file + ": not what the server served");
  }
  for (int i = 0; i < options.items; ++i) {
    const int count = images_per_item["c" + std::to_string(i)];
    if (count != 1) {
      report.failures.push_back("item c" + std::to_string(i) + " has " + std::to_string(count) +
                                " images");
    }
  }
  for (const auto& entry : std::filesystem::recursive_directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".part") != std::string::npos || name.ends_with(".tmp")) {
      report.failures.push_back("temporary file left: " + entry.path().string());
    }
  }
  if (report.credits_charged > report.budget)
    report.failures.push_back("credits charged exceed the budget");
  if (report.server_duplicate_submissions > report.reported_possible_duplicates) {
    report.failures.push_back("the server saw more duplicate submissions (" +
                              std::to_string(report.server_duplicate_submissions) +
                              ") than intents in flight at kills (" +
                              std::to_string(report.reported_possible_duplicates) + ")");
  }
  report.ok = report.failures.empty();
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace nanobatch::chaos
