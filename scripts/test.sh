#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this): set-up, formatting, lints,
# then every test of every crate with cargo-nextest (each test in its own process: DPDK's EAL can
# be initialised only once per process).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== rustfmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
cargo nextest run --workspace --no-fail-fast "$@"
