#!/usr/bin/env bash
# Scores a fine-tuned bi-encoder (and, when given, a trained cross-encoder) against the base
# model on a judged BEIR set with `sextant eval` (issue 20's bar): the set's corpus is ingested
# with all-MiniLM-L6-v2 (dense + BM25, no SPLADE) and optimized into one HNSW segment
# (collection `base`), re-embedded with the tuned model by `sextant reindex` (collection
# `tuned`), and every configuration runs on both; `--compare tuned` pairs each configuration
# with itself on the tuned collection (randomisation test), `--compare-to hybrid` pairs every
# configuration with the untrained hybrid.
#
#   bash bench/finetune_eval.sh OUT SET TUNED_MODEL [CROSS_ENCODER]
#
# SEXTANT=PATH picks the binary (default target/release/sextant). The data directory is
# target/finetune-eval/<basename of OUT> (rebuilt each run). Writes OUT/report.md,
# OUT/report.json and OUT/per-query.json.
set -euo pipefail
OUT=${1:?results directory}
SET=${2:?BEIR folder with qrels/test.tsv}
TUNED=${3:?fine-tuned model directory}
CE=${4:-}
S=${SEXTANT:-target/release/sextant}
DATA=target/finetune-eval/$(basename "$OUT")
rm -rf "$DATA"
mkdir -p "$OUT"
"$S" --data "$DATA" --durability 100ms ingest base --jsonl "$SET/corpus.jsonl" --no-splade \
    --model models/all-MiniLM-L6-v2
"$S" --data "$DATA" collection optimize base
"$S" --data "$DATA" reindex base --model "$TUNED" --into tuned
"$S" --data "$DATA" collection optimize tuned
CONFIGS=(--config hybrid)
if [ -n "$CE" ]; then
    CONFIGS+=(--config "hybrid-ce=mode=hybrid;rerank=$CE;rerank_top=20")
fi
"$S" --data "$DATA" eval base --beir "$SET" "${CONFIGS[@]}" --compare tuned \
    --compare-to hybrid --out "$OUT"
rm -rf "$OUT/runs"
