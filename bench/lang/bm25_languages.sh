#!/usr/bin/env bash
# BM25 per language on the man-page judged sets (scripts/fetch-lang-data.sh builds them):
# Sextant's analyzer with the set's own Snowball stemmer, with the English stemmer (the
# default before --language existed), with no stemming, and with per-text detection (auto),
# each one thread, alphanumeric runs (tantivy's tokenizer), no stop words. Writes
# bench/results/lang/bm25-sextant-<set>-<config>.json and the TREC runs beside them; the peers
# (tantivy, bm25s) come from bench/peers/bm25_lang.py on the same sets.
#
# Usage: bash bench/lang/bm25_languages.sh [SEXTANT]   (default: target/release/sextant)
set -euo pipefail
cd "$(dirname "$0")/../.."
SEXTANT="${1:-target/release/sextant}"
OUT=bench/results/lang
mkdir -p "$OUT/runs"
declare -A STEM=([de]=german [fr]=french [es]=spanish [ru]=russian [en]=english [pl]="" [ja]="" [zh]="")
for set in de fr es ru pl en ja zh; do
  dir="data/text/man-$set"
  [ -d "$dir" ] || { echo "missing $dir (run scripts/fetch-lang-data.sh)" >&2; exit 1; }
  configs=("plain:")
  [ -n "${STEM[$set]}" ] && configs+=("stem-own:--stem --language ${STEM[$set]}")
  [ "$set" != en ] && configs+=("stem-english:--stem --language english")
  configs+=("auto:--stem --language auto")
  for c in "${configs[@]}"; do
    name="${c%%:*}"; flags="${c#*:}"
    # shellcheck disable=SC2086
    "$SEXTANT" bench bm25 --corpus "$dir/corpus.jsonl" --queries "$dir/queries.jsonl" \
      --qrels "$dir/qrels/test.tsv" --split alphanumeric --k 100 --runs 1 $flags \
      --json "$OUT/bm25-sextant-$set-$name.json" --run-out "$OUT/runs/man-$set-sextant-$name.trec" \
      | tail -1 | sed "s/^/$set $name: /"
    gzip -f "$OUT/runs/man-$set-sextant-$name.trec"
  done
done
