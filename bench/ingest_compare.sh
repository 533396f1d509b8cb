#!/usr/bin/env bash
# End-to-end document ingest of the 5,000-document GCIDE subset, in one run:
#   1. `sextant ingest` with the defaults (dense all-MiniLM-L6-v2 + BM25 + SPLADE, precision
#      auto; the precision cache is a fresh file, so `auto` measures at load as on a machine's
#      first ingest);
#   2. the same with --precision f32 (the default before issue 22);
#   2b. with PREV_SEXTANT given: that binary (an earlier commit's build) with its defaults, so a
#      change to the pipeline is measured against what it replaces in the same run;
#   3. the peer pipeline a user would assemble (bench/peers/ingest_pipeline.py:
#      sentence-transformers + a LanceDB table + a tantivy index; setup: bash
#      bench/peers/setup-ingest.sh).
# Each into a fresh directory, 2 threads, /usr/bin/time for wall, CPU and peak RSS.
#
#   bash bench/ingest_compare.sh OUT_DIR [SEXTANT [PREV_SEXTANT]]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="${1:?usage: bench/ingest_compare.sh OUT_DIR [SEXTANT]}"
S="${2:-$ROOT/target/release/sextant}"
PREV="${3:-}"
CORPUS="$ROOT/data/text/gcide-5k/corpus.jsonl"
[ -f "$CORPUS" ] || bash scripts/fetch-text-data.sh
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
T='%e wall %U user %S sys %M KiB'
for p in auto f32; do
  echo "== sextant ingest, precision $p"
  SEXTANT_PRECISION_CACHE="$WORK/precision-cache.json" /usr/bin/time -f "$T" -o "$OUT/ingest-$p.time" \
    "$S" --data "$WORK/sx-$p" --json ingest g5k --jsonl "$CORPUS" --precision "$p" \
    > "$OUT/ingest-$p.json"
  cat "$OUT/ingest-$p.time"
done
if [ -n "$PREV" ]; then
  echo "== earlier build $PREV, its defaults"
  SEXTANT_PRECISION_CACHE="$WORK/precision-cache.json" /usr/bin/time -f "$T" -o "$OUT/ingest-prev.time" \
    "$PREV" --data "$WORK/sx-prev" --json ingest g5k --jsonl "$CORPUS" > "$OUT/ingest-prev.json"
  cat "$OUT/ingest-prev.time"
else
  rm -f "$OUT/ingest-prev.json" "$OUT/ingest-prev.time"
fi
echo "== peer pipeline: sentence-transformers + LanceDB + tantivy"
/usr/bin/time -f "$T" -o "$OUT/ingest-peer.time" \
  .venv-ingest-peer/bin/python bench/peers/ingest_pipeline.py --jsonl "$CORPUS" \
    --model models/all-MiniLM-L6-v2 --out "$WORK/peer" --threads 2 --batch 32 \
    --chunk-tokens 200 --json "$OUT/ingest-peer.json" --check
cat "$OUT/ingest-peer.time"
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
rows = []
runs = [("auto", "sextant, defaults (auto)"), ("f32", "sextant, --precision f32"),
        ("peer", "sentence-transformers + LanceDB + tantivy")]
if os.path.exists(os.path.join(out, "ingest-prev.json")):
    runs.insert(2, ("prev", "sextant, earlier build (PREV_SEXTANT), its defaults"))
for name, label in runs:
    r = json.load(open(os.path.join(out, f"ingest-{name}.json")))
    t = open(os.path.join(out, f"ingest-{name}.time")).read().split()
    wall, user, sys_, rss = float(t[0]), float(t[2]), float(t[4]), int(t[6]) / 1024
    docs = r.get("documents")
    chunks = r.get("chunks")
    rows.append((label, docs, chunks, docs / wall, chunks / wall, wall, user + sys_, rss, r))
lines = ["| pipeline | documents | chunks | documents/s (process wall) | chunks/s | wall s | CPU s | peak RSS MiB |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
for label, d, c, dps, cps, w, cpu, rss, _ in rows:
    lines.append(f"| {label} | {d} | {c} | {dps:.1f} | {cps:.1f} | {w:.1f} | {cpu:.1f} | {rss:.0f} |")
lines.append("")
lines.append("auto ÷ f32: %.2f×; auto ÷ peer: %.2f×" % (rows[0][3] / rows[1][3], rows[0][3] / rows[-1][3])
             + ("; auto ÷ earlier build: %.2f×" % (rows[0][3] / rows[2][3]) if len(rows) == 4 else ""))
for label, *_, r in rows[:-1]:
    st = r.get("stages", {})
    if st:
        s = r["seconds"]
        lines.append(f"{label}: precision {r.get('precision')} / SPLADE {r.get('splade_precision')}; stages "
                     + ", ".join(f"{k[:-2]} {v:.1f} s ({100 * v / s:.0f}%)" for k, v in st.items()))
if any("models_s" in r[8].get("stages", {}) for r in rows[:-1]):
    lines.append("(models: the dense model and SPLADE side by side, wall time; dense and splade: each "
                 "model's own time, overlapping)")
st = rows[-1][8].get("stages", {})
if st:
    lines.append("peer stages: " + ", ".join(
        f"{k} {v['wall_s']:.1f} s" if isinstance(v, dict) else f"{k} {v}" for k, v in st.items()))
md = "\n".join(lines)
print(md)
open(os.path.join(out, "ingest-compare.md"), "w").write(md + "\n")
PY
