#!/usr/bin/env bash
# Builds the text-retrieval data sets into data/text/ (idempotent):
#   gcide/   WordNet-gloss -> GCIDE-headword task in BEIR format:
#            corpus.jsonl (one document per GCIDE headword, ~103k),
#            queries.jsonl (a seeded sample of WordNet 3.0 glosses),
#            qrels/test.tsv, meta.json (how it was built, statistics)
#   gcide-5k/, gcide-5k-q500/   5,000-document subset (every relevant document plus
#            seeded others) and its first 500 queries, for the end-to-end document runs
#   gcide-s7/, gcide-s7-5k/     a second judged set (1,000 glosses, seed 7) and its
#            5,000-document subset, for re-checking the default fusion
#   gcide-train/  a training set for fine-tuning (7,600 glosses, about 10,000 pairs, seed 11; qrels/train.tsv),
#            disjoint from gcide/ and gcide-s7/ (and so from their subsets): none of their
#            queries, no query sharing a relevant headword with them, and the corpus without
#            any document judged relevant in them (text_data.py train-split)
# Sources are Debian packages, installed with apt-get when missing:
#   dict-gcide (/usr/share/dictd/gcide.{index,dict.dz}), wordnet-base
#   (/usr/share/wordnet/data.*), and python3.11-doc (reST sources of the Python
#   docs under /usr/share/doc/python3.11/html/_sources; not used by gcide/, kept
#   for a later second corpus; skip it with NO_PYTHON_DOC=1).
# The conversion lives in scripts/text_data.py (standard library only; its
# docstring documents every choice). The build is redone only when its
# parameters or the package versions change, or with --force (gcide-train/ also when the
# evaluation sets it excludes change).
#
# Usage: bash scripts/fetch-text-data.sh [--queries N] [--seed S] [--keep-wordnet-senses] [--force]
set -euo pipefail

QUERIES=2000
SEED=42
KEEP=""
FORCE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --queries) QUERIES="$2"; shift 2;;
        --seed) SEED="$2"; shift 2;;
        --keep-wordnet-senses) KEEP="--keep-wordnet-senses"; shift;;
        --force) FORCE=1; shift;;
        *) echo "unknown argument: $1" >&2; exit 2;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/data/text/gcide"
PY="${PYTHON:-python3}"

PKGS=(dict-gcide wordnet-base)
[ "${NO_PYTHON_DOC:-0}" = 1 ] || PKGS+=(python3.11-doc)
MISSING=()
for p in "${PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || MISSING+=("$p")
done
if [ ${#MISSING[@]} -gt 0 ]; then
    echo "installing Debian packages: ${MISSING[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${MISSING[@]}"; then
        apt-get update
        apt-get install -y --no-install-recommends "${MISSING[@]}"
    fi
fi

for f in /usr/share/dictd/gcide.index /usr/share/dictd/gcide.dict.dz /usr/share/wordnet/data.noun; do
    [ -f "$f" ] || { echo "missing $f (is the Debian package installed?)" >&2; exit 1; }
done

STAMP="queries=$QUERIES seed=$SEED keep=${KEEP:-no} gcide=$(dpkg-query -W -f='${Version}' dict-gcide) wordnet=$(dpkg-query -W -f='${Version}' wordnet-base) script=$(cksum <"$ROOT/scripts/text_data.py" | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] && [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP" ] \
    && [ -f "$OUT/corpus.jsonl" ] && [ -f "$OUT/queries.jsonl" ] && [ -f "$OUT/qrels/test.tsv" ]; then
    echo "gcide: already built ($STAMP)"
    "$PY" "$ROOT/scripts/text_data.py" summary "$OUT"
else
    echo "gcide: building into $OUT"
    mkdir -p "$OUT"
    rm -f "$OUT/.stamp"
    "$PY" "$ROOT/scripts/text_data.py" gcide --out "$OUT" --queries "$QUERIES" --seed "$SEED" $KEEP
    echo "$STAMP" >"$OUT/.stamp"
fi
# The 5,000-document subset the end-to-end document benchmarks ingest (every relevant document
# plus seeded random others), and its first 500 queries for the slow rerank runs.
"$PY" "$ROOT/scripts/text_data.py" subset "$OUT" --out "$OUT-5k" --docs 5000 --seed 5
"$PY" "$ROOT/scripts/text_data.py" subset "$OUT-5k" --out "$OUT-5k-q500" --docs 5000 --queries 500
# A second judged set for checking the default fusion: 1,000 other glosses (seed 7; 26 of them
# are also in the first set) over another 5,000-document subset.
if [ ! -f "$OUT-s7-5k/qrels/test.tsv" ] || [ "$FORCE" = 1 ]; then
    "$PY" "$ROOT/scripts/text_data.py" gcide --out "$OUT-s7" --queries 1000 --seed 7 $KEEP
    "$PY" "$ROOT/scripts/text_data.py" subset "$OUT-s7" --out "$OUT-s7-5k" --docs 5000 --seed 7
fi
# The training set for fine-tuning, disjoint from both evaluation sets above (and so from their
# subsets); rebuilt when the evaluation sets, the script or the packages change.
TRAIN="$OUT-train"
EXCLUDED=("$OUT" "$OUT-s7")
EX_ARGS=()
for d in "${EXCLUDED[@]}"; do EX_ARGS+=(--exclude "$d"); done
TRAIN_STAMP="queries=7600 seed=11 keep=${KEEP:-no} gcide=$(dpkg-query -W -f='${Version}' dict-gcide) wordnet=$(dpkg-query -W -f='${Version}' wordnet-base) script=$(cksum <"$ROOT/scripts/text_data.py" | cut -d' ' -f1) excluded=$(for d in "${EXCLUDED[@]}"; do cat "$d/queries.jsonl" "$d/qrels/test.tsv"; done | cksum | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] && [ -f "$TRAIN/.stamp" ] && [ "$(cat "$TRAIN/.stamp")" = "$TRAIN_STAMP" ] \
    && [ -f "$TRAIN/corpus.jsonl" ] && [ -f "$TRAIN/queries.jsonl" ] && [ -f "$TRAIN/qrels/train.tsv" ]; then
    echo "gcide-train: already built ($TRAIN_STAMP)"
    "$PY" "$ROOT/scripts/text_data.py" summary "$TRAIN"
else
    echo "gcide-train: building into $TRAIN"
    mkdir -p "$TRAIN"
    rm -f "$TRAIN/.stamp"
    "$PY" "$ROOT/scripts/text_data.py" train-split --out "$TRAIN" --queries 7600 --seed 11 $KEEP \
        "${EX_ARGS[@]}"
    echo "$TRAIN_STAMP" >"$TRAIN/.stamp"
fi
