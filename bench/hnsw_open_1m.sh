#!/usr/bin/env bash
# Opening an in-memory HNSW collection of 1,000,000 × 384-d vectors, whose index file (format v3)
# is used in place from its mapping: the clustered synthetic vectors of bench/ivf_1m.sh
# (scripts/make-clustered.py), the default layout (HNSW, SQ8 walk, vectors in the index file), then
#   - three reopenings (a new process each): open time, RSS and peak RSS;
#   - one reopening with searches over an ef grid (recall@10, QPS, one thread) and the memory
#     after them;
#   - one reopening after dropping the page cache (root only): a cold open reads the whole index
#     file for its checksum.
#
#   bash bench/hnsw_open_1m.sh OUT [SEXTANT]   (OUT: results directory; SEXTANT: target/release/sextant)
#
# Needs .venv-peers (bash bench/peers/setup.sh) for the data. Data in data/ann/clustered-1m
# (1.5 GB), the collection in $BENCH_DATA (default /work/bench-hnsw-1m, removed first).
set -euo pipefail
OUT=${1:?results directory}
SEXTANT=${2:-target/release/sextant}
PY=.venv-peers/bin/python
D=data/ann/clustered-1m
DATA=${BENCH_DATA:-/work/bench-hnsw-1m}
mkdir -p "$OUT"
[ -f $D/base.npy ] || $PY scripts/make-clustered.py --n 1000000 --dim 384 --queries 1000 --out $D
[ -f $D/gt.ivecs ] || "$SEXTANT" bench gt --base $D/base.npy --queries $D/queries.npy --metric cosine --k 100 --out $D/gt.ivecs
rm -rf "$DATA"
"$SEXTANT" bench import --base $D/base.npy --metric cosine --ef-construction 64 --data "$DATA" \
    --json "$OUT/import.json" | tee "$OUT/import.txt"
for i in 1 2 3; do
    "$SEXTANT" bench open --data "$DATA" --json "$OUT/open-$i.json" | tee "$OUT/open-$i.txt"
done
"$SEXTANT" bench open --data "$DATA" --queries $D/queries.npy --gt $D/gt.ivecs \
    --ef 32,64,128,256,512 --runs 3 --json "$OUT/search.json" | tee "$OUT/search.txt"
if sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    "$SEXTANT" bench open --data "$DATA" --queries $D/queries.npy --gt $D/gt.ivecs \
        --ef 128 --runs 1 --json "$OUT/cold.json" | tee "$OUT/cold.txt"
else
    echo "cannot drop the page cache here: no cold run" | tee "$OUT/cold.txt"
fi
