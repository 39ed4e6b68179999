#pragma once
// Real child processes for integration tests: run a command to completion with its output
// captured (bounded by a timeout), or start a long-lived one (the API simulator, a runner to be
// killed) and end it by PID.
//
// Example:
//   ProcessResult r = RunProcess({"bazel-bin/runner/nanobatch", "--version"});
//   CHECK(r.exit_code == 0);

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace nanobatch::testing {

struct ProcessResult {
  int exit_code = -1;  // the exit status, or 128 + signal number when killed by a signal
  std::string out;     // standard output
  std::string err;     // standard error
  bool timed_out = false;
};

// Runs argv[0] (a path, not searched in PATH unless it has no '/') with the given extra
// environment, waits at most `timeout`, killing it with SIGKILL past that.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& extra_env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(60),
                         const std::string& stdin_text = "");

// A process started in the background, its stdout and stderr sent to files. The destructor
// ends it (SIGTERM, then SIGKILL after 5 s) and reaps it.
class BackgroundProcess {
 public:
  BackgroundProcess(const std::vector<std::string>& argv,
                    const std::map<std::string, std::string>& extra_env,
                    const std::string& output_path);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `signal`; then Wait() tells how it ended.
  void Signal(int signal);
  // Waits at most `timeout` for the process to end; returns its ProcessResult-style exit code,
  // or -1 if it is still running.
  int Wait(std::chrono::milliseconds timeout);
  bool running() const { return pid_ > 0 && !exited_; }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
};

// Polls `path` until it exists and is non-empty, at most `timeout`; true if it appeared.
bool WaitForFile(const std::string& path, std::chrono::milliseconds timeout);

}  // namespace nanobatch::testing
