#!/usr/bin/env bash
# Fine-tuning all-MiniLM-L6-v2 on the WordNet-gloss -> GCIDE task (issue 20): `sextant finetune`
# on the judged set gcide-s7-5k (1,000 glosses, 5,000 GCIDE entries), 20% of the judged queries
# held back (seeded) and scored by nDCG@10 of exact dense retrieval before and after.
#
#   bash bench/finetune_gcide.sh OUT [SEXTANT] [extra finetune flags...]
#
# Needs scripts/setup-models.sh and scripts/fetch-text-data.sh. Writes OUT/finetune.txt and
# OUT/training_card.json (the trained model goes to a temporary directory, removed after).
set -euo pipefail
OUT=${1:?results directory}
SEXTANT=${2:-target/release/sextant}
shift $(( $# >= 2 ? 2 : 1 ))
SET=data/text/gcide-s7-5k
MODEL_OUT=$(mktemp -d)/model
trap 'rm -rf "$(dirname "$MODEL_OUT")"' EXIT
mkdir -p "$OUT"
"$SEXTANT" finetune --model models/all-MiniLM-L6-v2 --corpus $SET/corpus.jsonl \
    --queries $SET/queries.jsonl --qrels $SET/qrels/test.tsv --out "$MODEL_OUT" \
    --epochs 1 --batch 16 --max-seq 128 --validation 0.2 --seed 42 "$@" | tee "$OUT/finetune.txt"
cp "$MODEL_OUT/training_card.json" "$OUT/training_card.json"
