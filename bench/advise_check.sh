#!/usr/bin/env bash
# Does `collection advise` tell the truth? On a data set, in one run:
#   1. predict: advise from a 20% sample, planning for the whole collection;
#   2. full:    advise measuring on (nearly) the whole collection — what the projections of 1.
#               should have said;
#   3. real:    create the layout 1. recommended as a real collection, reopen it and search at
#               the advised setting (`bench open`): RSS, recall@10 and QPS of the real thing.
# bench/advise_summary.py compares the three (Markdown + JSON).
#
#   bash bench/advise_check.sh OUT [SEXTANT]     (OUT: results directory)
#
# Data: data/ann/clustered-100k (scripts/make-clustered.py, 100,000 x 384-d cosine, its own
# 1,000 queries) and Fashion-MNIST (bash scripts/fetch-ann-data.sh fashion-mnist; 60,000 x
# 784 l2, its first 1,000 queries). Collections in $BENCH_DATA (default /work/bench-advise,
# removed first and after).
set -euo pipefail
OUT=${1:?results directory}
SEXTANT=${2:-target/release/sextant}
PY=${PY:-.venv-peers/bin/python}
DATA=${BENCH_DATA:-/work/bench-advise}
QUERIES=500
mkdir -p "$OUT"

run_set() { # name base queries metric sample_fraction_points
    local name=$1 base=$2 queries=$3 metric=$4 sample=$5 n=$6
    local gt="$OUT/$name-gt.ivecs"
    rm -rf "$DATA"
    "$SEXTANT" bench gt --base "$base" --queries "$queries" --metric "$metric" --k 10 --out "$gt" >/dev/null
    "$SEXTANT" bench import --base "$base" --metric "$metric" --index flat --data "$DATA" \
        --durability 1s >/dev/null
    "$SEXTANT" --data "$DATA" --json collection advise bench --sample "$sample" --points "$n" \
        --queries-file "$queries" --queries $QUERIES > "$OUT/$name-predict.json"
    "$SEXTANT" --data "$DATA" --json collection advise bench --sample "$n" \
        --queries-file "$queries" --queries $QUERIES > "$OUT/$name-full.json"
    # The recommended layout of the prediction, for real.
    IFS=$'\t' read -r flags search < <(python3 bench/advise_summary.py --import-flags "$OUT/$name-predict.json")
    rm -rf "$DATA"
    # shellcheck disable=SC2086
    "$SEXTANT" bench import --base "$base" --metric "$metric" $flags --data "$DATA" \
        --durability 1s --json "$OUT/$name-real-import.json" >/dev/null
    # shellcheck disable=SC2086
    "$SEXTANT" bench open --data "$DATA" --queries "$queries" --gt "$gt" $search --runs 3 \
        --json "$OUT/$name-real.json" | tee "$OUT/$name-real.txt"
    rm -rf "$DATA"
}

[ -f data/ann/clustered-100k/base.npy ] || \
    $PY scripts/make-clustered.py --n 100000 --dim 384 --queries 1000 --out data/ann/clustered-100k
run_set clustered data/ann/clustered-100k/base.npy data/ann/clustered-100k/queries.npy cosine 20000 100000
F=data/ann/fashion-mnist-784-euclidean
run_set fashion $F/base.fvecs $F/queries.fvecs l2 12000 60000
python3 bench/advise_summary.py --out "$OUT" clustered fashion | tee "$OUT/summary.md"
