#!/usr/bin/env bash
# Benchmarks (not part of set-up): midogw beside dpdk-testpmd on the same DPDK virtual devices,
# interleaved rounds, plus instructions per packet under callgrind. Writes results.json,
# results.md and results.png under perf/results/<date>-<group>/ (or --out DIR). See perf/README.md.
#
#   scripts/bench.sh                  every group: cross-connect, gateway, tunnel (issue 4's scenarios)
#   scripts/bench.sh tunnel           one group, with --callgrind and the default --out
#   scripts/bench.sh ARGS...          anything else goes to `midogw-perf run` as given
#                                     (e.g. `scripts/bench.sh cross-connect-64 --rounds 9`)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p midogw -p perf
group() {
  target/release/midogw-perf run "$1" --callgrind --out "perf/results/$(date -u +%F)-$1"
}
if [ "$#" -eq 0 ]; then
  group cross-connect
  group gateway
  group tunnel
elif [ "$#" -eq 1 ] && { [ "$1" = cross-connect ] || [ "$1" = gateway ] || [ "$1" = tunnel ]; }; then
  group "$1"
else
  exec target/release/midogw-perf run "$@"
fi
