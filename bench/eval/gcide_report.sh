#!/usr/bin/env bash
# The committed evaluation report of the WordNet-gloss -> GCIDE task (5,000-document subset,
# 500 queries): the baselines (random, BM25, exact dense), the approximate dense index, the
# default hybrid, hybrid with RRF and a fusion-weight sweep (hybrid with dense weight w =
# 0.0, 0.1, ..., 1.0 and BM25 weight 1 - w: sweep-w0.00 ... sweep-w1.00), scored by
# `sextant eval`.
#
#   bash bench/eval/gcide_report.sh [OUT]      (default OUT: bench/results/eval-gcide-5k)
#
# Builds the data set (scripts/fetch-text-data.sh), the models (scripts/setup-models.sh) and a
# release binary when missing (SEXTANT=PATH uses that binary instead and builds nothing);
# ingests the corpus into a fresh data directory under target/eval-gcide (dense
# all-MiniLM-L6-v2 + BM25, no SPLADE) and optimizes the collection into one HNSW segment, as a
# collection in production is after its merges (unflushed points sit in the mutable segment,
# which is searched by an exact flat scan, so `dense` would measure no approximate index);
# writes report.md, report.json, per-query.json, the plots (metrics.svg, recall-at-k.svg,
# latency.svg, fusion-sweep.svg) and runs/*.trec into OUT (runs/ is not committed:
# bench/results/eval-*/runs/ is git-ignored).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="${1:-bench/results/eval-gcide-5k}"
DATA="$ROOT/target/eval-gcide"
SET="$ROOT/data/text/gcide-5k-q500"
[ -f "$SET/corpus.jsonl" ] || bash scripts/fetch-text-data.sh
bash scripts/setup-models.sh
if [ -n "${SEXTANT:-}" ]; then
    S="$SEXTANT"
else
    cargo build --release -p sextant-cli --locked
    S="$ROOT/target/release/sextant"
fi
rm -rf "$DATA"
"$S" --data "$DATA" --durability 100ms ingest gcide --jsonl "$SET/corpus.jsonl" --no-splade
"$S" --data "$DATA" collection optimize gcide
"$S" --data "$DATA" eval gcide --beir "$SET" \
    --config dense --config hybrid --config 'rrf=mode=hybrid;fusion=rrf' \
    --compare-to bm25 --sweep-weights 10 --out "$OUT"
