#!/usr/bin/env bash
# Training step time in f32 and in mixed precision (bf16 products), side by side: the example
# crates/sextant-embed/examples/train_step.rs trains STEPS steps of BATCH synthetic pairs
# (20-token anchors, 128-token positives and negatives) on one thread, alternating f32 and
# bf16 ROUNDS times so that both see the same machine load.
#
#   [ROUNDS=2] [STEPS=3] [BATCH=16] bash bench/finetune_precision.sh OUT
#
# Needs models/all-MiniLM-L6-v2 (scripts/setup-models.sh). Writes OUT/precision.txt.
set -euo pipefail
OUT=${1:?results directory}
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-3}
BATCH=${BATCH:-16}
mkdir -p "$OUT"
cargo build --release -p sextant-embed --example train_step
: > "$OUT/precision.txt"
for r in $(seq "$ROUNDS"); do
    for mixed in 0 1; do
        line=$(MIXED=$mixed CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=1 \
            target/release/examples/train_step models/all-MiniLM-L6-v2 "$STEPS" "$BATCH" 20 128 2>&1 \
            | tr '\n' ' ')
        echo "round $r mixed=$mixed $line" | tee -a "$OUT/precision.txt"
    done
done
