#pragma once
// Exposition: the Prometheus text format (version 0.0.4), written by hand because it is a few
// lines of rules: a HELP and a TYPE line per family, then its samples, label values escaped
// (backslash, double quote, newline), numbers in Go's float syntax (+Inf, -Inf, NaN). Plus the
// one piece of state worth sharing: a histogram with fixed buckets.
//
// The daemon builds its /metrics page from live state at scrape time (journal totals, the rate
// limiter, the semaphores); only what must accumulate (request counts, bytes, latencies) is kept
// in counters and histograms.
//
// Example:
//   Exposition page;
//   page.Family("nanobatch_items", "gauge", "Items of the running jobs, by state.");
//   page.Sample("nanobatch_items", {{"state", "done"}}, 42);
//   std::string text = page.Take();

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nanobatch::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Histogram {
 public:
  // `bounds`: the upper bounds of the buckets, increasing (+Inf is implied).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative count of observations <= bounds()[i] (the format's `le` buckets).
  std::uint64_t CumulativeCount(std::size_t i) const;
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

class Exposition {
 public:
  // Starts a family; `type` is "counter", "gauge" or "histogram".
  void Family(const std::string& name, const std::string& type, const std::string& help);
  void Sample(const std::string& name, const Labels& labels, double value);
  // The _bucket, _sum and _count samples of `histogram` (its family started with Family()).
  void Write(const std::string& name, const Labels& labels, const Histogram& histogram);
  std::string Take() { return std::move(text_); }

  static std::string FormatValue(double value);
  static std::string EscapeLabelValue(const std::string& value);

 private:
  std::string text_;
};

}  // namespace nanobatch::metrics
