#!/usr/bin/env bash
# Installs nanobatch as a systemd service (run it as root, after `bazel build //runner:nanobatch`):
#   tools/install.sh [--prefix /usr/local] [--destdir DIR]
# - the binary to PREFIX/bin/nanobatch, merge_shards beside it, the README to PREFIX/share/doc;
# - nanobatch.service and nanobatch@.service to /etc/systemd/system (ExecStart= pointing at the
#   installed binary), then `systemctl daemon-reload` when systemd runs this machine;
# - the system user nanobatch (/etc/sysusers.d/nanobatch.conf, created by systemd-sysusers) that
#   `nanobatch serve` (nanobatch.service) runs as;
# - /etc/nanobatch/serve.yaml from configs/serve.yaml, mode 0640 root:nanobatch (serve re-reads
#   it on reload), and /etc/nanobatch/nanobatch.yaml from configs/example.yaml, mode 0600 (it
#   reaches nanobatch@NAME as a credential, like the key); neither is overwritten if it exists.
# Nothing else is written. --destdir stages everything under DIR (packaging, tests): no user is
# created then, and the group of serve.yaml is left to the package's own scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
destdir=
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --destdir) destdir=$2; shift 2 ;;
    *) echo "usage: tools/install.sh [--prefix DIR] [--destdir DIR]" >&2; exit 2 ;;
  esac
done
# The built binaries (overridable: a test installs from its runfiles).
binary=${NANOBATCH_BINARY:-bazel-bin/runner/nanobatch}
merge=${MERGE_SHARDS_BINARY:-bazel-bin/tools/merge_shards/merge_shards}
for built in "$binary" "$merge"; do
  [ -x "$built" ] || { echo "install.sh: $built is missing: bazel build //runner:nanobatch //tools/merge_shards" >&2; exit 2; }
done

install -d -m 0755 "$destdir$prefix/bin" "$destdir$prefix/share/doc/nanobatch" \
  "$destdir/etc/systemd/system"
install -d -m 0755 "$destdir/etc/sysusers.d"
install -m 0644 configs/nanobatch.sysusers "$destdir/etc/sysusers.d/nanobatch.conf"
group=
if [ -z "$destdir" ]; then
  systemd-sysusers /etc/sysusers.d/nanobatch.conf
  group=nanobatch
fi
# /etc/nanobatch: traversable by the service's group only (serve reads serve.yaml and its token).
install -d -m 0750 "$destdir/etc/nanobatch"
[ -z "$group" ] || chgrp "$group" "$destdir/etc/nanobatch"
install -m 0755 "$binary" "$destdir$prefix/bin/nanobatch"
install -m 0755 "$merge" "$destdir$prefix/bin/merge_shards"
install -m 0644 README.md configs/example.yaml configs/serve.yaml \
  "$destdir$prefix/share/doc/nanobatch/"
for unit in nanobatch.service nanobatch@.service; do
  sed "s|/usr/local/bin/nanobatch|$prefix/bin/nanobatch|" "configs/$unit" > "$destdir/etc/systemd/system/$unit"
  chmod 0644 "$destdir/etc/systemd/system/$unit"
done
if [ ! -e "$destdir/etc/nanobatch/nanobatch.yaml" ]; then
  install -m 0600 configs/example.yaml "$destdir/etc/nanobatch/nanobatch.yaml"
fi
if [ ! -e "$destdir/etc/nanobatch/serve.yaml" ]; then
  install -m 0640 configs/serve.yaml "$destdir/etc/nanobatch/serve.yaml"
  [ -z "$group" ] || chgrp "$group" "$destdir/etc/nanobatch/serve.yaml"
fi
if [ -z "$destdir" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "installed nanobatch in $destdir$prefix; now:"
echo "  install -m 0600 /dev/stdin $destdir/etc/nanobatch/api_key <<< 'sk-...'"
echo "  edit $destdir/etc/nanobatch/serve.yaml, then: systemctl enable --now nanobatch"
echo "  (or one run per config: /etc/nanobatch/NAME.yaml and systemctl start nanobatch@NAME)"
