#include "runner/metrics/exposition.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace nanobatch::metrics {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  ++count_;
  sum_ += value;
}

std::uint64_t Histogram::CumulativeCount(std::size_t i) const {
  std::uint64_t total = 0;
  for (std::size_t k = 0; k <= i && k < counts_.size(); ++k) total += counts_[k];
  return total;
}

std::string Exposition::FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Integers (counts, credits) print exactly; others with enough digits to round-trip.
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    char text[32];
    std::snprintf(text, sizeof text, "%.0f", value);
    return text;
  }
  // The shortest text that reads back as the same double (0.1, not 0.10000000000000001).
  char text[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(text, sizeof text, "%.*g", precision, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

std::string Exposition::EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Exposition::Family(const std::string& name, const std::string& type, const std::string& help) {
  // HELP text escapes only backslash and newline.
  std::string escaped;
  for (char c : help) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  text_ += "# HELP " + name + " " + escaped + "\n# TYPE " + name + " " + type + "\n";
}

void Exposition::Sample(const std::string& name, const Labels& labels, double value) {
  text_ += name;
  if (!labels.empty()) {
    text_ += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_ += ',';
      text_ += labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
    }
    text_ += '}';
  }
  text_ += ' ' + FormatValue(value) + '\n';
}

void Exposition::Write(const std::string& name, const Labels& labels, const Histogram& histogram) {
  for (std::size_t i = 0; i <= histogram.bounds().size(); ++i) {
    Labels with_le = labels;
    with_le.emplace_back("le", i < histogram.bounds().size() ? FormatValue(histogram.bounds()[i])
                                                             : std::string("+Inf"));
    Sample(name + "_bucket", with_le, static_cast<double>(histogram.CumulativeCount(i)));
  }
  Sample(name + "_sum", labels, histogram.sum());
  Sample(name + "_count", labels, static_cast<double>(histogram.count()));
}

}  // namespace nanobatch::metrics
