#!/usr/bin/env bash
# nanobatch on Slurm: one manifest split across a job array of 4 tasks. Each task runs
# `nanobatch run --shard auto/4`, which takes its shard K from $SLURM_ARRAY_TASK_ID, writes its
# own output directory and spends at most its slice of the budget. Shards are disjoint and
# together cover every item exactly once (README "Sharding"). Submit, then merge:
#
#   sbatch configs/slurm-array.sh
#   merge_shards out/merged out/shard-0 out/shard-1 out/shard-2 out/shard-3
#
# A task that stopped resumable (exit 3: budget, API down, preempted) resumes from its journal
# when resubmitted: `sbatch --array=K configs/slurm-array.sh`.
#SBATCH --job-name=nanobatch
#SBATCH --array=0-3
#SBATCH --cpus-per-task=1
#SBATCH --mem=512M
#SBATCH --time=12:00:00
#SBATCH --output=nanobatch-%A-%a.log
set -euo pipefail
shards=4
total_budget=${NANOBATCH_BUDGET:-1000000}  # credits for the whole manifest
# The key: a file only you can read (or set AIVIDEOAPI_API_KEY in the environment).
export AIVIDEOAPI_API_KEY=${AIVIDEOAPI_API_KEY:-$(cat "$HOME/.config/nanobatch/api_key")}
exec nanobatch run --config "${NANOBATCH_CONFIG:-$HOME/.config/nanobatch/nanobatch.yaml}" \
  --manifest "${NANOBATCH_MANIFEST:-prompts.jsonl}" \
  --out "out/shard-${SLURM_ARRAY_TASK_ID}" \
  --shard "auto/${shards}" \
  --budget-credits "$((total_budget / shards))"
