#!/usr/bin/env bash
# IVF-PQ code layouts against faiss at equal bytes of code per vector: 4-bit fast-scan codes,
# 8-bit codes, and each after an OPQ rotation, on Fashion-MNIST (49 bytes: 98 4-bit or 49 8-bit
# sub-quantisers) and GloVe (13 bytes: 25 4-bit or 13 8-bit). Each layout is one
# bench/compare_ivf.py run (the same lists, sub-quantisers, code width, rotation and
# nprobe × ef grid for both systems; one thread; median of 3).
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
for layout in "4bit:--pq-bits 4" "4bit-opq:--pq-bits 4 --opq" "8bit:--pq-bits 8" "8bit-opq:--pq-bits 8 --opq"; do
    tag=${layout%%:*}
    flags=${layout#*:}
    fashion_m=98; glove_m=25
    if [[ $tag == 8bit* ]]; then fashion_m=49; glove_m=13; fi
    # shellcheck disable=SC2086
    "$PY" bench/compare_ivf.py --dataset fashion-mnist --pq-m $fashion_m $flags --tag "$tag" \
        --nprobe 2,4,8,16 --ef 20,50,100 --runs 3 --out-dir "$OUT"
    # shellcheck disable=SC2086
    "$PY" bench/compare_ivf.py --dataset glove --pq-m $glove_m $flags --tag "$tag" \
        --nprobe 16,32,64,128 --ef 50,100,200,400 --runs 3 --out-dir "$OUT"
done
