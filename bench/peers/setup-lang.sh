#!/usr/bin/env bash
# Creates .venv-lang/ with pinned versions of what the language work compares Sextant against:
#   tantivy (tantivy-py; its Snowball stemmers and stop-word lists: scripts/tantivy_analyzers.py,
#   bench/peers/bm25_lang.py), bm25s + PyStemmer (BM25 with Snowball stemmers), ranx (IR
#   metrics), lingua-language-detector and langdetect (language identification peers,
#   bench/peers/langid.py).
# Idempotent: does nothing when the pinned versions are already installed.
#
# Usage: bash bench/peers/setup-lang.sh [PACKAGE ...]   (PYTHON=python3.x to pick the interpreter)
#   PACKAGE: install only these of the pins (e.g. `tantivy`, what scripts/tantivy_analyzers.py
#   needs); default all
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$ROOT/.venv-lang"
PYTHON="${PYTHON:-python3}"
# ranx 0.3.20 as in bench/eval/ranx_reference.py; numpy as in bench/peers/setup.sh
PINS=(tantivy==0.27.0 bm25s==0.3.16 PyStemmer==3.1.0 ranx==0.3.20 numpy==2.4.6
      lingua-language-detector==2.1.1 langdetect==1.0.9)

if [ $# -gt 0 ]; then
    WANT=()
    for name in "$@"; do
        for pin in "${PINS[@]}"; do [ "${pin%%==*}" = "$name" ] && WANT+=("$pin"); done
    done
    [ ${#WANT[@]} -eq $# ] || { echo "not among the pins: $*" >&2; exit 2; }
    PINS=("${WANT[@]}")
fi

pins_ok() {
    "$VENV/bin/python" - "$@" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
EOF
}

if [ -x "$VENV/bin/python" ] && pins_ok "${PINS[@]}"; then
    echo "lang venv up to date: $VENV"
else
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
    pins_ok "${PINS[@]}" || { echo "pinned versions not installed as asked" >&2; exit 1; }
    for pin in "${PINS[@]}"; do echo "  $pin"; done
fi
