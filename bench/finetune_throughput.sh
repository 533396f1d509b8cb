#!/usr/bin/env bash
# Training throughput and peak memory of `sextant finetune` against sentence-transformers'
# trainer (issue 20's bar), at 1 and 2 threads, on the same pairs in the same order with the
# same hyper-parameters (batch 16, lr 5e-5, 10% warm-up, weight decay 0.01, clipping 1, scale
# 20, max_seq 128, one epoch).
#
#   bash bench/finetune_throughput.sh OUT [PAIRS] [SEXTANT]
#
# The pairs: the first PAIRS (default 800) judgements of data/text/gcide-train/qrels/train.tsv,
# each with its BM25 hard negative as `sextant finetune` mines it over gcide-train's corpus.
# Sextant trains on them first (its training_pairs.jsonl is then the sentence-transformers
# run's input). Sextant's figure is its training loop (training_card.json's train_seconds,
# after mining and tokenisation); the peer's its trainer's loop (tokenisation inside it). Peak
# RSS is each whole process's (/usr/bin/time; the peer's JSON also has its loop's own peak).
# Needs bench/peers/setup-train.sh (.venv-train), scripts/setup-models.sh,
# scripts/fetch-text-data.sh. Writes OUT/sextant-t{1,2}.{json,time} and OUT/st-t{1,2}.json.
set -euo pipefail
OUT=${1:?results directory}
PAIRS=${2:-800}
SEXTANT=${3:-target/release/sextant}
SET=data/text/gcide-train
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
head -n $((PAIRS + 1)) $SET/qrels/train.tsv > "$WORK/qrels.tsv"
for t in 1 2; do
    /usr/bin/time -v -o "$OUT/sextant-t$t.time" "$SEXTANT" --json finetune \
        --model models/all-MiniLM-L6-v2 --corpus $SET/corpus.jsonl --queries $SET/queries.jsonl \
        --qrels "$WORK/qrels.tsv" --out "$WORK/model-t$t" --epochs 1 --batch 16 --max-seq 128 \
        --lr 5e-5 --validation 0 --seed 42 --threads $t > "$OUT/sextant-t$t.json"
    grep -E "Maximum resident" "$OUT/sextant-t$t.time"
done
cmp "$WORK/model-t1/training_pairs.jsonl" "$WORK/model-t2/training_pairs.jsonl"
for t in 1 2; do
    .venv-train/bin/python bench/peers/st_finetune.py --pairs "$WORK/model-t1/training_pairs.jsonl" \
        --model models/all-MiniLM-L6-v2 --threads $t --batch 16 --lr 5e-5 --epochs 1 \
        --max-seq 128 --warmup 0.1 --seed 42 --json "$OUT/st-t$t.json"
done
python3 - "$OUT" <<'PY'
import json, re, sys
out = sys.argv[1]
print("| system | threads | pairs | train s (wall) | train s (CPU) | pairs/s | peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|---:|")
for t in (1, 2):
    r = json.load(open(f"{out}/sextant-t{t}.json"))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                        open(f"{out}/sextant-t{t}.time").read()).group(1)) / 1024
    print(f"| Sextant | {t} | {r['pairs']} | {r['train_seconds']:.1f} | {r['train_cpu_seconds']:.1f} | {r['pairs_per_second']:.2f} | {rss:.0f} |")
for t in (1, 2):
    r = json.load(open(f"{out}/st-t{t}.json"))
    print(f"| sentence-transformers | {t} | {r.get('pairs_trained', r.get('pairs'))} | "
          f"{r['train_seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['pairs_per_second']:.2f} | "
          f"{r['peak_rss_mib']:.0f} |")
PY
