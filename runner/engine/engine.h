#pragma once
// The engine as `run` uses it: one event loop, one Service (what jobs share: the HTTPS client,
// the rate limiter, the credit ledger, the task watcher, the webhook receiver, the stop signals)
// and one Job (an output directory's plan and its items' lifecycles). engine.cc is the wiring;
// service.h and job.h say how the parts work.
//
// Everything it learns goes through the journal first; everything it spends is checked against
// the budget first; every API request waits for the rate limiter first.
//
// Example:
//   int exit_code = RunEngine(config, api_key, store, std::move(plan), journal, flags);

#include <string>

#include "runner/config/config.h"
#include "runner/engine/job.h"
#include "runner/engine/job_plan.h"
#include "runner/journal/journal.h"
#include "runner/manifest/item_store.h"

namespace nanobatch::engine {

// Returns the exit status of interface.md (0, 1, 3, 4 or 5; 2 is the caller's, before this).
// The caller has checked the trust store (http::Client::CheckTrustStore); an exception leaving
// here is a bug (main reports it, exit 70).
int RunEngine(const config::Config& config, const std::string& api_key,
              const manifest::ItemStore& store, JobPlan plan, journal::Journal& journal,
              JobFlags flags);

}  // namespace nanobatch::engine
