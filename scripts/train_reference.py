#!/usr/bin/env python3
"""Reference loss and gradients for sextant-embed's training gradient checks, computed with PyTorch.

Writes crates/sextant-embed/tests/fixtures/train_reference.json: the tiny random
sentence-transformers model tiny-st/ (BertModel, mean pooling, Dense 32→16 Tanh, Dense 16→8
without bias, Normalize), converted to float64 and in eval mode (no dropout), run on a fixed
batch of 4 (anchor, positive) pairs; the MultipleNegativesRankingLoss with its defaults
(scale 20, cos_sim, in-batch negatives, mean cross-entropy against labels 0..3) and the
gradient of that loss with respect to every parameter.

The JSON holds:

  produced_by                      this script and the torch / transformers /
                                   sentence-transformers versions
  scale                            20.0
  anchors, positives               {"texts", "input_ids", "attention_mask", "token_type_ids"}: the
                                   model's own tokenization, as encode() does it (padded to the
                                   longest text of the list, truncated to max_seq_length)
  anchor_embeddings,
  positive_embeddings              float64 sentence embeddings, one list per text
  loss                             the MNRL value
  gradients                        parameter name -> {"shape": [...], "values": [flat, row-major]}.
                                   Names are the keys of the files on disk: the BertModel's keys in
                                   tiny-st/model.safetensors ("encoder.layer.0.attention.self.query.weight",
                                   ...) and "<module dir>/<key>" for the Dense modules
                                   ("2_Dense/linear.weight", "2_Dense/linear.bias", "3_Dense/linear.weight").
                                   embeddings.word_embeddings.weight keeps only the rows of the token
                                   ids in the batch: {"shape": [vocab, hidden], "rows": [ids, ascending],
                                   "values": [those rows, flat, in the order of "rows"]}. Parameters
                                   that get no gradient at all (the unused BERT pooler) are left out.

The tiny-st model is built by scripts/embed_reference.py. The script creates its own virtual
environment (.venv-ref, gitignored; torch from PyPI is large) and re-runs itself inside it.

Usage: scripts/train_reference.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-ref"
FIXTURES = ROOT / "crates" / "sextant-embed" / "tests" / "fixtures"
TINY_ST = FIXTURES / "tiny-st"
OUT = FIXTURES / "train_reference.json"
REQUIREMENTS = ["torch", "transformers", "sentence-transformers", "safetensors", "numpy"]

SCALE = 20.0  # MultipleNegativesRankingLoss's default
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"

PAIRS = [
    ("a cat sits on the mat", "the cat is on a mat"),
    ("stock markets fell sharply", "shares dropped a lot today"),
    ("how to bake bread", "a simple bread recipe"),
    ("the river flooded the town", "floods hit the town by the river"),
]


def ensure_venv() -> None:
    """Re-executes this script with .venv-ref's interpreter, creating the venv when needed."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not python.exists():
        print(f"creating {VENV} (torch is a large download)", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS])
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def tokenize(model, texts: list[str]) -> dict:
    """The features encode() builds: preprocess() in release 6, tokenize() before it."""
    if hasattr(model, "preprocess"):
        return model.preprocess(texts)
    return model.tokenize(texts)


def hf_model(transformer):
    """The Hugging Face model inside sentence-transformers' Transformer module."""
    for attr in ("model", "auto_model"):
        inner = getattr(transformer, attr, None)
        if inner is not None:
            return inner
    sys.exit("cannot find the Hugging Face model inside the Transformer module")


def module_dirs() -> dict[int, str]:
    """modules.json: module index -> its directory inside the model directory ("" for the root)."""
    return {m["idx"]: m["path"] for m in json.loads((TINY_ST / "modules.json").read_text())}


def named_gradients(model) -> list[tuple[str, object]]:
    """(name as on disk, parameter) for every parameter of the model."""
    dirs = module_dirs()
    out = []
    for idx, module in enumerate(model):
        prefix = dirs[idx] + "/" if dirs[idx] else ""
        params = hf_model(module).named_parameters() if idx == 0 else module.named_parameters()
        for name, p in params:
            out.append((prefix + name, p))
    return out


def floats(t) -> list[float]:
    """A tensor's values, flat and row-major, as float64 (json writes them with repr: exact)."""
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def disk_keys() -> dict[str, dict[str, list[int]]]:
    """Every safetensors file of the model directory: directory ("" for the root) -> key -> shape."""
    from safetensors import safe_open

    out = {}
    for d in sorted(set(module_dirs().values())):
        f = TINY_ST / d / "model.safetensors"
        if f.exists():
            with safe_open(str(f), "pt") as st:
                out[d] = {k: list(st.get_slice(k).get_shape()) for k in st.keys()}
    return out


def check_names(gradients: dict) -> None:
    """Every gradient name must be a key of the matching safetensors file, with the same shape."""
    files = disk_keys()
    bad = []
    for name, g in gradients.items():
        d, key = name.split("/", 1) if "/" in name else ("", name)
        shape = files.get(d, {}).get(key)
        if shape is None:
            bad.append(f"{name}: no key {key!r} in {d or '.'}/model.safetensors")
        elif shape != g["shape"]:
            bad.append(f"{name}: shape {g['shape']} but {shape} on disk")
    if bad:
        sys.exit("gradient names do not match the files on disk:\n  " + "\n  ".join(bad))


def main() -> None:
    ensure_venv()
    if not (TINY_ST / "model.safetensors").exists():
        sys.exit(f"{TINY_ST} is missing: run scripts/embed_reference.py --only-tiny-st first")

    import sentence_transformers
    import torch
    import torch.nn.functional as F
    import transformers
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.util import cos_sim
    except ImportError:
        from sentence_transformers.util.similarity import cos_sim

    model = SentenceTransformer(str(TINY_ST), device="cpu")
    model.double()
    model.eval()
    model.zero_grad(set_to_none=True)

    anchors = [a for a, _ in PAIRS]
    positives = [p for _, p in PAIRS]
    features = [tokenize(model, anchors), tokenize(model, positives)]
    embeddings = [model(dict(f))["sentence_embedding"] for f in features]
    if any(e.dtype != torch.float64 for e in embeddings):
        sys.exit("embeddings are not float64")
    scores = cos_sim(embeddings[0], embeddings[1]) * SCALE
    labels = torch.arange(len(PAIRS))
    loss = F.cross_entropy(scores, labels)  # mean over the batch

    # The same loss through sentence-transformers' own class, as a cross-check.
    try:
        try:
            from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
        except ImportError:
            from sentence_transformers.losses import MultipleNegativesRankingLoss

        mnrl = MultipleNegativesRankingLoss(model)
        if mnrl.scale != SCALE:
            sys.exit(f"MultipleNegativesRankingLoss's default scale is {mnrl.scale}, not {SCALE}")
        with torch.no_grad():
            theirs = mnrl.compute_loss_from_embeddings([e.detach() for e in embeddings], labels)
        if abs(float(theirs) - float(loss.detach())) > 1e-12:
            sys.exit(f"loss {float(loss.detach())} differs from MultipleNegativesRankingLoss's {float(theirs)}")
    except (ImportError, AttributeError) as e:
        print(f"skipping the MultipleNegativesRankingLoss cross-check: {e}", file=sys.stderr)

    loss.backward()

    batch_ids = sorted(
        {int(i) for f in features for i in f["input_ids"][f["attention_mask"].bool()].tolist()}
    )
    gradients = {}
    for name, p in named_gradients(model):
        if p.grad is None:
            print(f"no gradient for {name} (left out)", file=sys.stderr)
            continue
        g = p.grad.detach()
        if name == WORD_EMBEDDINGS:
            touched = sorted(int(i) for i in torch.nonzero(g.abs().sum(dim=1)).reshape(-1).tolist())
            if not set(touched) <= set(batch_ids):
                sys.exit(f"word-embedding gradient outside the batch's ids: {set(touched) - set(batch_ids)}")
            gradients[name] = {
                "shape": list(g.shape),
                "rows": batch_ids,
                "values": floats(g[batch_ids]),
            }
        else:
            gradients[name] = {"shape": list(g.shape), "values": floats(g)}
    check_names(gradients)

    def side(texts, f):
        return {
            "texts": texts,
            "input_ids": f["input_ids"].tolist(),
            "attention_mask": f["attention_mask"].tolist(),
            "token_type_ids": f["token_type_ids"].tolist(),
        }

    out = {
        "model": "tiny-st (random weights), float64, eval mode",
        "produced_by": "scripts/train_reference.py (torch "
        + torch.__version__
        + ", transformers "
        + transformers.__version__
        + ", sentence-transformers "
        + sentence_transformers.__version__
        + ")",
        "loss_fn": "MultipleNegativesRankingLoss (scale 20, cos_sim, labels 0..n-1, mean cross-entropy)",
        "scale": SCALE,
        "anchors": side(anchors, features[0]),
        "positives": side(positives, features[1]),
        "anchor_embeddings": [floats(e) for e in embeddings[0]],
        "positive_embeddings": [floats(e) for e in embeddings[1]],
        "loss": float(loss.detach()),
        "gradients": gradients,
    }
    write(OUT, out)
    size = sum(len(g["values"]) for g in gradients.values())
    print(f"loss {float(loss.detach())!r}")
    print(
        f"{len(PAIRS)} pairs, {len(gradients)} gradients ({size} values), "
        f"{len(batch_ids)} word-embedding rows, embeddings of dim {embeddings[0].shape[1]}"
    )


def write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
