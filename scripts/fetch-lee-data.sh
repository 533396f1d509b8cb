#!/usr/bin/env bash
# Builds the Lee news-similarity retrieval task in BEIR layout (idempotent):
#   data/text/lee/     corpus.jsonl: the bodies of the 50 Lee et al. (2005) news documents
#                      (each without its first sentence) -- every query-document pair judged;
#                      queries.jsonl: the 50 lead sentences; qrels/test.tsv: graded 1-3 from
#                      the averaged human similarity ratings (own body: 3); meta.json: sources
#                      with sha256, statistics
#   data/text/lee-bg/  the same plus the 300 background news documents in the corpus, as
#                      unjudged distractors
# Source: gensim's test data (gensim/test/test_data/lee.cor, lee_background.cor,
# similarities0-1.txt) from the PyPI wheel gensim==4.4.0 (LGPL-2.1), fetched with
# `pip download --no-deps` and unzipped (nothing is installed); the three files are checked
# against the sha256 recorded below, so a changed upstream file fails loudly. The wheel
# (~28 MB) is deleted after extraction; the raw files and gensim's licence stay in
# data/text/lee-src/. The conversion and every choice it makes are in scripts/lee_data.py;
# docs/datasets.md describes the set and its biases.
#
# Usage: bash scripts/fetch-lee-data.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
PKG="gensim==4.4.0"
# Any gensim 4.4.0 wheel carries the same test data; ask for one fixed file so the download
# does not depend on the local Python.
WHEEL_ARGS=(--only-binary :all: --platform manylinux_2_28_x86_64 --python-version 3.11
            --implementation cp --abi cp311)
FILES=(
  "lee.cor a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e"
  "lee_background.cor 5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb"
  "similarities0-1.txt 23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79"
)
SRC="$ROOT/data/text/lee-src"
FORCE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE=1; shift;;
        *) echo "unknown argument: $1" >&2; exit 2;;
    esac
done

have_sources() {
    local entry name sum
    for entry in "${FILES[@]}"; do
        read -r name sum <<<"$entry"
        [ -f "$SRC/$name" ] || return 1
        [ "$(sha256sum "$SRC/$name" | cut -d' ' -f1)" = "$sum" ] || return 1
    done
}

if ! have_sources; then
    echo "lee: fetching $PKG from PyPI"
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    "$PY" -m pip download --quiet --no-deps "${WHEEL_ARGS[@]}" -d "$TMP" "$PKG"
    WHEEL="$(ls "$TMP"/gensim-4.4.0-*.whl)"
    mkdir -p "$SRC"
    "$PY" - "$WHEEL" "$SRC" <<'EOF'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
want = {"gensim/test/test_data/lee.cor", "gensim/test/test_data/lee_background.cor",
        "gensim/test/test_data/similarities0-1.txt",
        "gensim-4.4.0.dist-info/licenses/COPYING"}
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    missing = want - names
    if missing:
        sys.exit(f"{wheel} lacks {sorted(missing)}")
    for n in sorted(want):
        with open(os.path.join(dest, os.path.basename(n)), "wb") as f:
            f.write(z.read(n))
EOF
    rm -rf "$TMP"
    trap - EXIT
    for entry in "${FILES[@]}"; do
        read -r name sum <<<"$entry"
        got="$(sha256sum "$SRC/$name" | cut -d' ' -f1)"
        if [ "$got" != "$sum" ]; then
            echo "lee: $name has sha256 $got, expected $sum (did $PKG change?)" >&2
            exit 1
        fi
    done
    echo "$PKG" >"$SRC/PACKAGE"
fi

build() {  # build OUT [--background]
    local out="$1"; shift
    local stamp="pkg=$PKG args=$* script=$(cksum <"$ROOT/scripts/lee_data.py" | cut -d' ' -f1)"
    if [ "$FORCE" = 0 ] && [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] \
        && [ -f "$out/corpus.jsonl" ] && [ -f "$out/queries.jsonl" ] && [ -f "$out/qrels/test.tsv" ]; then
        echo "$(basename "$out"): already built ($stamp)"
        "$PY" "$ROOT/scripts/lee_data.py" summary "$out"
    else
        echo "$(basename "$out"): building into $out"
        rm -f "$out/.stamp"
        "$PY" "$ROOT/scripts/lee_data.py" build --src "$SRC" --out "$out" --package "$PKG" "$@"
        echo "$stamp" >"$out/.stamp"
    fi
}
build "$ROOT/data/text/lee"
build "$ROOT/data/text/lee-bg" --background
