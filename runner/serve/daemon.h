#pragma once
// The daemon behind `nanobatch serve` (interface.md "serve"): one event loop, one engine Service
// (one rate limiter, one credit ledger, one webhook receiver) and the jobs of the spool on it, at
// most serve.max_jobs at once, in arrival order. One HTTP listener carries /healthz, /readyz,
// /metrics, the jobs API and the webhooks. systemd hears READY=1 once it listens, STATUS= with
// live counts, WATCHDOG=1 from the loop, STOPPING=1; SIGTERM drains (every job stops where it
// is, journaled, to resume at the next start) and exits 0; SIGHUP reloads the config's limits,
// budget, log level and max_jobs.
//
// Exit status: 0 drained on SIGTERM/SIGINT; 2 the spool, the listener or the config cannot be
// used; 3 stopped on a condition that may pass (credits exhausted, spend limit, API down, disk):
// restart later; 4 the API refused the credentials; 5 a configuration problem no retry cures
// (TLS certificate, base URL, model, download host).
//
// Example:
//   return RunDaemon(std::move(config), "/etc/nanobatch/nanobatch.yaml", key);

#include <string>

#include "runner/config/config.h"

namespace nanobatch::serve {

int RunDaemon(config::Config config, const std::string& config_path, const std::string& api_key);

}  // namespace nanobatch::serve
