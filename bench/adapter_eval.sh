#!/usr/bin/env bash
# A query adapter (issue 20's bar: "nDCG@10 ... after an adapter"): all-MiniLM-L6-v2 embeds a
# collection once; `sextant adapter train` fits a linear map of query embeddings on TRAINING
# judgements against the stored chunk vectors (no re-embedding); `sextant eval` scores the
# EVALUATION set's queries on the same collection with the adapter (dense, hybrid) and without it
# (`adapter=false`), each paired with the same mode without the adapter (randomisation test,
# `--compare-to`).
#
#   bash bench/adapter_eval.sh OUT CORPUS TRAIN_SET EVAL_SET [adapter train flags...]
#
# CORPUS: a BEIR corpus.jsonl holding the documents of both sets' judgements (see
# `text_data.py union`); TRAIN_SET: a BEIR folder with queries.jsonl and qrels/train.tsv;
# EVAL_SET: one with queries.jsonl and qrels/test.tsv (no query or relevant document shared
# with the training set). SEXTANT=PATH picks the binary (default target/release/sextant).
# REUSE=1 keeps an already ingested collection in the data directory
# (target/adapter-eval/<basename of OUT>). Writes OUT/adapter.txt, OUT/adapter_card.json,
# OUT/{dense,hybrid}/report.{md,json}.
set -euo pipefail
OUT=${1:?results directory}
CORPUS=${2:?corpus.jsonl}
TRAIN=${3:?training BEIR folder}
EVAL=${4:?evaluation BEIR folder}
shift 4
S=${SEXTANT:-target/release/sextant}
DATA=target/adapter-eval/$(basename "$OUT")
mkdir -p "$OUT"
if [ "${REUSE:-0}" != 1 ] || [ ! -d "$DATA/collections/base" ]; then
    rm -rf "$DATA"
    "$S" --data "$DATA" --durability 100ms ingest base --jsonl "$CORPUS" --no-splade \
        --model models/all-MiniLM-L6-v2
    "$S" --data "$DATA" collection optimize base
fi
"$S" --data "$DATA" adapter detach base
rm -rf "$OUT/adapter"
/usr/bin/time -v -o "$OUT/adapter.time" "$S" --data "$DATA" adapter train base \
    --queries "$TRAIN/queries.jsonl" --qrels "$TRAIN/qrels/train.tsv" --out "$OUT/adapter" "$@" \
    2>&1 | tee "$OUT/adapter.txt"
grep -E "Maximum resident|Elapsed|User time" "$OUT/adapter.time" | tee -a "$OUT/adapter.txt"
cp "$OUT/adapter/adapter_card.json" "$OUT/adapter_card.json"
for mode in dense hybrid; do
    "$S" --data "$DATA" eval base --beir "$EVAL" --no-baselines \
        --config "$mode-base=mode=$mode;adapter=false" --config "$mode-adapter=mode=$mode" \
        --compare-to "$mode-base" --out "$OUT/$mode"
    rm -rf "$OUT/$mode/runs" "$OUT/$mode/per-query.json"
done
