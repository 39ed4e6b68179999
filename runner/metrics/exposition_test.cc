#include "runner/metrics/exposition.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

namespace nanobatch::metrics {
namespace {

TEST_CASE("exposition: families, labels escaped, values in Go float syntax") {
  Exposition page;
  page.Family("nanobatch_jobs", "gauge", "Jobs by state.\nSecond line \\ here.");
  page.Sample("nanobatch_jobs", {{"state", "run\"ning\\\n"}}, 3);
  page.Sample("nanobatch_budget_credits", {}, std::numeric_limits<double>::infinity());
  page.Sample("x", {{"a", "1"}, {"b", "2"}}, 0.25);
  page.Sample("y", {}, std::nan(""));
  CHECK(page.Take() ==
        "# HELP nanobatch_jobs Jobs by state.\\nSecond line \\\\ here.\n"
        "# TYPE nanobatch_jobs gauge\n"
        "nanobatch_jobs{state=\"run\\\"ning\\\\\\n\"} 3\n"
        "nanobatch_budget_credits +Inf\n"
        "x{a=\"1\",b=\"2\"} 0.25\n"
        "y NaN\n");
}

TEST_CASE("histogram: cumulative buckets, +Inf, sum and count") {
  Histogram histogram({0.001, 0.01, 0.1});
  histogram.Observe(0.0005);
  histogram.Observe(0.001);  // on a bound: counted in that bucket (le)
  histogram.Observe(0.05);
  histogram.Observe(3);
  CHECK(histogram.CumulativeCount(0) == 2);
  CHECK(histogram.CumulativeCount(1) == 2);
  CHECK(histogram.CumulativeCount(2) == 3);
  CHECK(histogram.CumulativeCount(3) == 4);
  Exposition page;
  page.Write("f_seconds", {}, histogram);
  const std::string text = page.Take();
  CHECK(text.find("f_seconds_bucket{le=\"0.001\"} 2\n") != std::string::npos);
  CHECK(text.find("f_seconds_bucket{le=\"0.1\"} 3\n") != std::string::npos);
  CHECK(text.find("f_seconds_bucket{le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(text.find("f_seconds_count 4\n") != std::string::npos);
}

}  // namespace
}  // namespace nanobatch::metrics
