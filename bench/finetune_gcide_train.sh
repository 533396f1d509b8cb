#!/usr/bin/env bash
# Fine-tuning all-MiniLM-L6-v2 on the WordNet-gloss -> GCIDE task with training and evaluation
# headword-disjoint (issue 20's bar).
#
#   [PAIRS=N] [SET=DIR] bash bench/finetune_gcide_train.sh OUT [SEXTANT] [extra finetune flags...]
#
# SET=DIR trains on another BEIR training set with qrels/train.tsv instead (the second judged
# set: SET=data/text/splits/man-en-train, built by scripts/fetch-lang-data.sh).
#
# MODEL=DIR starts from another model (default models/all-MiniLM-L6-v2).
#
# EPOCHS=N and BATCH=B change the defaults 1 and 16; VALIDATION=S holds back that share of
# the training queries (default 0), for `--eval-steps N` to keep the best of the run.
#
# PAIRS=N trains on the first N judgements of qrels/train.tsv only (e.g. a cross-encoder run
# with --cross-encoder, whose pairs cost more).
#
# 1. `sextant finetune` on data/text/gcide-train (7,600 glosses, 10,013 pairs, whose answers
#    are never judged in gcide or gcide-s7; BM25 hard negatives; no held-back share: the
#    evaluation below is on other glosses) -> OUT/model (kept: the evaluation scripts use it).
# 2. The evaluation is bench/finetune_eval.sh (base and trained model on gcide-5k, paired
#    tests).
# Needs scripts/setup-models.sh and scripts/fetch-text-data.sh. Writes OUT/finetune.txt,
# OUT/training_card.json and OUT/model/ (OUT/model is git-ignored: model weights are large).
set -euo pipefail
OUT=${1:?results directory}
SEXTANT=${2:-target/release/sextant}
shift $(( $# >= 2 ? 2 : 1 ))
SET=${SET:-data/text/gcide-train}
QRELS=$SET/qrels/train.tsv
mkdir -p "$OUT"
rm -rf "$OUT/model"
if [ -n "${PAIRS:-}" ]; then
    head -n $((PAIRS + 1)) $SET/qrels/train.tsv > "$OUT/qrels-first-$PAIRS.tsv"
    QRELS="$OUT/qrels-first-$PAIRS.tsv"
fi
/usr/bin/time -v -o "$OUT/finetune.time" "$SEXTANT" finetune --model "${MODEL:-models/all-MiniLM-L6-v2}" \
    --corpus $SET/corpus.jsonl --queries $SET/queries.jsonl --qrels "$QRELS" \
    --out "$OUT/model" --epochs "${EPOCHS:-1}" --batch "${BATCH:-16}" --max-seq 128 --validation "${VALIDATION:-0}" --seed 42 "$@" \
    | tee "$OUT/finetune.txt"
cp "$OUT/model/training_card.json" "$OUT/training_card.json"
grep -E "Maximum resident|Elapsed|User time|System time" "$OUT/finetune.time" | tee -a "$OUT/finetune.txt"
