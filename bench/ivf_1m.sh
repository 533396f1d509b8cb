#!/usr/bin/env bash
# The memory layout of issue 19 at scale: 1,000,000 × 384-d clustered synthetic vectors
# (scripts/make-clustered.py; no real embedding set of that size fits here), an ivf_pq
# collection with its vectors on disk, then
#   - three reopenings (a new process each): open time, RSS and peak RSS;
#   - one reopening with searches over an nprobe × ef grid (recall@10, QPS, one thread) and the
#     memory after them; one more after dropping the page cache (cold first pass; root only);
#   - faiss IVF-PQ fast scan on the same vectors, lists and sub-quantisers, with exact
#     refinement (its f32 vectors in memory) and without (codes only: the same memory as ours).
#
#   bash bench/ivf_1m.sh OUT [SEXTANT]        (OUT: results directory; SEXTANT: target/release/sextant)
#
# Needs .venv-peers (bash bench/peers/setup.sh). Data in data/ann/clustered-1m (1.5 GB),
# the collection in $BENCH_DATA (default /work/bench-ivf-1m, removed first).
set -euo pipefail
OUT=${1:?results directory}
SEXTANT=${2:-target/release/sextant}
PY=.venv-peers/bin/python
D=data/ann/clustered-1m
DATA=${BENCH_DATA:-/work/bench-ivf-1m}
NLIST=1000
PQ_M=96
mkdir -p "$OUT"
[ -f $D/base.npy ] || $PY scripts/make-clustered.py --n 1000000 --dim 384 --queries 1000 --out $D
[ -f $D/gt.ivecs ] || "$SEXTANT" bench gt --base $D/base.npy --queries $D/queries.npy --metric cosine --k 100 --out $D/gt.ivecs
rm -rf "$DATA"
"$SEXTANT" bench import --base $D/base.npy --metric cosine --index ivf_pq --nlist $NLIST --pq-m $PQ_M \
    --on-disk --data "$DATA" --json "$OUT/import.json" | tee "$OUT/import.txt"
for i in 1 2 3; do
    "$SEXTANT" bench open --data "$DATA" --json "$OUT/open-$i.json" | tee "$OUT/open-$i.txt"
done
"$SEXTANT" bench open --data "$DATA" --queries $D/queries.npy --gt $D/gt.ivecs \
    --nprobe 16,32,64,128 --ef 100,200,400 --runs 3 --json "$OUT/search.json" | tee "$OUT/search.txt"
# Cold: the page cache dropped (root only), so the first pass reads every vector it rescores
# from disk; its "first pass" line is the cold figure, the grid after it warm again.
if sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    "$SEXTANT" bench open --data "$DATA" --queries $D/queries.npy --gt $D/gt.ivecs \
        --nprobe 32 --ef 100 --runs 1 --json "$OUT/cold.json" | tee "$OUT/cold.txt"
else
    echo "cannot drop the page cache here: no cold run" | tee "$OUT/cold.txt"
fi
rm -rf "$DATA"
$PY bench/peers/ann.py --base $D/base.npy --queries $D/queries.npy --gt $D/gt.ivecs --metric cosine \
    --systems faiss-ivfpq --nlist $NLIST --pq-m $PQ_M --nprobe 16,32,64,128 --ef 100,200,400 --runs 3 \
    --json "$OUT/faiss-refine.json" 2>&1 | tee "$OUT/faiss-refine.txt"
$PY bench/peers/ann.py --base $D/base.npy --queries $D/queries.npy --gt $D/gt.ivecs --metric cosine \
    --systems faiss-ivfpq-noref --nlist $NLIST --pq-m $PQ_M --nprobe 16,32,64,128,256 --ef 10 --runs 3 \
    --json "$OUT/faiss-noref.json" 2>&1 | tee "$OUT/faiss-noref.txt"
