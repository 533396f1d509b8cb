#!/usr/bin/env bash
# The committed evaluation reports of the Lee news-similarity task (docs/datasets.md): 50
# lead-sentence queries graded by averaged human similarity ratings, over
#   eval-lee/     the 50 document bodies alone (every query-document pair judged; 50 documents,
#                 so the cut-offs stop at 50: ndcg@10/@20, recall@10/@20, mrr@10, map@50,
#                 precision@10, hit_rate@10)
#   eval-lee-bg/  the same plus the 300 background news documents as unjudged distractors (the
#                 default metrics, depth 100, as the GCIDE report)
# with the configurations of bench/eval/gcide_report.sh: the baselines (random, BM25, exact
# dense), the approximate dense index, the default hybrid, hybrid with RRF and the fusion-weight
# sweep (hybrid with dense weight w = 0.0, 0.1, ..., 1.0 and BM25 weight 1 - w: sweep-w0.00 ...
# sweep-w1.00), compared with BM25.
#
#   bash bench/eval/lee_report.sh [OUT_ROOT]      (default OUT_ROOT: bench/results)
#
# Builds the data sets (scripts/fetch-lee-data.sh), the models (scripts/setup-models.sh) and a
# release binary when missing (SEXTANT=PATH uses that binary instead and builds nothing);
# ingests each corpus into a fresh data directory under target/eval-lee (dense
# all-MiniLM-L6-v2 + BM25, no SPLADE) and optimizes each collection into one HNSW segment, as a
# collection in production is after its merges (unflushed points sit in the mutable segment,
# which is searched by an exact flat scan, so `dense` would measure no approximate index);
# writes report.md, report.json, per-query.json, the plots (metrics.svg, recall-at-k.svg,
# latency.svg, fusion-sweep.svg) and runs/*.trec into OUT_ROOT/eval-lee and
# OUT_ROOT/eval-lee-bg (runs/ is not committed: bench/results/eval-*/runs/ is git-ignored).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT_ROOT="${1:-bench/results}"
DATA="$ROOT/target/eval-lee"
bash scripts/fetch-lee-data.sh
bash scripts/setup-models.sh
if [ -n "${SEXTANT:-}" ]; then
    S="$SEXTANT"
else
    cargo build --release -p sextant-cli --locked
    S="$ROOT/target/release/sextant"
fi
CONFIGS=(--config dense --config hybrid --config 'rrf=mode=hybrid;fusion=rrf' --compare-to bm25
         --sweep-weights 10)
rm -rf "$DATA"
"$S" --data "$DATA" --durability 100ms ingest lee --jsonl data/text/lee/corpus.jsonl --no-splade
"$S" --data "$DATA" collection optimize lee
"$S" --data "$DATA" eval lee --beir data/text/lee "${CONFIGS[@]}" --depth 50 \
    --metrics ndcg@10,ndcg@20,recall@10,recall@20,mrr@10,map@50,precision@10,hit_rate@10 \
    --out "$OUT_ROOT/eval-lee"
"$S" --data "$DATA" --durability 100ms ingest lee-bg --jsonl data/text/lee-bg/corpus.jsonl --no-splade
"$S" --data "$DATA" collection optimize lee-bg
"$S" --data "$DATA" eval lee-bg --beir data/text/lee-bg "${CONFIGS[@]}" --out "$OUT_ROOT/eval-lee-bg"
