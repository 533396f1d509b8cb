#!/usr/bin/env bash
# Query expansion on the judged sets: RM3 (pseudo-relevance feedback, Anserini's defaults: 10
# feedback chunks, 10 terms, original weight 0.5) on BM25 and inside the default hybrid,
# against plain BM25 and the plain hybrid, with paired significance tests (sextant eval). Runs
# over the collections bench/eval/gcide_report.sh and bench/eval/lee_report.sh build (it
# builds them first when missing). Multi-query and HyDE need a language model, which this
# machine does not have: they are not measured here.
#
#   SEXTANT=PATH bash bench/eval/expansion_report.sh [OUT_ROOT]   (default: bench/results)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT_ROOT="${1:-bench/results}"
S="${SEXTANT:-$ROOT/target/release/sextant}"
CONFIGS=(--config 'bm25-rm3=mode=bm25;expand=rm3' --config hybrid
         --config 'hybrid-rm3=mode=hybrid;expand=rm3' --compare-to bm25)
[ -d target/eval-lee/collections/lee-bg ] || SEXTANT="$S" bash bench/eval/lee_report.sh "$OUT_ROOT"
[ -d target/eval-gcide/collections/gcide ] || SEXTANT="$S" bash bench/eval/gcide_report.sh "$OUT_ROOT/eval-gcide-5k"
"$S" --data target/eval-lee eval lee-bg --beir data/text/lee-bg "${CONFIGS[@]}" \
    --out "$OUT_ROOT/expansion-lee-bg"
"$S" --data target/eval-gcide eval gcide --beir data/text/gcide-5k-q500 "${CONFIGS[@]}" \
    --out "$OUT_ROOT/expansion-gcide-5k"
