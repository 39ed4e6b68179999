#include "runner/testing/runner_job.h"

#include <boost/json/parse.hpp>
#include <fstream>
#include <stdexcept>

namespace nanobatch::testing {

RunnerJob::RunnerJob(TempDir& d, FakeApiProcess& a, const std::string& manifest_text,
                     const std::string& config_text, std::string api_key)
    : dir(d), api(a), key(std::move(api_key)) {
  manifest = dir.Write("manifest.jsonl", manifest_text);
  out = dir.File("out");
  config = dir.Write("config.yaml", config_text);
}

std::vector<std::string> RunnerJob::Args(const std::vector<std::string>& extra) const {
  std::vector<std::string> args = api.RunnerArgs(config, manifest, out);
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

ProcessResult RunnerJob::Run(const std::vector<std::string>& extra,
                             const std::string& other_key) const {
  return RunProcess(Args(extra), {{"AIVIDEOAPI_API_KEY", other_key.empty() ? key : other_key}},
                    std::chrono::seconds(120));
}

boost::json::object RunnerJob::Status() const {
  ProcessResult r = RunProcess({kNanobatchBinary, "status", "--out", out, "--json"});
  if (r.exit_code != 0) throw std::runtime_error("status failed: " + r.err);
  return boost::json::parse(r.out).as_object();
}

std::vector<boost::json::object> RunnerJob::Lines(const std::string& name) const {
  std::vector<boost::json::object> lines;
  std::ifstream in(out + "/" + name);
  std::string line;
  while (std::getline(in, line)) lines.push_back(boost::json::parse(line).as_object());
  return lines;
}

}  // namespace nanobatch::testing
