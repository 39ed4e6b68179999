#include "runner/engine/estimate.h"

#include <doctest/doctest.h>

namespace nanobatch::engine {
namespace {

TEST_CASE("estimate: credits and money by resolution, the budget the directory needs") {
  config::Config config;
  config.limits.budget_credits = 1000;
  EstimateInput input;
  input.to_submit = {{"1K", 10}, {"4K", 5}};
  input.items = 20;
  input.done = 5;
  input.credits_spent = 80;
  input.credits_reserved = 16;
  const Estimate estimate = MakeEstimate(input, config);
  CHECK(estimate.tasks == 15);
  CHECK(estimate.credits == 10 * 16 + 5 * 36);
  CHECK(estimate.usd == doctest::Approx(340 * 0.005));
  CHECK(estimate.budget_needed == 80 + 16 + 340);
  const std::string text = FormatEstimate(estimate, config);
  CHECK(text.find("15 tasks, 340 credits ($1.70 at $0.005 a credit) (10 x 1K at 16, 5 x 4K at "
                  "36)") != std::string::npos);
  CHECK(text.find("limits.budget_credits 1000 is enough") != std::string::npos);
  config.limits.budget_credits = 400;
  const std::string short_text = FormatEstimate(MakeEstimate(input, config), config);
  CHECK(short_text.find("is short by 36: the run would stop there (exit 3); --budget-credits 436 "
                        "lets it finish") != std::string::npos);
  CHECK(EstimateJson(MakeEstimate(input, config)).at("budget_enough") == false);
}

TEST_CASE("estimate: time is bound by the rate or by the tasks in flight, whichever is slower") {
  config::Config config;
  config.limits.rate = 2;  // requests/s
  config.limits.max_in_flight = 64;
  EstimateInput input;
  input.to_submit = {{"1K", 1000}};
  input.polls_per_task = 1.0;  // 2 requests a task: 1 task/s by rate
  input.latency_s = 20;        // 64 / 20 = 3.2 tasks/s by in-flight
  Estimate estimate = MakeEstimate(input, config);
  CHECK(estimate.bound_by == "limits.rate");
  CHECK(estimate.tasks_per_s == doctest::Approx(1.0));
  CHECK(estimate.seconds == doctest::Approx(1000 + 20));
  CHECK(estimate.latency_learned);
  config.limits.rate = 100;
  estimate = MakeEstimate(input, config);
  CHECK(estimate.bound_by == "limits.max_in_flight");
  CHECK(estimate.tasks_per_s == doctest::Approx(3.2));
  // Nothing learned: the assumed latency and polls, and it says so.
  EstimateInput nothing_learned;
  nothing_learned.to_submit = {{"2K", 3}};
  estimate = MakeEstimate(nothing_learned, config);
  CHECK_FALSE(estimate.latency_learned);
  CHECK(estimate.latency_s == kAssumedLatencyS);
  CHECK(FormatEstimate(estimate, config).find(", assumed)") != std::string::npos);
  CHECK(MakeEstimate(EstimateInput{}, config).seconds == 0);
}

TEST_CASE("estimate: a long output path is printed whole") {
  config::Config config;
  config.out = "/data/" + std::string(400, 'd') + "/out";
  EstimateInput input;
  input.to_submit = {{"1K", 1}, {"2K", 2}, {"4K", 3}};
  const std::string text = FormatEstimate(MakeEstimate(input, config), config);
  CHECK(text.find("in " + config.out + "\n") != std::string::npos);
  CHECK(text.find("(1 x 1K at 16, 2 x 2K at 24, 3 x 4K at 36)\n") != std::string::npos);
}

TEST_CASE("estimate: durations read like a person would say them") {
  CHECK(HumanDuration(0.2) == "1 s");
  CHECK(HumanDuration(89) == "89 s");
  CHECK(HumanDuration(600) == "10 min");
  CHECK(HumanDuration(3 * 3600) == "3.0 h");
}

}  // namespace
}  // namespace nanobatch::engine
