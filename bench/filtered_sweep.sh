#!/usr/bin/env bash
# Filtered search over a sweep of selectivities on three data sets, Sextant only: the issue-19
# bar compares each selectivity's best QPS at recall@10 >= 0.95 with the unfiltered search's.
#
#   bash bench/filtered_sweep.sh OUT_DIR [SEXTANT]
#
# Needs scripts/fetch-ann-data.sh fashion-mnist glove, bench/peers/setup.sh (numpy) and
# scripts/make-clustered.py --n 100000 --dim 384 --queries 1000 --out data/ann/clustered-100k.
# Makes the filter data once per set (bench/filtered_data.py), then runs `sextant bench filtered`
# (one import and index build per set, median of 3 runs per ef) and writes OUT_DIR/<set>.{json,md}.
set -euo pipefail
OUT=${1:?usage: bench/filtered_sweep.sh OUT_DIR [SEXTANT]}
SEXTANT=${2:-target/release/sextant}
PY=.venv-peers/bin/python
mkdir -p "$OUT"
run() { # set, selectivities, ef list
  local set=$1 sels=$2 ef=$3 dir=data/filtered/$1-sweep
  if [ ! -f "$dir/meta.json" ] || [ "$(cat "$dir/.selectivities" 2>/dev/null)" != "$sels" ]; then
    "$PY" bench/filtered_data.py "$set" --selectivities "$sels" --out-dir "$dir"
    echo "$sels" > "$dir/.selectivities"
  fi
  local base metric
  base=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['base'])" "$dir/meta.json")
  metric=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['metric'])" "$dir/meta.json")
  "$SEXTANT" bench filtered --base "$base" --queries "$dir/queries.fvecs" \
    --payloads "$dir/payloads.jsonl" --filters "$dir/meta.json" --gt-dir "$dir" \
    --metric "$metric" --k 10 --ef "$ef" --runs 3 \
    --json "$OUT/$set.json" --markdown "$OUT/$set.md"
}
# ef below k (10) applies to filtered walks only (they stop at their ef-th match and still
# return k); unfiltered searches raise it to k.
run fashion-mnist 1,3,5,10,20,50 3,4,5,6,8,10,16,24,32,48,64
run glove 1,2,5,10,20,50 5,8,10,16,24,32,48,64,96,128,192
run clustered-100k 1,3,5,10,20,50 5,8,10,16,24,32,48,64,96
