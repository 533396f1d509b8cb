#!/usr/bin/env bash
# IVF-PQ code layouts against faiss: 4-bit fast-scan codes, 4-bit codes after an OPQ rotation,
# and 8-bit codes, on Fashion-MNIST (49 bytes a vector: 98 4-bit or 49 8-bit sub-quantisers) and GloVe
# (13 bytes with 25 4-bit sub-quantisers; 10 bytes with 10 8-bit ones, as faiss's 8-bit PQ
# needs the dimension, 50, to be a multiple of the sub-quantisers). Each layout is one
# bench/compare_ivf.py run (the same lists, sub-quantisers, code width, rotation and
# nprobe × ef grid for both systems; one thread; median of 3). A layout whose
# OUT/<dataset>-<layout>-ivf-compare.json exists is skipped (rerun after a failure resumes).
#
#   bash bench/ivf_codes.sh OUT      (after bash scripts/fetch-ann-data.sh fashion-mnist glove
#                                     and bash bench/peers/setup.sh)
set -euo pipefail
OUT=${1:?results directory}
PY=${PY:-.venv-peers/bin/python}
mkdir -p "$OUT"
# The exact ground truth of bench/results/ivf (same data and queries), when there.
for d in fashion-mnist glove; do
    [[ -f bench/results/ivf/$d-gt.ivecs && ! -f $OUT/$d-gt.ivecs ]] && cp "bench/results/ivf/$d-gt.ivecs" "$OUT/"
done
# (8-bit codes with OPQ are compared for Sextant alone, at the end: faiss's OPQ training at 8
# bits ran past 8 minutes of CPU on Fashion-MNIST, against 36 s for our whole build, and was
# stopped.)
for layout in "4bit:--pq-bits 4" "4bit-opq:--pq-bits 4 --opq" "8bit:--pq-bits 8"; do
    tag=${layout%%:*}
    flags=${layout#*:}
    fashion_m=98; glove_m=25
    if [[ $tag == 8bit* ]]; then fashion_m=49; glove_m=10; fi
    # shellcheck disable=SC2086
    [[ -f $OUT/fashion-mnist-$tag-ivf-compare.json ]] ||
    "$PY" bench/compare_ivf.py --dataset fashion-mnist --pq-m $fashion_m $flags --tag "$tag" \
        --nprobe 2,4,8,16 --ef 20,50,100 --runs 3 --out-dir "$OUT"
    # shellcheck disable=SC2086
    [[ -f $OUT/glove-$tag-ivf-compare.json ]] ||
    "$PY" bench/compare_ivf.py --dataset glove --pq-m $glove_m $flags --tag "$tag" \
        --nprobe 16,32,64,128 --ef 50,100,200,400 --runs 3 --out-dir "$OUT"
done
# 8-bit codes with OPQ, Sextant only (the same command compare_ivf.py runs for its Sextant side).
[[ -f $OUT/fashion-mnist-8bit-opq-ivf-sextant.json ]] ||
"${SEXTANT:-target/release/sextant}" bench ann --index ivf_pq \
    --base data/ann/fashion-mnist-784-euclidean/base.fvecs \
    --queries data/ann/fashion-mnist-784-euclidean/queries.fvecs \
    --gt "$OUT/fashion-mnist-gt.ivecs" --metric l2 --k 10 --runs 3 --nprobe 2,4,8,16 \
    --ef 20,50,100 --nlist 0 --pq-m 49 --pq-bits 8 --opq \
    --json "$OUT/fashion-mnist-8bit-opq-ivf-sextant.json"
