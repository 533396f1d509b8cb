#!/usr/bin/env bash
# Creates .venv-train/ with pinned versions of what bench/peers/st_finetune.py fine-tunes with:
# torch, sentence-transformers (its SentenceTransformerTrainer), transformers, accelerate,
# datasets — the peer of `sextant finetune` (issue 20).
# Idempotent: does nothing when the pinned versions are already installed.
#
# torch: the CPU-only build from PyTorch's own index is tried first (about 200 MB); where that
# index cannot be reached (here only PyPI can), torch comes from PyPI, which for Linux x86-64 is
# the CUDA build and pulls the nvidia-* CUDA libraries: the venv is then about 6 GB. Either
# trains on the CPU the same way; the CUDA build's libraries add to the process's RSS from the
# import on (st_finetune.py records the RSS after the imports and before training apart).
#
# Usage: bash bench/peers/setup-train.sh        (PYTHON=python3.x to pick the interpreter)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$ROOT/.venv-train"
PYTHON="${PYTHON:-python3}"

TORCH=2.15.0
CPU_INDEX=https://download.pytorch.org/whl/cpu
PINS=(sentence-transformers==6.3.0 transformers==5.25.0 tokenizers==0.23.3 safetensors==0.8.0
      huggingface_hub==2.4.0 accelerate==1.16.0 datasets==5.2.0 numpy==2.4.6)

pins_ok() {
    "$VENV/bin/python" - "$TORCH" "$@" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
# torch: 2.15.0 from PyPI, 2.15.0+cpu from the CPU index
if version("torch").split("+")[0] != sys.argv[1]:
    sys.exit(1)
for pin in sys.argv[2:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
EOF
}

if [ -x "$VENV/bin/python" ] && pins_ok "${PINS[@]}"; then
    echo "train venv up to date: $VENV"
else
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    PIP=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null \
        || [ "$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')" != "$TORCH" ]; then
        if "${PIP[@]}" --timeout 15 --retries 0 --index-url "$CPU_INDEX" "torch==$TORCH" 2>/dev/null; then
            echo "torch $TORCH: the CPU build ($CPU_INDEX)"
        else
            echo "torch $TORCH: the CPU index is out of reach; PyPI's build (with CUDA libraries, several GB)"
            "${PIP[@]}" "torch==$TORCH"
        fi
    fi
    "${PIP[@]}" "torch==$TORCH" "${PINS[@]}"
    pins_ok "${PINS[@]}" || { echo "pinned versions not installed as asked" >&2; exit 1; }
fi

"$VENV/bin/python" - <<'EOF'
from importlib.metadata import version
for name in ("torch", "sentence-transformers", "transformers", "tokenizers", "accelerate", "datasets",
             "numpy"):
    print(f"  {name} {version(name)}")
EOF
du -sh "$VENV" | awk '{print "  venv size " $1}'
