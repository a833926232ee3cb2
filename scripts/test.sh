#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this): set-up, formatting, lints,
# every test of every crate with cargo-nextest (each test in its own process: DPDK's EAL can be
# initialised only once per process), then a minute of coverage-guided fuzzing per fuzz target
# (scripts/fuzz.sh; FUZZ_SECONDS changes the minute, 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== rustfmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
cargo nextest run --workspace --no-fail-fast "$@"
if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
