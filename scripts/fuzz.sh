#!/usr/bin/env bash
# Runs every cargo-fuzz target of flowtable (flowtable/fuzz: packet_parser, pipeline,
# pipeline_stateful) for SECONDS each (default 60), coverage-guided by libFuzzer, with debug
# assertions (overflow checks) on, on the stable toolchain (--sanitizer none). Each starts from the
# seed inputs of flowtable::fuzzing (written into flowtable/fuzz/corpus/<target>/, the working
# corpus, not committed, which keeps what earlier runs here found) and from the committed corpus
# flowtable/fuzz/kept/<target>/ (what long runs found, minimized), so a minute on a fresh clone
# starts deep. A crash, a panic or an input running longer than 10 s fails the run: the input is
# left in flowtable/fuzz/artifacts/<target>/ and the log's end is printed.
#
#   scripts/fuzz.sh            # 60 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh 3600       # an hour per target
#   scripts/fuzz.sh keep       # after a long run: merge the working corpus into kept/ (only the
#                              # inputs that add coverage), to commit
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(packet_parser pipeline pipeline_stateful)
logs="$PWD/target/fuzz-logs"
mkdir -p "$logs"
fuzz=(--sanitizer none --debug-assertions)
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: cargo-fuzz is missing (scripts/setup.sh installs it)" >&2
  exit 1
fi

if [[ "${1:-}" == keep ]]; then
  cd flowtable
  for target in "${targets[@]}"; do
    merged="fuzz/kept/$target.merging"
    rm -rf "$merged" && mkdir -p "$merged" "fuzz/kept/$target" "fuzz/corpus/$target"
    # libFuzzer's merge: into the first directory, every input of the others that adds coverage.
    cargo fuzz run "${fuzz[@]}" "$target" "$merged" "fuzz/kept/$target" "fuzz/corpus/$target" -- -merge=1 \
      >"$logs/keep-$target.log" 2>&1 || { tail -n 20 "$logs/keep-$target.log" >&2; exit 1; }
    rm -rf "fuzz/kept/$target" && mv "$merged" "fuzz/kept/$target"
    echo "== fuzz keep $target: $(find "fuzz/kept/$target" -type f | wc -l) inputs kept"
  done
  exit 0
fi

seconds="${1:-60}"
# libFuzzer takes -max_total_time=0 as no limit: 0 would fuzz forever.
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( 10#$seconds == 0 )); then
  echo "scripts/fuzz.sh: expected seconds per target (1 or more) or 'keep', got '$seconds'" >&2
  exit 2
fi

cargo run --quiet -p flowtable --example fuzz_seeds -- flowtable/fuzz/corpus >/dev/null

cd flowtable
echo "== fuzz: building ${targets[*]}"
cargo fuzz build "${fuzz[@]}" 2>"$logs/build.log" || { tail -n 40 "$logs/build.log" >&2; exit 1; }
for target in "${targets[@]}"; do
  log="$logs/$target.log"
  # New inputs go to the first directory, the working corpus; kept/ is only read.
  if cargo fuzz run "${fuzz[@]}" "$target" "fuzz/corpus/$target" "fuzz/kept/$target" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
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
