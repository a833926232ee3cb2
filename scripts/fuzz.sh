#!/usr/bin/env bash
# Runs every cargo-fuzz target of flowtable (flowtable/fuzz: packet_parser, pipeline,
# pipeline_stateful) for SECONDS each (default 60), coverage-guided by libFuzzer, with debug
# assertions (overflow checks) on, on the stable toolchain (--sanitizer none). Each starts from the
# seed inputs of flowtable::fuzzing (written into flowtable/fuzz/corpus/<target>/, which keeps
# what earlier runs found). A crash, a panic or an input running longer than 10 s fails the run:
# the input is left in flowtable/fuzz/artifacts/<target>/ and the log's end is printed.
#
#   scripts/fuzz.sh            # 60 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh 3600       # an hour per target
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
targets=(packet_parser pipeline pipeline_stateful)
logs="$PWD/target/fuzz-logs"
mkdir -p "$logs"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: cargo-fuzz is missing (scripts/setup.sh installs it)" >&2
  exit 1
fi
cargo run --quiet -p flowtable --example fuzz_seeds -- flowtable/fuzz/corpus >/dev/null

cd flowtable
fuzz=(--sanitizer none --debug-assertions)
echo "== fuzz: building ${targets[*]}"
cargo fuzz build "${fuzz[@]}" 2>"$logs/build.log" || { tail -n 40 "$logs/build.log" >&2; exit 1; }
for target in "${targets[@]}"; do
  log="$logs/$target.log"
  if cargo fuzz run "${fuzz[@]}" "$target" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    echo "== fuzz $target: ${runs:-?} inputs in ${seconds} s, ${coverage:-cov: ?} edges, corpus $corpus, no failure"
  else
    echo "== fuzz $target FAILED (log: $log; the input is in flowtable/fuzz/artifacts/$target/):" >&2
    grep -v '^"' "$log" | tail -n 40 >&2
    exit 1
  fi
done
