#include "runner/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "runner/api/spec.h"
#include "runner/http/address_policy.h"
#include "runner/http/url.h"
#include "runner/util/did_you_mean.h"
#include "runner/util/input_file.h"
#include "runner/util/log.h"
#include "runner/util/yaml_document.h"
#include "runner/util/yaml_names.h"

namespace nanobatch::config {
namespace {

// Sets one key from its YAML value; returns an error message, or nullopt on success.
using Setter = std::function<std::optional<std::string>(const YAML::Node&, Config&)>;

template <typename Integer>
std::optional<Integer> ParseInteger(const std::string& text) {
  Integer value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> ParseDouble(const std::string& text) {
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

template <typename Access>
Setter String(Access access) {
  return [access](const YAML::Node& node, Config& config) -> std::optional<std::string> {
    if (node.IsNull()) {
      access(config).clear();
      return std::nullopt;
    }
    if (!node.IsScalar()) return "must be a string, not " + std::string(util::YamlKindName(node));
    access(config) = node.Scalar();
    return std::nullopt;
  };
}

// "1h", "30s", "500ms", "2 min": a duration written with a unit, which the keys (all in
// seconds, their names end in _s) take bare. The hint gives the number to write instead.
std::string DurationHint(const std::string& text) {
  std::size_t digits = 0;
  while (digits < text.size() &&
         ((text[digits] >= '0' && text[digits] <= '9') || text[digits] == '.')) {
    ++digits;
  }
  const auto number = ParseDouble(text.substr(0, digits));
  std::string unit = text.substr(digits);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  static const std::map<std::string, double, std::less<>> kSeconds{
      {"ms", 0.001}, {"s", 1},       {"sec", 1},   {"m", 60},     {"min", 60},
      {"h", 3600},   {"hour", 3600}, {"d", 86400}, {"day", 86400}};
  const auto found = kSeconds.find(unit);
  if (!number || found == kSeconds.end()) return "";  // no number ("" parses as none) or unit
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%g", *number * found->second);
  return " (seconds, without a unit: " + text + " is " + seconds + ")";
}

template <typename Access>
Setter Number(Access access) {
  return [access](const YAML::Node& node, Config& config) -> std::optional<std::string> {
    auto value = node.IsScalar() ? ParseDouble(node.Scalar()) : std::nullopt;
    if (!value) return "must be a number";
    access(config) = *value;
    return std::nullopt;
  };
}

// The allowed range of each whole-number key, in one place: the message for a value that is not
// a whole number ("0.5") and the check of one that is ("0") name the same bounds.
struct WholeRange {
  std::uint64_t min = 0;
  std::uint64_t max = 0;
  std::string Describe() const {
    return "from " + std::to_string(min) + " to " + std::to_string(max);
  }
};

const std::map<std::string_view, WholeRange>& WholeRanges() {
  static const auto* ranges = new std::map<std::string_view, WholeRange>{
      {"limits.burst", {1, 100'000}},
      {"limits.max_in_flight", {1, 100'000}},
      {"limits.max_downloads", {1, 1'000}},
      {"limits.budget_credits", {0, 1'000'000'000'000ull}},
      {"download.min_bytes_per_s", {0, 1ull << 30}},
      {"download.max_bytes", {1024, 1ull << 32}},
      {"output.shard_size", {0, std::numeric_limits<std::uint32_t>::max()}},
      {"retry.max_attempts", {1, 1'000}},
      {"retry.max_task_attempts", {1, 1'000}},
      {"serve.max_jobs", {1, 1'000}},
      {"serve.max_manifest_bytes", {1024, 1ull << 32}},
      {"api.prices", {1, 1'000'000}},
  };
  return *ranges;
}

const WholeRange& WholeRangeOf(std::string_view key) { return WholeRanges().at(key); }

// The key table's entry for a whole-number key: its setter names the key's range.
template <typename Integer, typename Access>
std::pair<const std::string, Setter> WholeNumber(std::string_view key, Access access) {
  const WholeRange range = WholeRangeOf(key);
  return {std::string(key),
          [access, range](const YAML::Node& node, Config& config) -> std::optional<std::string> {
            auto value = node.IsScalar() ? ParseInteger<Integer>(node.Scalar()) : std::nullopt;
            if (!value) return "must be a whole number " + range.Describe();
            access(config) = *value;
            return std::nullopt;
          }};
}

template <typename Access, typename Check>
Setter ItemValue(Access access, Check check) {
  return [access, check](const YAML::Node& node, Config& config) -> std::optional<std::string> {
    if (!node.IsScalar()) return "must be a string, not " + std::string(util::YamlKindName(node));
    if (auto problem = check(node.Scalar())) return problem;
    access(config) = node.Scalar();
    return std::nullopt;
  };
}

std::optional<std::string> SetBudget(const YAML::Node& node, Config& config) {
  if (node.IsNull()) {
    config.limits.budget_credits.reset();
    return std::nullopt;
  }
  auto value = node.IsScalar() ? ParseInteger<std::uint64_t>(node.Scalar()) : std::nullopt;
  if (!value) {
    return "must be a whole number of credits " + WholeRangeOf("limits.budget_credits").Describe() +
           ", or null for no budget";
  }
  config.limits.budget_credits = *value;
  return std::nullopt;
}

std::optional<std::string> SetPrices(const YAML::Node& node, Config& config) {
  if (!node.IsMap())
    return "must be a mapping of resolution to credits, not " +
           std::string(util::YamlKindName(node));
  for (const auto& entry : node) {
    const std::string resolution = entry.first.Scalar();
    if (!api::IsOneOf(resolution, api::kResolutions)) {
      return "\"" + resolution + "\" is not a resolution (" + api::JoinAllowed(api::kResolutions) +
             ")";
    }
    auto credits =
        entry.second.IsScalar() ? ParseInteger<std::uint32_t>(entry.second.Scalar()) : std::nullopt;
    if (!credits || *credits == 0) {
      return "the price of " + resolution + " must be a whole number of credits " +
             WholeRangeOf("api.prices").Describe();
    }
    config.api.prices[resolution] = *credits;
  }
  return std::nullopt;
}

// A list of strings, each validated later (ValidateConfig); `entries` and `entry` name them in
// messages.
Setter StringList(std::vector<std::string>& (*field)(Config&), const std::string& entries,
                  const std::string& entry) {
  return [field, entries, entry](const YAML::Node& node,
                                 Config& config) -> std::optional<std::string> {
    if (!node.IsSequence()) {
      return "must be a list of " + entries + ", not " + std::string(util::YamlKindName(node));
    }
    std::vector<std::string> values;
    for (const auto& value : node) {
      if (!value.IsScalar()) return "every entry must be a " + entry;
      values.push_back(value.Scalar());
    }
    field(config) = std::move(values);
    return std::nullopt;
  };
}

// Every key the config file may hold, by its dotted path. A mapping in the file whose path is a
// prefix of some key here is a section and is walked into; anything else is unknown.
const std::map<std::string, Setter>& KeyTable() {
  static const auto* table = new std::map<std::string, Setter>{
      {"api.base_url", String([](Config& c) -> std::string& { return c.api.base_url; })},
      {"api.key_file", String([](Config& c) -> std::string& { return c.api.key_file; })},
      {"api.ca_file", String([](Config& c) -> std::string& { return c.api.ca_file; })},
      {"api.model", String([](Config& c) -> std::string& { return c.api.model; })},
      {"api.prices", SetPrices},
      {"api.usd_per_credit", Number([](Config& c) -> double& { return c.api.usd_per_credit; })},
      {"manifest", String([](Config& c) -> std::string& { return c.manifest; })},
      {"out", String([](Config& c) -> std::string& { return c.out; })},
      {"umask", String([](Config& c) -> std::string& { return c.umask; })},
      {"limits.rate", Number([](Config& c) -> double& { return c.limits.rate; })},
      WholeNumber<std::uint32_t>("limits.burst",
                                 [](Config& c) -> std::uint32_t& { return c.limits.burst; }),
      WholeNumber<std::uint32_t>(
          "limits.max_in_flight",
          [](Config& c) -> std::uint32_t& { return c.limits.max_in_flight; }),
      WholeNumber<std::uint32_t>(
          "limits.max_downloads",
          [](Config& c) -> std::uint32_t& { return c.limits.max_downloads; }),
      {"limits.budget_credits", SetBudget},
      {"polling.first_poll_s", Number([](Config& c) -> double& { return c.polling.first_poll_s; })},
      {"polling.max_interval_s",
       Number([](Config& c) -> double& { return c.polling.max_interval_s; })},
      {"polling.task_deadline_s",
       Number([](Config& c) -> double& { return c.polling.task_deadline_s; })},
      {"timeouts.connect_s", Number([](Config& c) -> double& { return c.timeouts.connect_s; })},
      {"timeouts.request_s", Number([](Config& c) -> double& { return c.timeouts.request_s; })},
      {"timeouts.download_s", Number([](Config& c) -> double& { return c.timeouts.download_s; })},
      {"timeouts.download_stall_s",
       Number([](Config& c) -> double& { return c.timeouts.download_stall_s; })},
      WholeNumber<std::uint64_t>("download.max_bytes",
                                 [](Config& c) -> std::uint64_t& { return c.download.max_bytes; }),
      WholeNumber<std::uint64_t>(
          "download.min_bytes_per_s",
          [](Config& c) -> std::uint64_t& { return c.download.min_bytes_per_s; }),
      WholeNumber<std::uint32_t>("output.shard_size",
                                 [](Config& c) -> std::uint32_t& { return c.output.shard_size; }),
      {"output.image_sync", String([](Config& c) -> std::string& { return c.output.image_sync; })},
      {"download.on_mismatch",
       String([](Config& c) -> std::string& { return c.download.on_mismatch; })},
      {"download.allowed_hosts",
       StringList([](Config& c) -> std::vector<std::string>& { return c.download.allowed_hosts; },
                  "host names", "host name")},
      {"download.allowed_networks",
       StringList(
           [](Config& c) -> std::vector<std::string>& { return c.download.allowed_networks; },
           "CIDR blocks (such as 10.0.0.0/8)", "CIDR block")},
      WholeNumber<std::uint32_t>("retry.max_attempts",
                                 [](Config& c) -> std::uint32_t& { return c.retry.max_attempts; }),
      {"retry.base_delay_s", Number([](Config& c) -> double& { return c.retry.base_delay_s; })},
      {"retry.max_delay_s", Number([](Config& c) -> double& { return c.retry.max_delay_s; })},
      WholeNumber<std::uint32_t>(
          "retry.max_task_attempts",
          [](Config& c) -> std::uint32_t& { return c.retry.max_task_attempts; }),
      {"retry.spend_limit_pause_s",
       Number([](Config& c) -> double& { return c.retry.spend_limit_pause_s; })},
      {"retry.spend_limit_give_up_s",
       Number([](Config& c) -> double& { return c.retry.spend_limit_give_up_s; })},
      {"callbacks.public_url",
       String([](Config& c) -> std::string& { return c.callbacks.public_url; })},
      {"callbacks.listen", String([](Config& c) -> std::string& { return c.callbacks.listen; })},
      {"callbacks.safety_poll_s",
       Number([](Config& c) -> double& { return c.callbacks.safety_poll_s; })},
      {"callbacks.reveal_wait_s",
       Number([](Config& c) -> double& { return c.callbacks.reveal_wait_s; })},
      {"log.progress_interval_s",
       Number([](Config& c) -> double& { return c.log.progress_interval_s; })},
      {"log.format", String([](Config& c) -> std::string& { return c.log.format; })},
      {"log.level", String([](Config& c) -> std::string& { return c.log.level; })},
      {"serve.spool_dir", String([](Config& c) -> std::string& { return c.serve.spool_dir; })},
      {"serve.listen", String([](Config& c) -> std::string& { return c.serve.listen; })},
      {"serve.token_file", String([](Config& c) -> std::string& { return c.serve.token_file; })},
      WholeNumber<std::uint32_t>("serve.max_jobs",
                                 [](Config& c) -> std::uint32_t& { return c.serve.max_jobs; }),
      {"serve.scan_interval_s",
       Number([](Config& c) -> double& { return c.serve.scan_interval_s; })},
      WholeNumber<std::uint64_t>(
          "serve.max_manifest_bytes",
          [](Config& c) -> std::uint64_t& { return c.serve.max_manifest_bytes; }),
      {"defaults.resolution",
       ItemValue([](Config& c) -> std::string& { return c.defaults.resolution; },
                 manifest::CheckResolution)},
      {"defaults.aspect_ratio",
       ItemValue([](Config& c) -> std::string& { return c.defaults.aspect_ratio; },
                 manifest::CheckAspectRatio)},
      {"defaults.output_format",
       ItemValue([](Config& c) -> std::string& { return c.defaults.output_format; },
                 manifest::CheckOutputFormat)},
  };
  return *table;
}

// Every key and section name, for the suggestion under an unknown key.
std::span<const std::string_view> KnownNames() {
  static const auto* names = [] {
    auto* all = new std::vector<std::string_view>;
    for (const auto& [key, setter] : KeyTable()) {
      const std::string_view name = key;
      for (std::size_t dot = name.find('.'); dot != std::string_view::npos;
           dot = name.find('.', dot + 1)) {
        const std::string_view section = name.substr(0, dot);
        if (std::find(all->begin(), all->end(), section) == all->end()) all->push_back(section);
      }
      all->push_back(name);
    }
    return all;
  }();
  return *names;
}

// For a key known by its last part in another section ("rate:" at the top, or "limits.model"):
// " (did you mean ...? it belongs in the ... section)"; empty when no key or several have it.
std::string MisplacedKeyHint(std::string_view typed) {
  const std::string_view leaf = typed.substr(typed.rfind('.') + 1);
  std::string_view found;
  for (const auto& [key, setter] : KeyTable()) {
    const std::string_view name = key;
    if (name == typed || name.substr(name.rfind('.') + 1) != leaf) continue;
    if (!found.empty()) return {};  // in two sections: no guess
    found = name;
  }
  if (found.empty()) return {};
  const auto dot = found.rfind('.');
  return " (did you mean \"" + std::string(found) + "\"? it belongs " +
         (dot == std::string_view::npos
              ? std::string("at the top level")
              : "in the " + std::string(found.substr(0, dot)) + ": section") +
         ")";
}

// The known name an unknown key most likely meant: a near spelling, else the same key in
// another section.
std::string UnknownKeyHint(std::string_view key) {
  std::string hint = util::DidYouMeanSuffix(key, KnownNames());
  return hint.empty() ? MisplacedKeyHint(key) : hint;
}

bool IsSection(const std::string& path) {
  const std::string prefix = path + ".";
  auto it = KeyTable().lower_bound(prefix);
  return it != KeyTable().end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

void Walk(const YAML::Node& map, const std::string& prefix, const std::string& file, Config& config,
          util::InputErrors& errors) {
  for (const auto& entry : map) {
    const int line = entry.first.Mark().line + 1;
    if (!entry.first.IsScalar()) {
      errors.Add({file, line, prefix.empty() ? "-" : prefix, "a key must be a string"});
      continue;
    }
    const std::string key =
        prefix.empty() ? entry.first.Scalar() : prefix + "." + entry.first.Scalar();
    auto setter = KeyTable().find(key);
    if (setter != KeyTable().end()) {
      if (auto problem = setter->second(entry.second, config)) {
        if (key.ends_with("_s") && entry.second.IsScalar()) {
          *problem += DurationHint(entry.second.Scalar());
        }
        errors.Add({file, entry.second.Mark().line + 1, key, *problem});
      } else {
        config.origins[key] = Origin{file, entry.second.Mark().line + 1, key};
      }
    } else if (IsSection(key)) {
      if (entry.second.IsMap()) {
        Walk(entry.second, key, file, config, errors);
      } else if (!entry.second.IsNull()) {
        errors.Add({file, line, key,
                    "must be a mapping (a section), not " +
                        std::string(util::YamlKindName(entry.second))});
      }
    } else {
      const std::string hint = UnknownKeyHint(key);
      errors.Add({file, line, key,
                  "unknown key" + (hint.empty() ? " (configs/example.yaml has every key)" : hint)});
    }
  }
}

constexpr std::uint64_t kMaxConfigBytes = 1 << 20;

bool IsLoopbackHost(std::string_view host) {
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1";
}

// The API must reach public_url over https (an http URL would carry the callback tokens in the
// clear), except on loopback (tests); the receiver listens on an IP address and port.
template <typename Report>
void ValidateCallbacks(const CallbacksConfig& callbacks, Report& report, bool serve) {
  if (serve && !callbacks.listen.empty()) {
    report("callbacks.listen", "is not used by serve: the webhooks share serve.listen");
    return;
  }
  if (callbacks.public_url.empty()) {
    if (!callbacks.listen.empty()) {
      report("callbacks.listen", "needs callbacks.public_url (--callback-url) too");
    }
    return;
  }
  auto url = boost::urls::parse_absolute_uri(callbacks.public_url);
  if (!url || url->encoded_host().empty()) {
    report("callbacks.public_url", "\"" + callbacks.public_url + "\" is not an absolute URL");
  } else if (url->has_query() || url->has_fragment() || url->has_userinfo()) {
    report("callbacks.public_url", "must have no query, fragment or user name");
  } else if (url->has_port() && !http::ParsePort(url->port())) {
    report("callbacks.public_url",
           "\"" + std::string(url->port()) + "\" is not a port (1 to 65535)");
  } else if (url->scheme_id() != boost::urls::scheme::https &&
             !(url->scheme_id() == boost::urls::scheme::http &&
               IsLoopbackHost(url->encoded_host()))) {
    report("callbacks.public_url",
           "must be an https URL (http only for a loopback host): the API sends the callback "
           "token in it");
  }
  if (serve) return;
  if (callbacks.listen.empty()) {
    report("callbacks.listen", "is required with callbacks.public_url (--callback-listen)");
    return;
  }
  const auto host_port = http::ParseHostPort(callbacks.listen);
  boost::system::error_code error;
  if (!host_port || callbacks.listen.find(':') == std::string::npos ||
      (boost::asio::ip::make_address(host_port->host, error), error)) {
    report("callbacks.listen",
           "\"" + callbacks.listen + "\" is not IP:PORT (for example 127.0.0.1:8751)");
  }
}

}  // namespace

std::optional<unsigned> UmaskOf(const Config& config) {
  const std::string& text = config.umask;
  if (text.empty() || text.size() > 4) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    value = value * 8 + static_cast<unsigned>(c - '0');
  }
  if (value > 0777) return std::nullopt;
  return value;
}

bool LoadConfigFile(const std::string& path, Config& config, util::InputErrors& errors) {
  std::string text, error;
  if (!util::ReadInputFile(path, kMaxConfigBytes, text, error)) {
    errors.Add({path, 0, "-", error});
    return false;
  }
  return LoadConfigText(path, text, config, errors);
}

bool LoadConfigText(const std::string& path, const std::string& text, Config& config,
                    util::InputErrors& errors) {
  // Sections given twice merge and a later key wins (Walk applies them in order), as a later
  // flag does: not an error here, unlike in a manifest.
  const std::optional<YAML::Node> document =
      util::LoadYamlDocument(path, text, errors, {.unique_keys = false});
  if (!document) return false;
  const YAML::Node& root = *document;
  if (root.IsNull()) return true;  // an empty config changes nothing
  if (!root.IsMap()) {
    errors.Add({path, root.Mark().line + 1, "-", "the config must be a mapping of keys"});
    return false;
  }
  Walk(root, "", path, config, errors);
  return true;
}

void ApplyFlag(Config& config, const std::string& key, const std::string& flag,
               const std::string& text, util::InputErrors& errors) {
  auto setter = KeyTable().find(key);
  if (setter == KeyTable().end()) {
    errors.Add({"command line", 0, flag, "is not a setting"});
    return;
  }
  // The flag's text is parsed exactly as the same value written in the config file would be.
  if (auto problem = setter->second(YAML::Node(text), config)) {
    errors.Add({"command line", 0, flag, *problem});
    return;
  }
  config.SetFromFlag(key, flag);
}

void ValidateConfig(const Config& config, util::InputErrors& errors, ValidateOptions options) {
  auto report = [&](const std::string& key, const std::string& message) {
    auto origin = config.origins.find(key);
    if (origin == config.origins.end()) {
      errors.Add({"config", 0, key, message});
    } else {
      errors.Add({origin->second.path, origin->second.line, origin->second.name, message});
    }
  };
  // One range per numeric key: in the file or on the command line, 0, negative numbers and
  // absurd magnitudes (1e308 seconds) are errors here, not overflows later.
  auto seconds = [&](const std::string& key, double value, double max) {
    if (!(value > 0) || value > max) {
      report(key, "must be above 0 and at most " + std::to_string(static_cast<long long>(max)) +
                      " seconds");
    }
  };
  auto whole = [&](const std::string& key, std::uint64_t value) {
    const WholeRange& range = WholeRangeOf(key);
    if (value < range.min || value > range.max) report(key, "must be " + range.Describe());
  };
  constexpr double kHour = 3600, kDay = 86400;

  // The base URL: https only (the API key travels in every request), host and port only.
  auto url = boost::urls::parse_absolute_uri(config.api.base_url);
  if (!url) {
    report("api.base_url", "\"" + config.api.base_url + "\" is not an absolute URL");
  } else if (url->scheme_id() != boost::urls::scheme::https) {
    report("api.base_url", "must be an https URL (the API key is sent with every request)");
  } else if (url->encoded_host().empty()) {
    report("api.base_url", "has no host");
  } else if (url->has_port() && !http::ParsePort(url->port())) {
    report("api.base_url", "\"" + std::string(url->port()) + "\" is not a port (1 to 65535)");
  } else if (!(url->encoded_path().empty() || url->encoded_path() == "/") || url->has_query() ||
             url->has_fragment() || url->has_userinfo()) {
    report("api.base_url", "must be scheme, host and port only (for example " +
                               std::string(api::kDefaultBaseUrl) + ", without /v1)");
  }
  if (config.api.model.empty()) report("api.model", "must not be empty");

  if (!config.api.ca_file.empty()) {
    std::string error;
    if (!util::OpenInputFile(config.api.ca_file, kMaxConfigBytes, error)) {
      report("api.ca_file", config.api.ca_file + ": " + error);
    }
  }
  if (options.require_paths) {
    if (config.manifest.empty()) report("manifest", "is required (in the config or --manifest)");
    if (config.out.empty()) report("out", "is required (in the config or --out)");
  }

  if (!(config.limits.rate > 0) || config.limits.rate > 10000) {
    report("limits.rate", "must be above 0 and at most 10000 requests a second");
  }
  whole("limits.burst", config.limits.burst);
  whole("limits.max_in_flight", config.limits.max_in_flight);
  whole("limits.max_downloads", config.limits.max_downloads);
  if (config.limits.budget_credits) {
    whole("limits.budget_credits", *config.limits.budget_credits);
  }

  seconds("polling.first_poll_s", config.polling.first_poll_s, kHour);
  seconds("polling.max_interval_s", config.polling.max_interval_s, kHour);
  seconds("polling.task_deadline_s", config.polling.task_deadline_s, 30 * kDay);
  seconds("timeouts.connect_s", config.timeouts.connect_s, 600);
  seconds("timeouts.request_s", config.timeouts.request_s, kHour);
  seconds("timeouts.download_s", config.timeouts.download_s, kDay);
  seconds("timeouts.download_stall_s", config.timeouts.download_stall_s, kHour);
  whole("download.min_bytes_per_s", config.download.min_bytes_per_s);
  whole("download.max_bytes", config.download.max_bytes);
  if (!config.umask.empty() && !UmaskOf(config)) {
    report("umask", "\"" + config.umask + "\" is not an octal umask such as 022 or 0027");
  }
  for (const std::string& host : config.download.allowed_hosts) {
    if (!http::ParseHostPort(host)) {
      report("download.allowed_hosts",
             "\"" + host + "\" is not a host or host:port (no scheme or path: file.aivideoapi.ai)");
    }
  }
  for (const std::string& network : config.download.allowed_networks) {
    std::string why;
    if (!http::Network::Parse(network, &why)) report("download.allowed_networks", why);
  }

  whole("retry.max_attempts", config.retry.max_attempts);
  whole("retry.max_task_attempts", config.retry.max_task_attempts);
  seconds("retry.base_delay_s", config.retry.base_delay_s, kHour);
  seconds("retry.max_delay_s", config.retry.max_delay_s, kDay);
  if (config.retry.max_delay_s < config.retry.base_delay_s) {
    report("retry.max_delay_s", "must be at least retry.base_delay_s");
  }
  seconds("retry.spend_limit_pause_s", config.retry.spend_limit_pause_s, 7 * kDay);
  seconds("retry.spend_limit_give_up_s", config.retry.spend_limit_give_up_s, 30 * kDay);
  if (config.retry.spend_limit_give_up_s < config.retry.spend_limit_pause_s) {
    report("retry.spend_limit_give_up_s", "must be at least retry.spend_limit_pause_s");
  }
  seconds("log.progress_interval_s", config.log.progress_interval_s, kDay);
  if (config.download.on_mismatch != "keep" && config.download.on_mismatch != "flag" &&
      config.download.on_mismatch != "retry") {
    report("download.on_mismatch",
           "\"" + config.download.on_mismatch + "\" is not keep, flag or retry");
  }
  if (config.output.image_sync != "auto" && config.output.image_sync != "syncfs" &&
      config.output.image_sync != "fsync") {
    report("output.image_sync",
           "\"" + config.output.image_sync + "\" is not auto, syncfs or fsync");
  }
  if (!util::ParseLogFormat(config.log.format)) {
    report("log.format", "\"" + config.log.format + "\" is not auto, text, json or journal");
  }
  if (!util::ParseLogLevel(config.log.level)) {
    report("log.level", "\"" + config.log.level + "\" is not debug, info, warning or error");
  }
  ValidateCallbacks(config.callbacks, report, options.serve);
  if (options.serve) {
    if (config.serve.spool_dir.empty()) report("serve.spool_dir", "is required by serve");
    const auto colon = config.serve.listen.rfind(':');
    if (colon == std::string::npos || !http::ParseHostPort(config.serve.listen)) {
      report("serve.listen",
             "\"" + config.serve.listen + "\" is not IP:PORT (for example 127.0.0.1:8750)");
    }
    whole("serve.max_jobs", config.serve.max_jobs);
    seconds("serve.scan_interval_s", config.serve.scan_interval_s, kHour);
    whole("serve.max_manifest_bytes", config.serve.max_manifest_bytes);
  }
  seconds("callbacks.safety_poll_s", config.callbacks.safety_poll_s, kDay);
  seconds("callbacks.reveal_wait_s", config.callbacks.reveal_wait_s, kDay);
  for (const auto& [resolution, credits] : config.api.prices) {
    whole("api.prices", credits);
  }
  if (!(config.api.usd_per_credit >= 0 && config.api.usd_per_credit <= 1000)) {
    report("api.usd_per_credit", "must be from 0 to 1000");
  }
}

std::uint32_t PriceOf(const Config& config, const std::string& resolution) {
  auto it = config.api.prices.find(resolution);
  // Validation admits only the three resolutions and the table always holds all three; a price
  // of "unknown" would let the budget be overspent, so it ends the process.
  if (it == config.api.prices.end()) {
    std::fprintf(stderr, "fatal: no price for resolution %s\n", resolution.c_str());
    std::abort();
  }
  return it->second;
}

}  // namespace nanobatch::config
