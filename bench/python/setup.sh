#!/usr/bin/env bash
# Makes .venv-bench-py/ for bench/python/bench_python.py: pinned numpy, maturin and the
# embedded peers (LanceDB, Chroma, Qdrant's embedded engine `qdrant-edge-py`), then builds
# Sextant's Python package as a RELEASE wheel (`maturin build --release`: the workspace's
# release profile, thin LTO) and installs it into the venv, and builds the release CLI whose
# `sextant bench search` is the Rust-API baseline. Idempotent: pins already installed are not
# reinstalled; cargo and maturin rebuild only what changed.
#
# Not `maturin develop`: that writes the extension into python/sextant/ (an editable install),
# over the development build there; the wheel goes to .venv-bench-py/wheels/ instead.
#
# Usage: bash bench/python/setup.sh            (PYTHON=python3.x picks the interpreter;
#        SKIP_CLI=1 skips the CLI build, SKIP_WHEEL=1 the wheel build)
# Cold: about 10 minutes per build on the 2-vCPU machine; the two builds share most crates.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$ROOT/.venv-bench-py"
PYTHON="${PYTHON:-python3}"

PINS=(numpy==2.4.6 maturin==1.16.0)
PEER_PINS=(lancedb==0.40.0 pyarrow==26.0.1 pandas==3.1.1 chromadb==1.5.9 qdrant-edge-py==0.9.0)

pins_ok() {
    "$VENV/bin/python" - "$@" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
PY
}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
if pins_ok "${PINS[@]}" "${PEER_PINS[@]}"; then
    echo "pins up to date in $VENV"
else
    "$VENV/bin/pip" install --quiet "${PINS[@]}" "${PEER_PINS[@]}"
    pins_ok "${PINS[@]}" "${PEER_PINS[@]}" || { echo "pinned versions not installed as asked" >&2; exit 1; }
fi

if [ -z "${SKIP_CLI:-}" ]; then
    (cd "$ROOT" && cargo build --release -p sextant-cli)
fi
if [ -z "${SKIP_WHEEL:-}" ]; then
    rm -rf "$VENV/wheels"
    (cd "$ROOT/python" && "$VENV/bin/maturin" build --release -i "$VENV/bin/python" -o "$VENV/wheels")
    "$VENV/bin/pip" install --quiet --force-reinstall --no-deps "$VENV"/wheels/sextant-*.whl
fi

"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
for name in ("numpy", "maturin", "lancedb", "pyarrow", "pandas", "chromadb", "qdrant-edge-py", "sextant"):
    try:
        print(f"  {name} {version(name)}")
    except Exception as e:  # noqa: BLE001 - report and go on
        print(f"  {name}: not installed ({e})")
PY
