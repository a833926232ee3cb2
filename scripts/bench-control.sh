#!/usr/bin/env bash
# Control-plane benchmarks (not part of set-up): REST reads/writes per second and latency against
# the appliance binary, REST write to the cores, snapshot build time and memory at 10,000 routers.
# Writes control.json, control.md and COMMAND under perf/results/<date>-control/ (or --out DIR).
# Extra arguments go to `midogw-perf control` (e.g. `--only snapshot`). See perf/README.md.
# Builds into and runs from $CARGO_TARGET_DIR when it is set (default: target/), like cargo itself.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p midogw -p perf
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l >= 1.0) }'; then
  echo "warning: load average $load: other work will skew the figures" >&2
fi
has_out=0
for a in "$@"; do [ "$a" = "--out" ] && has_out=1; done
if [ "$has_out" -eq 0 ]; then
  set -- "$@" --out "perf/results/$(date -u +%F)-control"
fi
exec "${CARGO_TARGET_DIR:-target}/release/midogw-perf" control "$@"
