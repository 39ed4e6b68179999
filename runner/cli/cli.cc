// The command line of interface.md, parsed with CLI11. This file only parses and dispatches:
// every setting lands in config::Config, so a flag and its config key behave the same.

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "runner/cli/commands.h"
#include "runner/util/did_you_mean.h"
#include "runner/util/log.h"
#include "runner/version.h"

namespace nanobatch::cli {
namespace {

constexpr const char* kDescription =
    "nanobatch: generates image datasets through the Nano Banana 2 API, resumably.\n"
    "Exit status of run: 0 all done, 1 some items failed (failed.jsonl), 2 bad usage/config/"
    "manifest,\n3 stopped early but resumable, 4 credentials or caller refused by the API,\n"
    "5 stopped on a configuration problem no retry can cure (TLS certificate, base URL, model,\n"
    "download host): fix it and run again, 70 internal error (a bug: please report it).";

// The overrides of `run`: each sets one config key (and is remembered as its origin). Values are
// kept as text and parsed by the config's own parser (config::ApplyFlag), so a flag and its key
// accept exactly the same values.
struct Override {
  const char* flag;
  const char* key;
  const char* help;
};
constexpr Override kOverrides[] = {
    {"--manifest", "manifest", "manifest of prompts (.jsonl, .yaml, .yml)"},
    {"--out", "out", "output directory"},
    {"--base-url", "api.base_url",
     "API scheme, host and port, without /v1 (default https://api.aivideoapi.ai)"},
    {"--ca-file", "api.ca_file", "trust only this CA (PEM) instead of the system store"},
    {"--rate", "limits.rate", "API requests per second (submits, polls, credit queries)"},
    {"--burst", "limits.burst", "token-bucket depth"},
    {"--max-in-flight", "limits.max_in_flight", "tasks submitted and not yet finished"},
    {"--budget-credits", "limits.budget_credits", "credits this output directory may spend"},
    {"--callback-url", "callbacks.public_url",
     "base URL at which the API reaches this process's webhook receiver (https)"},
    {"--callback-listen", "callbacks.listen", "IP:PORT the webhook receiver listens on (HTTP)"},
};

struct RunFlags {
  std::string config_file;
  std::string shard;                             // K/N or auto/N
  std::map<std::string, std::string> overrides;  // flag -> text
  std::vector<std::string> allow_download_hosts;
  std::vector<std::string> allow_download_networks;
  RunOptions options;
};

void AddRunFlags(CLI::App& run, RunFlags& flags) {
  run.add_option("--config", flags.config_file, "YAML config file (configs/example.yaml)");
  for (const Override& override : kOverrides) {
    run.add_option(override.flag, flags.overrides[override.flag], override.help)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // the last one given wins
  }
  run.add_option("--allow-download-host", flags.allow_download_hosts,
                 "also download images from this host (repeatable)");
  run.add_option("--allow-download-network", flags.allow_download_networks,
                 "let download hosts resolve to this non-public CIDR block, such as 127.0.0.0/8 "
                 "(repeatable)");
  run.add_flag("--retry-failed", flags.options.retry_failed,
               "give the items in failed.jsonl a fresh set of attempts");
  run.add_flag("--salvage", flags.options.salvage,
               "continue from every readable record of a journal corrupt in the middle");
  run.add_flag("--verify-images", flags.options.verify_images,
               "hash every finished image against the journal at start (default: size check)");
  run.add_option("--redo", flags.options.redo,
                 "generate this item again, paying again; its old image moves to .previous/ "
                 "(repeatable; also ID,ID,...)")
      ->delimiter(',');
  run.add_flag("--dry-run", flags.options.dry_run,
               "validate and estimate (credits, money, budget, time); send nothing");
  run.add_option("--shard", flags.shard,
                 "K/N: only the items whose id hashes to shard K of N (auto/N: K from "
                 "$JOB_COMPLETION_INDEX or $SLURM_ARRAY_TASK_ID)");
}

// The log's format and level, from a validated config (validation checked both names).
void UseLogSettings(const config::LogConfig& log) {
  util::SetLogFormat(*util::ParseLogFormat(log.format));
  util::SetLogLevel(*util::ParseLogLevel(log.level));
}

// Config file first, then each flag the user gave; a flag wins over the file.
// What CLI11's refusal leaves out: the command or flag the user most likely meant ("nanobatch
// runn" is "A subcommand is required" to CLI11). Empty when the problem is something else.
std::string UsageHint(CLI::App& app, int argc, char** argv) {
  if (argc < 2) return {};
  // The first --flag from argv[from] on that `scope` does not know, and the one it likely meant.
  auto flag_hint = [&](const CLI::App& scope, int from, const std::string& where) -> std::string {
    std::vector<std::string> flags;
    for (const CLI::Option* option : scope.get_options()) {
      for (const std::string& name : option->get_lnames()) flags.push_back("--" + name);
    }
    const std::vector<std::string_view> names(flags.begin(), flags.end());
    for (int i = from; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (arg == "--") break;  // what follows is positional
      if (!arg.starts_with("--")) continue;
      const std::string flag(arg.substr(0, arg.find('=')));
      if (std::find(flags.begin(), flags.end(), flag) != flags.end()) continue;
      return "unknown flag " + flag + where + util::DidYouMeanSuffix(flag, names);
    }
    return {};
  };
  const std::string first = argv[1];
  if (first.starts_with("-")) return flag_hint(app, 1, "");
  std::vector<std::string> commands;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->get_name() == first) return flag_hint(*sub, 2, " for " + first);
    commands.push_back(sub->get_name());
  }
  std::string list;
  for (const std::string& name : commands) list += (list.empty() ? "" : " ") + name;
  const std::vector<std::string_view> names(commands.begin(), commands.end());
  return "unknown command \"" + first + "\"" + util::DidYouMeanSuffix(first, names) +
         "; the commands are " + list;
}

int StartRun(const CLI::App& run, const RunFlags& flags) {
  config::Config config;
  util::InputErrors errors;
  // A config file that cannot be read at all is the one error worth reading: what would follow
  // ("manifest is required", ...) only follows from it.
  if (!flags.config_file.empty() && !config::LoadConfigFile(flags.config_file, config, errors)) {
    errors.Print(std::cerr);
    return kExitBadInput;
  }

  // A flag the user gave replaces the file's value and becomes that key's origin in errors.
  for (const Override& override : kOverrides) {
    if (run.get_option(override.flag)->count() == 0) continue;
    config::ApplyFlag(config, override.key, override.flag, flags.overrides.at(override.flag),
                      errors);
  }
  for (const std::string& host : flags.allow_download_hosts) {
    config.download.allowed_hosts.push_back(host);
    config.SetFromFlag("download.allowed_hosts", "--allow-download-host");
  }
  for (const std::string& network : flags.allow_download_networks) {
    config.download.allowed_networks.push_back(network);
    config.SetFromFlag("download.allowed_networks", "--allow-download-network");
  }
  ValidateConfig(config, errors);
  RunOptions options = flags.options;
  if (!flags.shard.empty()) {
    std::string error;
    auto shard = manifest::ParseShard(flags.shard, std::getenv, error);
    if (shard) {
      options.shard = *shard;
    } else {
      errors.Add({"command line", 0, "--shard", error});
    }
  }
  if (!errors.empty()) {
    errors.Print(std::cerr);
    return kExitBadInput;
  }
  UseLogSettings(config.log);
  if (options.dry_run || options.estimate) return EstimateCommand(config, options);
  if (auto mask = config::UmaskOf(config)) ::umask(static_cast<mode_t>(*mask));
  return RunCommand(config, options);
}

int StartServe(const std::string& config_path) {
  config::Config config;
  util::InputErrors errors;
  if (config::LoadConfigFile(config_path, config, errors)) {
    ValidateConfig(config, errors, {.require_paths = false, .serve = true});
  }
  if (!errors.empty()) {
    errors.Print(std::cerr);
    return kExitBadInput;
  }
  UseLogSettings(config.log);
  if (auto mask = config::UmaskOf(config)) ::umask(static_cast<mode_t>(*mask));
  return ServeCommand(std::move(config), config_path);
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app(kDescription, "nanobatch");
  app.set_version_flag("--version", std::string("nanobatch ") + kVersion);
  app.require_subcommand(1);

  RunFlags run_flags;
  CLI::App* run = app.add_subcommand("run", "process a manifest to the end, resumably");
  AddRunFlags(*run, run_flags);

  std::string serve_config;
  CLI::App* serve = app.add_subcommand(
      "serve", "the daemon: jobs from a spool directory, an HTTP jobs API, Prometheus metrics");
  serve->add_option("--config", serve_config, "YAML config file with a serve: section")->required();

  std::string status_out;
  bool status_json = false;
  CLI::App* status =
      app.add_subcommand("status", "summary read from the journal; safe while a run is live");
  // The directory may also be given bare: `nanobatch status out` (it said "--out is required").
  status->add_option("--out,DIR", status_out, "output directory of the run")->required();
  status->add_flag("--json", status_json, "one JSON object, for scripts");

  RunFlags estimate_flags;
  CLI::App* estimate = app.add_subcommand(
      "estimate", "what a run would pay, need and take (the flags of run); sends nothing");
  AddRunFlags(*estimate, estimate_flags);
  estimate->add_flag("--json", estimate_flags.options.json, "one JSON object, for scripts");

  std::string gallery_out;
  CLI::App* gallery = app.add_subcommand(
      "gallery", "write OUT/index.html: the images with their prompts, filters and search");
  gallery->add_option("--out,DIR", gallery_out, "output directory of a run")->required();

  ExportOptions export_options;
  CLI::App* export_command = app.add_subcommand(
      "export", "write the finished images as training shards (WebDataset tar files)");
  export_command->add_option("--out,DIR", export_options.out, "output directory of a run")
      ->required();
  export_command->add_option("--format", export_options.format, "webdataset (the default)");
  export_command->add_option("--to", export_options.to, "directory for the shards")->required();
  export_command->add_option("--samples-per-shard", export_options.samples_per_shard,
                             "images in each tar (default 10000)");

  std::string validate_manifest;
  std::string validate_config;
  CLI::App* validate = app.add_subcommand("validate", "check a manifest; submit nothing");
  validate->add_option("MANIFEST", validate_manifest, "the manifest to check")->required();
  validate->add_option("--config", validate_config, "config whose defaults and prices apply");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string hint = UsageHint(app, argc, argv);
    std::cerr << "nanobatch: " << (hint.empty() ? std::string(e.what()) : hint)
              << "\n(see nanobatch --help)\n";
    return kExitBadInput;
  }

  if (*validate) return ValidateCommand(validate_manifest, validate_config);
  if (*status) return StatusCommand(status_out, status_json);
  if (*gallery) return GalleryCommand(gallery_out);
  if (*export_command) return ExportCommand(export_options);
  if (*serve) return StartServe(serve_config);
  if (*estimate) {
    estimate_flags.options.estimate = true;
    return StartRun(*estimate, estimate_flags);
  }
  return StartRun(*run, run_flags);
}

}  // namespace nanobatch::cli
