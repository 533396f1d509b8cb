#!/usr/bin/env bash
# Sextant's HTTP search, server change against client change: two builds of `sextant serve`
# (OLD and NEW) each driven by the harness's own `http.client` client (`stdlib`) and by the
# `sextant` Python package (`package`), in interleaved order, with bench/peers/http_peers.py
# (GloVe-50d, 100,000 vectors, 1,000 queries, 4 client processes, 10 s × 3 runs a setting).
#
#   OLD=PATH/TO/old/sextant [NEW=target/release/sextant] [EF=96] bash bench/http_ab.sh OUT
#
# Needs bash bench/peers/setup.sh --sextant (the package in .venv-peers) and the GloVe data
# (scripts/fetch-ann-data.sh glove). Writes OUT/<build>-<client>.{json,md} and OUT/summary.md.
set -euo pipefail
OUT=${1:?results directory}
OLD=${OLD:?the old sextant binary}
NEW=${NEW:-target/release/sextant}
EF=${EF:-96}
PY=.venv-peers/bin/python
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
for client in stdlib package; do
    for build in old new; do
        bin=$OLD
        [ "$build" = new ] && bin=$NEW
        "$PY" bench/peers/http_peers.py --systems sextant --sextant-bin "$bin" \
            --sextant-client "$client" --ef "$EF" \
            --sextant-arg=--config --sextant-arg=bench/http-sextant.toml \
            --json "$OUT/$build-$client.json" --md "$OUT/$build-$client.md" 2>/dev/null >/dev/null
    done
done
{
    echo "| server build | client | recall@10 | QPS | p50 ms | p99 ms | server CPU µs/query | client CPU µs/query |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for build in old new; do
        for client in stdlib package; do
            "$PY" - "$OUT/$build-$client.json" "$build" "$client" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["systems"]["sextant"]["points"][-1]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {p['recall']:.4f} | {p['qps']:,.0f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | "
      f"{p['server_cpu_us_per_query']:,.0f} | {p['client_cpu_us_per_query']:,.0f} |")
PYEOF
        done
    done
} | tee "$OUT/summary.md"
