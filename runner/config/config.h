#pragma once
// Config: every setting of a run, from the YAML config file (configs/example.yaml documents each
// key), then the command-line overrides, then validated as a whole.
//
// Loading never throws: every problem becomes an InputError naming the file, line and key (or the
// flag), and all of them are reported together.
//
// Example:
//   util::InputErrors errors;
//   Config config;
//   LoadConfigFile("nanobatch.yaml", config, errors);    // optional
//   config.SetFromFlag("limits.rate", "--rate");
//   config.limits.rate = 5;
//   ValidateConfig(config, errors);

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runner/manifest/item.h"
#include "runner/util/input_error.h"

namespace nanobatch::config {

struct ApiConfig {
  std::string base_url = "https://api.aivideoapi.ai";  // scheme, host and port only
  std::string key_file;                                // empty: not used
  std::string ca_file;                                 // empty: the system trust store
  std::string model = "nano-banana-2";
  // Credits per image by resolution (api.md "Pricing"); the budget is counted with these.
  std::map<std::string, std::uint32_t> prices = {{"1K", 16}, {"2K", 24}, {"4K", 36}};
  // What a credit costs, for `estimate` (api.md: 16 credits are $0.08).
  double usd_per_credit = 0.005;
};

struct LimitsConfig {
  double rate = 2.0;                 // API requests per second: submits, polls, credit queries
  std::uint32_t burst = 4;           // token-bucket depth
  std::uint32_t max_in_flight = 64;  // tasks submitted and not yet finished
  std::uint32_t max_downloads = 4;   // image downloads at once
  std::optional<std::uint64_t> budget_credits;  // nullopt: no budget
};

struct PollingConfig {
  double first_poll_s = 8.0;        // before any completion time has been observed
  double max_interval_s = 30.0;     // backoff cap between polls of one task
  double task_deadline_s = 1800.0;  // a task not finished by then is recorded as failed
};

struct TimeoutsConfig {
  double connect_s = 10.0;         // TCP connect and TLS handshake
  double request_s = 30.0;         // one API request, write to last byte of the response
  double download_s = 300.0;       // one image download
  double download_stall_s = 15.0;  // the longest a download may go without a byte
};

struct DownloadConfig {
  std::uint64_t max_bytes = 64ull << 20;  // per image; a larger body fails the download
  // Once timeouts.download_stall_s into a body, its bytes must have come at least this fast on
  // average (0: no minimum): a server trickling a byte a second is caught in seconds.
  std::uint64_t min_bytes_per_s = 1024;
  std::vector<std::string> allowed_hosts = {"file.aivideoapi.ai"};
  // CIDR blocks of non-public addresses (loopback, private, link-local, ...) that an allowed
  // host may resolve to; public addresses need no entry (http::AddressPolicy).
  std::vector<std::string> allowed_networks;
  // An image whose format or aspect ratio is not what was asked (download::DescribeMismatch):
  // keep (record its size only), flag (also its `mismatch` column; status counts it) or retry
  // (flag it, and generate the item once more, paying again; the first image goes to
  // .previous/).
  std::string on_mismatch = "flag";
};

// The output directory's layout.
struct OutputConfig {
  // Images go into subdirectories of this many items each, by the item's position in the
  // manifest (00000/ holds items 0 to N-1, as img2dataset does), so a million files do not sit in
  // one directory; 0: every image directly in the output directory.
  std::uint32_t shard_size = 0;
  // How a downloaded image is made durable before its rename (disk::FileSyncs): "auto" (the
  // images written together, one syncfs of the output filesystem where that filesystem is known
  // to make it equivalent, unless much data of other programs waits to be written back: a
  // syncfs would wait for it too), "syncfs" (one per group whatever else waits: a volume of
  // nanobatch's own) or "fsync" (one per image).
  std::string image_sync = "auto";
};

struct RetryConfig {
  std::uint32_t max_attempts = 6;  // per request, for 500/503 and network errors
  double base_delay_s = 0.5;       // exponential backoff with full jitter from here
  double max_delay_s = 60.0;
  std::uint32_t max_task_attempts = 3;    // submissions of one item whose task ended `failed`
  double spend_limit_pause_s = 600.0;     // pause after 429 spend_limit_exceeded
  double spend_limit_give_up_s = 7200.0;  // stop (exit 3) when the spend limit lasts this long
};

// Webhooks (interface.md "Webhooks"): with public_url set, every submission carries a callback
// URL and the API's POST settles the task; polling goes on as a slow safety net.
struct CallbacksConfig {
  std::string public_url;       // base URL the API can reach; empty: no callbacks
  std::string listen;           // HOST:PORT of the receiver (plain HTTP); required with public_url
  double safety_poll_s = 60.0;  // a task without a callback is polled no sooner than this
  // How long a submission whose answer was lost waits for its callback to tell the task id
  // before it is given up as a possible duplicate and submitted again.
  double reveal_wait_s = 300.0;
};

struct LogConfig {
  double progress_interval_s = 10.0;  // summary line period when stderr is not a terminal
  // auto (journal priority prefixes under systemd, else text), text, json or journal.
  std::string format = "auto";
  // debug, info, warning or error: lines below it are not written (prompts only at debug).
  std::string level = "info";
};

// `nanobatch serve` (interface.md "serve"): the spool, the HTTP listener, the jobs API.
struct ServeConfig {
  std::string spool_dir;                  // inbox/, jobs/, done/, failed/; required by serve
  std::string listen = "127.0.0.1:8750";  // /healthz /readyz /metrics /jobs and the webhooks
  std::string token_file;                 // POST /jobs bearer token; empty: POST /jobs refused
  std::uint32_t max_jobs = 2;             // jobs running at once
  double scan_interval_s = 1.0;           // how often inbox/ is looked at
  std::uint64_t max_manifest_bytes = 64ull << 20;  // the body of POST /jobs
};

// Where a setting's value came from, so that an error points at the right place.
struct Origin {
  std::string path;  // config file, or "command line"
  int line = 0;
  std::string name;  // the key as written in the file, or the flag
};

struct Config {
  ApiConfig api;
  std::string manifest;
  std::string out;
  // The process umask while running, in octal ("022", "0027"); empty: the one inherited. It
  // narrows what published files are created with (images 0644 under 022, 0664 under 002);
  // state files are 0600 whatever it is.
  std::string umask;
  LimitsConfig limits;
  PollingConfig polling;
  TimeoutsConfig timeouts;
  DownloadConfig download;
  OutputConfig output;
  RetryConfig retry;
  CallbacksConfig callbacks;
  LogConfig log;
  ServeConfig serve;
  manifest::ItemDefaults defaults;

  // Dotted key -> where it was set; keys left at their default are absent.
  std::map<std::string, Origin> origins;

  void SetFromFlag(const std::string& key, const std::string& flag) {
    origins[key] = Origin{"command line", 0, flag};
  }
};

// Reads `path` into `config`, overwriting only the keys the file sets. Unknown keys, wrong types
// and YAML syntax errors are reported in `errors`. Returns false when the file could not be read
// or parsed at all (missing, unreadable with the errno, not a regular file, larger than 1 MiB,
// not YAML): the caller stops there rather than report what follows from an empty config.
bool LoadConfigFile(const std::string& path, Config& config, util::InputErrors& errors);
// The config's umask as a number, or nullopt when it sets none (or ValidateConfig refused it).
std::optional<unsigned> UmaskOf(const Config& config);
// LoadConfigFile on text already read (`path` names it in errors).
bool LoadConfigText(const std::string& path, const std::string& text, Config& config,
                    util::InputErrors& errors);

// Sets one key from text given on the command line (`flag`), through the same parser and the
// same checks as the config file: "-5" is no budget and "1e308" no timeout, in either place.
void ApplyFlag(Config& config, const std::string& key, const std::string& flag,
               const std::string& text, util::InputErrors& errors);

struct ValidateOptions {
  bool require_paths = true;  // manifest and out must be set (run); validate checks only the rest
  bool serve = false;         // serve: spool_dir required; webhooks share serve.listen
};

// Checks the ranges and the relations between settings (after overrides). Each error names the
// key and where its value came from. Every numeric key has a range, checked here, once.
void ValidateConfig(const Config& config, util::InputErrors& errors, ValidateOptions options = {});

// The credits one item of `resolution` costs, by the config's price table.
std::uint32_t PriceOf(const Config& config, const std::string& resolution);

}  // namespace nanobatch::config
