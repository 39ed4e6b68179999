#include "runner/testing/fake_api_process.h"

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace nanobatch::testing {

FakeApiProcess::FakeApiProcess(const TempDir& dir, const std::vector<std::string>& extra_args,
                               const std::string& certificate) {
  const std::string certs = dir.File("certs");
  ProcessResult made = RunProcess({"/bin/bash", kMakeTestCerts, certs});
  if (made.exit_code != 0) throw std::runtime_error("make_test_certs failed: " + made.err);
  ca_file_ = certs + "/ca.pem";

  // A simulator started before in the same directory (ended since) left its ports there: the
  // file is this one's only once this one wrote it.
  const std::string port_file = dir.File("fake_api_ports.json");
  std::filesystem::remove(port_file);
  std::vector<std::string> argv = {kFakeApiBinary,
                                   "--cert",
                                   certs + "/" + certificate + ".pem",
                                   "--key",
                                   certs + "/" + certificate + ".key",
                                   "--port",
                                   "0",
                                   "--file-port",
                                   "0",
                                   "--port-file",
                                   port_file};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<BackgroundProcess>(argv, std::map<std::string, std::string>{},
                                                 dir.File("fake_api.log"));
  if (!WaitForFile(port_file, std::chrono::seconds(20))) {
    throw std::runtime_error("fake_api did not start; see " + dir.File("fake_api.log"));
  }
  std::ifstream in(port_file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const boost::json::object ports = boost::json::parse(text).as_object();
  api_port_ = static_cast<int>(ports.at("api_port").as_int64());
  file_port_ = static_cast<int>(ports.at("file_port").as_int64());
}

std::string FakeApiProcess::base_url() const {
  return "https://127.0.0.1:" + std::to_string(api_port_);
}

std::vector<std::string> FakeApiProcess::RunnerArgs(const std::string& config,
                                                    const std::string& manifest,
                                                    const std::string& out) const {
  return {kNanobatchBinary, "run", "--config", config, "--manifest", manifest, "--out", out,
          "--base-url", base_url(), "--ca-file", ca_file(), "--allow-download-host",
          "localhost:" + std::to_string(file_port_),
          // The simulator is on loopback, which downloads reach only when allowed.
          "--allow-download-network", "127.0.0.0/8", "--allow-download-network", "::1/128"};
}

ProcessResult FakeApiProcess::Curl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "20", "--cacert", ca_file_};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

boost::json::object FakeApiProcess::Stats(bool detail) const {
  ProcessResult result = Curl({base_url() + (detail ? "/_stats?detail=1" : "/_stats")});
  if (result.exit_code != 0) throw std::runtime_error("cannot read /_stats: " + result.err);
  return boost::json::parse(result.out).as_object();
}

}  // namespace nanobatch::testing
