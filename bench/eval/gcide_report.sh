#!/usr/bin/env bash
# The committed evaluation report of the WordNet-gloss -> GCIDE task (5,000-document subset,
# 500 queries): the baselines (random, BM25, exact dense), the approximate dense index, the
# default hybrid and hybrid with RRF, scored by `sextant eval`.
#
#   bash bench/eval/gcide_report.sh [OUT]      (default OUT: bench/results/eval-gcide-5k)
#
# Builds the data set (scripts/fetch-text-data.sh), the models (scripts/setup-models.sh) and a
# release binary when missing; ingests the corpus into a fresh data directory under
# target/eval-gcide (dense all-MiniLM-L6-v2 + BM25, no SPLADE); writes report.md, report.json,
# per-query.json and runs/*.trec into OUT.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="${1:-bench/results/eval-gcide-5k}"
DATA="$ROOT/target/eval-gcide"
SET="$ROOT/data/text/gcide-5k-q500"
[ -f "$SET/corpus.jsonl" ] || bash scripts/fetch-text-data.sh
bash scripts/setup-models.sh
cargo build --release -p sextant-cli --locked
S="$ROOT/target/release/sextant"
rm -rf "$DATA"
"$S" --data "$DATA" --durability 100ms ingest gcide --jsonl "$SET/corpus.jsonl" --no-splade
"$S" --data "$DATA" eval gcide --beir "$SET" \
    --config dense --config hybrid --config 'rrf=mode=hybrid;fusion=rrf' \
    --compare-to bm25 --out "$OUT"
