#!/usr/bin/env bash
# The shell baseline of tools/bench: xargs -P running one submit, poll and download per item with
# curl (a new process and a new TLS handshake per request). What a user writes in ten minutes.
#   xargs_curl.sh MANIFEST.jsonl OUT_DIR BASE_URL CA_FILE [PARALLEL]
# Key: $AIVIDEOAPI_API_KEY. Needs curl and jq.
set -euo pipefail
manifest=$1 out=$2 base=$3 ca=$4 parallel=${5:-32}
mkdir -p "$out"
export out base ca
one() {
  local line=$1 id prompt resolution task status url
  id=$(jq -r .id <<<"$line")
  body=$(jq -c '{model: "nano-banana-2", input: {prompt: .prompt,
                 resolution: (.resolution // "1K"), output_format: "png"}}' <<<"$line")
  task=$(curl -sS --retry 5 --cacert "$ca" -H "Authorization: Bearer $AIVIDEOAPI_API_KEY" \
           -H 'Content-Type: application/json' -d "$body" "$base/v1/images/generations" |
         jq -r .data.taskId)
  for _ in $(seq 600); do
    status=$(curl -sS --retry 5 --cacert "$ca" -H "Authorization: Bearer $AIVIDEOAPI_API_KEY" \
               "$base/v1/tasks/$task")
    case $(jq -r .status <<<"$status") in
      completed) break ;;
      failed) echo "$id failed" >&2; return 0 ;;
    esac
    sleep 0.1
  done
  url=$(jq -r '.output.urls[0]' <<<"$status")
  curl -sS --retry 5 --cacert "$ca" -o "$out/$id.png" "$url"
  echo "{\"id\":\"$id\",\"task_id\":\"$task\",\"file\":\"$id.png\"}" >>"$out/metadata.jsonl"
}
export -f one
tr '\n' '\0' <"$manifest" | xargs -0 -P "$parallel" -I{} bash -c 'one "$1"' _ {}
