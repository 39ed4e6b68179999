#pragma once
// FakeApiProcess: the project's API simulator (tools/fake_api) started as a real process on
// loopback port 0 with throwaway test certificates, for integration tests. The destructor ends
// it by PID.
//
// Example:
//   TempDir dir;
//   FakeApiProcess api(dir, {"--pending-ms", "10"});
//   RunProcess({"runner/nanobatch", "run", "--base-url", api.base_url(), "--ca-file",
//               api.ca_file(), ...});
//   CHECK(api.Stats().at("submissions").as_int64() == 3);

#include <boost/json/object.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runner/testing/subprocess.h"
#include "runner/testing/temp_dir.h"

namespace nanobatch::testing {

// Runfiles-relative paths of what FakeApiProcess needs; a test lists both in its `data`.
inline constexpr const char* kFakeApiBinary = "tools/fake_api/fake_api";
inline constexpr const char* kMakeTestCerts = "tools/fake_api/make_test_certs.sh";
// The runner, for tests that list //runner:nanobatch in their `data`.
inline constexpr const char* kNanobatchBinary = "runner/nanobatch";

class FakeApiProcess {
 public:
  // Starts the simulator with a file host on a second port; `extra_args` are fake_api flags.
  // `certificate` picks the server certificate make_test_certs.sh made: "server" (valid for
  // 127.0.0.1 and localhost), "expired" or "wronghost" (for other.invalid only).
  FakeApiProcess(const TempDir& dir, const std::vector<std::string>& extra_args = {},
                 const std::string& certificate = "server");

  const std::string& ca_file() const { return ca_file_; }
  int api_port() const { return api_port_; }
  int file_port() const { return file_port_; }
  // https://127.0.0.1:<api_port>
  std::string base_url() const;
  // The simulator's own view (GET /_stats), fetched with curl.
  boost::json::object Stats(bool detail = false) const;
  // `nanobatch run` pointed at this simulator: its URL, its CA, its file host (localhost and the
  // file port) allowed, and loopback addresses allowed for downloads.
  std::vector<std::string> RunnerArgs(const std::string& config, const std::string& manifest,
                                      const std::string& out) const;
  // curl with the test CA and the test key, for checking the simulator itself; `args` follow.
  ProcessResult Curl(const std::vector<std::string>& args) const;
  BackgroundProcess& process() { return *process_; }

 private:
  std::string ca_file_;
  int api_port_ = 0;
  int file_port_ = 0;
  std::unique_ptr<BackgroundProcess> process_;
};

// One counter of a Stats() answer: Stat(api.Stats(), "submissions").
inline std::int64_t Stat(const boost::json::object& stats, const char* key) {
  return stats.at(key).as_int64();
}

}  // namespace nanobatch::testing
