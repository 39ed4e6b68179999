#pragma once
// The engine: drives every item of a validated manifest to an image on disk or a recorded
// failure, on one thread, with one coroutine per item whose body reads as the lifecycle it
// implements: reserve credits -> record the intent -> submit -> poll -> download -> record.
//
// Everything it learns goes through the journal first; everything it spends is checked against
// the budget first; every API request waits for the rate limiter first.
//
// Example:
//   int exit_code = RunEngine(config, api_key, store, std::move(plan), journal, flags);

#include <string>
#include <vector>

#include "runner/config/config.h"
#include "runner/engine/job_plan.h"
#include "runner/journal/journal.h"
#include "runner/manifest/item_store.h"

namespace nanobatch::engine {

struct EngineFlags {
  bool retry_failed = false;  // give items in failed.jsonl a fresh set of attempts
  // Hash every finished image against the journal at start (default: size only, which is cheap
  // for 100,000 images; files are fsynced before their record, so sizes catch truncation).
  bool verify_images = false;
};

// Returns the exit status of interface.md (0, 1, 3 or 4; 2 is the caller's, before this).
// The caller has checked the trust store (http::Client::CheckTrustStore); an exception leaving
// here is a bug (main reports it, exit 70).
int RunEngine(const config::Config& config, const std::string& api_key,
              const manifest::ItemStore& store, JobPlan plan, journal::Journal& journal,
              EngineFlags flags);

}  // namespace nanobatch::engine
