#pragma once
// The bodies of nanobatch's commands (interface.md "Commands"). cli.cc parses the command line
// and calls one of these; each returns the process exit status.

#include <optional>
#include <string>
#include <vector>

#include "runner/config/api_key.h"
#include "runner/config/config.h"
#include "runner/manifest/shard.h"

namespace nanobatch::cli {

// Exit statuses of interface.md; scripts depend on these numbers.
inline constexpr int kExitOk = 0;
inline constexpr int kExitSomeFailed = 1;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitStoppedResumable = 3;
inline constexpr int kExitRefusedCredentials = 4;

// `nanobatch validate MANIFEST [--config FILE]`: 0 for a good manifest, 2 for a bad one, every
// error printed as FILE:LINE: field: message on stderr.
int ValidateCommand(const std::string& manifest_path, const std::string& config_path);

struct RunOptions {
  bool retry_failed = false;      // --retry-failed: fresh attempts for the items in failed.jsonl
  bool salvage = false;           // --salvage: continue from a journal corrupt in the middle
  bool verify_images = false;     // --verify-images: hash every finished image at start
  manifest::Shard shard;          // --shard K/N: only the items of shard K (default: all)
  std::vector<std::string> redo;  // --redo ID (repeatable): generate these again, paying again
  bool dry_run = false;           // --dry-run: validate and estimate; send nothing
  bool estimate = false;          // `estimate`: the same, without the dry-run banner
  bool json = false;              // estimate --json
};

// The API key (interface.md "API key") and the TLS trust store, both checked before anything is
// spent; problems are added to `errors` (exit 2).
std::optional<config::ApiKey> ResolveKeyAndTrust(const config::Config& config,
                                                 util::InputErrors& errors);

// `nanobatch estimate` and `run --dry-run`: what the run would pay, need and take; sends and
// writes nothing.
int EstimateCommand(const config::Config& config, const RunOptions& options);

// `nanobatch run`: `config` already holds the file's values and the overrides.
int RunCommand(const config::Config& config, const RunOptions& options);

// `nanobatch serve --config FILE`: the daemon (interface.md "serve"); `config` holds the file's
// values, validated.
int ServeCommand(config::Config config, const std::string& config_path);

// `nanobatch export --out DIR --format webdataset --to DEST [--samples-per-shard N]`.
struct ExportOptions {
  std::string out;
  std::string format = "webdataset";
  std::string to;
  // As written: CLI11 2.1 reads "-5" into an unsigned option as 2^64 - 5.
  std::string samples_per_shard = "10000";
};
int ExportCommand(const ExportOptions& options);

// `nanobatch gallery --out DIR`: writes DIR/index.html.
int GalleryCommand(const std::string& out_dir);

// `nanobatch status --out DIR [--json]`.
int StatusCommand(const std::string& out_dir, bool json);

// Parses the command line and runs the command; the whole program.
int Main(int argc, char** argv);

}  // namespace nanobatch::cli
