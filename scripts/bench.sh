#!/usr/bin/env bash
# Benchmarks (not part of set-up): midogw beside dpdk-testpmd on the same DPDK virtual devices,
# interleaved rounds, plus instructions per packet under callgrind. Writes results.json,
# results.md and results.png under perf/results/<date>-<group>/ (or --out DIR). Extra arguments go
# to `midogw-perf run` (e.g. `scripts/bench.sh cross-connect-64 --rounds 9`). See perf/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p midogw -p perf
if [ "$#" -eq 0 ]; then
  set -- cross-connect --callgrind --out "perf/results/$(date -u +%F)-cross-connect"
fi
exec target/release/midogw-perf run "$@"
