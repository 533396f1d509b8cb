#!/usr/bin/env bash
# Scores a trained cross-encoder as hybrid's reranker on a judged BEIR set with `sextant eval`:
# the corpus is ingested with all-MiniLM-L6-v2 (dense + BM25, no SPLADE) and optimized into one
# HNSW segment, then `hybrid` and `hybrid-ce` (hybrid's top RERANK_TOP chunks reranked) run
# over the same queries, paired in a randomisation test (`--compare-to hybrid`).
#
#   [DEPTH=20] [RERANK_TOP=20] [BLENDS="0.2 0.3"] [SEXTANT=PATH] \
#       bash bench/finetune_ce_eval.sh OUT SET CROSS_ENCODER
#
# BLENDS adds one configuration a weight, `hybrid-ce-wW` (`rerank_blend=W`: the reranked head
# placed by W · cross-encoder rank + (1 − W) · hybrid rank), each compared with hybrid too.
#
# `sextant eval` orders each run by score. Before the engine kept the un-reranked tail below
# the reranked head in score (the fix after 760b539), a cross-encoder's negative logits put
# reranked documents under the fusion-scored tail, and eval's hybrid-ce row was not the order
# the engine returns. bench/rerank_order.py rebuilds that order from the runs and scores it
# against hybrid (OUT/rerank_order.txt and .json), with its own paired randomisation test: a
# cross-check that the two now agree. The metrics are cut at DEPTH (nDCG@10, recall@10 and
# @20, MRR@10, hit rate@10).
#
# The data directory (DATA=, default target/finetune-eval/ce-<basename of SET>) is ingested
# once, with MODEL= (default models/all-MiniLM-L6-v2) as the dense model, and reused by later
# runs on the same corpus (REBUILD=1 ingests again; a run naming another MODEL than the one the
# directory was ingested with is refused: give it its own DATA=). Writes
# OUT/report.md, OUT/report.json, OUT/rerank_order.{txt,json} (and, with KEEP_RUNS=1, OUT/runs/).
set -euo pipefail
OUT=${1:?results directory}
SET=${2:?BEIR folder with qrels/test.tsv}
CE=${3:?cross-encoder directory}
S=${SEXTANT:-target/release/sextant}
DEPTH=${DEPTH:-20}
TOP=${RERANK_TOP:-20}
DATA=${DATA:-target/finetune-eval/ce-$(basename "$SET")}
MODEL=${MODEL:-models/all-MiniLM-L6-v2}
HERE=$(dirname "$0")
mkdir -p "$OUT"
if [ "${REBUILD:-0}" = 1 ] || [ ! -f "$DATA/.ingested" ]; then
    rm -rf "$DATA"
    "$S" --data "$DATA" --durability 100ms ingest base --jsonl "$SET/corpus.jsonl" --no-splade \
        --model "$MODEL"
    "$S" --data "$DATA" collection optimize base
    echo "$MODEL" > "$DATA/.ingested"
fi
INGESTED=$(cat "$DATA/.ingested")
# Directories ingested before the model was recorded hold the default model.
if [ "${INGESTED:-models/all-MiniLM-L6-v2}" != "$MODEL" ]; then
    echo "$DATA was ingested with $INGESTED, not $MODEL: set DATA= to another directory" >&2
    exit 2
fi
BLEND_CONFIGS=()
for w in ${BLENDS:-}; do
    BLEND_CONFIGS+=(--config "hybrid-ce-w$w=mode=hybrid;rerank=$CE;rerank_top=$TOP;rerank_blend=$w")
done
/usr/bin/time -f "eval wall %e s" "$S" --data "$DATA" eval base --beir "$SET" --config hybrid \
    --config "hybrid-ce=mode=hybrid;rerank=$CE;rerank_top=$TOP" "${BLEND_CONFIGS[@]}" --compare-to hybrid \
    --depth "$DEPTH" --metrics ndcg@10,recall@10,recall@20,mrr@10,hit_rate@10 --out "$OUT"
python3 "$HERE/rerank_order.py" "$SET/qrels/test.tsv" "$OUT/runs/hybrid.trec" \
    "$OUT/runs/hybrid-ce.trec" --json "$OUT/rerank_order.json" | tee "$OUT/rerank_order.txt"
rm -f "$OUT/per-query.json"
[ "${KEEP_RUNS:-0}" = 1 ] || rm -rf "$OUT/runs"
