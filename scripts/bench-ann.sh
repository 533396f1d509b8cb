#!/usr/bin/env bash
# The HNSW benchmark (the first main job): fetch Fashion-MNIST (Debian package), build the release
# binary, and benchmark Sextant's HNSW index on it — recall@10 and queries/s per ef, queries
# issued one at a time on one thread, against exact ground truth.
#
# Usage: ./scripts/bench-ann.sh          Results: bench/out/quickstart.{json,md}
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-ann-data.sh fashion-mnist
cargo build --release --locked
mkdir -p bench/out
FM=data/ann/fashion-mnist-784-euclidean
GT=bench/out/fashion-mnist-gt.ivecs
GT_ARGS=(--gt-out "$GT")
[ -f "$GT" ] && GT_ARGS=(--gt "$GT")
./target/release/sextant bench ann \
    --base "$FM/base.fvecs" --queries "$FM/queries.fvecs" "${GT_ARGS[@]}" \
    --metric l2 --m 16 --ef-construction 200 \
    --ef 10,16,24,32,48,64,96,128,192,256,384,512 --k 10 --threads 1 \
    --json bench/out/quickstart.json --markdown bench/out/quickstart.md
echo "wrote bench/out/quickstart.json and bench/out/quickstart.md"
