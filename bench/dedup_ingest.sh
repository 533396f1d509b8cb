#!/usr/bin/env bash
# What duplicate detection costs at ingest, and what it finds, on the 5,000-document GCIDE subset:
# the same `sextant ingest` (default model, no SPLADE, fresh data directory) with dedup off and
# with `--dedup keep`, one after the other.
#
#   bash bench/dedup_ingest.sh [SEXTANT [MODEL]]  (default: target/release/sextant, the default
#                                                  model; a tiny model shows dedup's own cost)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
S="${1:-$ROOT/target/release/sextant}"
MODEL=()
[ -z "${2:-}" ] || MODEL=(--model "$2")
SET="$ROOT/data/text/gcide-5k-q500"
[ -f "$SET/corpus.jsonl" ] || bash scripts/fetch-text-data.sh
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
for mode in off keep; do
  extra=()
  [ "$mode" = off ] || extra=(--dedup "$mode")
  echo "== dedup $mode"
  "$S" --data "$WORK/$mode" --durability 100ms --json ingest gcide --jsonl "$SET/corpus.jsonl" \
      --no-splade "${MODEL[@]}" "${extra[@]}" > "$WORK/$mode.json"
  python3 - "$WORK/$mode.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("documents %d, chunks %d, %.1f s, %.1f documents/s, exact copies %d, near-duplicates %d"
      % (r["documents"], r["chunks"], r["seconds"], r["documents_per_s"],
         r.get("duplicates", 0), r.get("near_duplicates", 0)))
PY
done
