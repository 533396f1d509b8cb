#!/usr/bin/env python3
"""Embedding-speed peers of `sextant bench embed`, with the same JSON schema.

  sentence-transformers  SentenceTransformer(model).encode(texts, batch_size=B) on PyTorch (CPU),
                         torch.set_num_threads(N)
  onnxruntime            the same BERT exported once to ONNX (torch.onnx, opset 17, dynamic batch
                         and sequence axes; cached under data/onnx/), InferenceSession with
                         intra_op_num_threads=N and all graph optimisations; tokenisation with the
                         model's fast tokenizer, batches sorted by token length, mean pooling and
                         L2 normalisation in NumPy
  onnxruntime int8       the same export quantised by onnxruntime's own
                         `quantization.quantize_dynamic` (int8 weights, activations quantised per
                         batch at run time; cached next to the fp32 file), otherwise as above

Every system gets the whole file in one call per run and includes tokenisation and pooling in
its time. Tokens are counted with the model's tokenizer (special tokens included, truncation at
the model's max_seq_length, padding excluded); GFLOP/s uses the same FLOP model as
`sextant bench embed` (derived from config.json). CPU seconds are process CPU time (all threads).

Runs in .venv-ref (torch, transformers, sentence-transformers; onnxruntime and onnx added):
  .venv-ref/bin/python bench/peers/embed.py --system st|ort|ort-int8 --input data/text/sentences.txt \
      [--model models/all-MiniLM-L6-v2] [--batch 32] [--threads N] [--runs 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WARMUP_TEXTS = 256
OPSET = 17


def flop_model(model_dir: Path) -> dict:
    cfg = json.loads((model_dir / "config.json").read_text())
    layers, h, i = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"]
    return {
        "per_token": 2.0 * layers * (4 * h * h + 2 * h * i),
        "per_token_pair": 2.0 * layers * 2 * h,
    }


def max_seq_length(model_dir: Path) -> int:
    p = model_dir / "sentence_bert_config.json"
    return json.loads(p.read_text()).get("max_seq_length", 512) if p.is_file() else 512


def padded(lengths: list[int], order: list[int], batch: int) -> tuple[int, int]:
    """Padded tokens and sum of batch × padded_length² for batches taken in `order`."""
    tokens = squares = 0
    for start in range(0, len(order), batch):
        chunk = [lengths[j] for j in order[start : start + batch]]
        s = max(chunk)
        tokens += len(chunk) * s
        squares += len(chunk) * s * s
    return tokens, squares


class SentenceTransformersPeer:
    name = "sentence-transformers"

    def __init__(self, model_dir: Path, batch: int, threads: int):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        self.model = SentenceTransformer(str(model_dir), device="cpu")
        self.batch = batch
        self.version = f"sentence-transformers {__import__('sentence_transformers').__version__}, torch {torch.__version__}"

    def order(self, texts: list[str], lengths: list[int]) -> list[int]:
        # sentence-transformers sorts by character length, longest first.
        return sorted(range(len(texts)), key=lambda j: -len(texts[j]))

    def embed(self, texts: list[str]):
        return self.model.encode(texts, batch_size=self.batch, convert_to_numpy=True)


class OnnxRuntimePeer:
    name = "onnxruntime"

    def __init__(self, model_dir: Path, batch: int, threads: int, max_len: int, int8: bool = False):
        import numpy as np
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.np = np
        self.path = export_onnx(model_dir)
        if int8:
            self.name = "onnxruntime int8"
            self.path = quantize_onnx(self.path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.batch = batch
        self.max_len = max_len
        self.version = f"onnxruntime {ort.__version__}"

    def order(self, texts: list[str], lengths: list[int]) -> list[int]:
        return sorted(range(len(texts)), key=lambda j: -lengths[j])

    def embed(self, texts: list[str]):
        np = self.np
        enc = self.tok(texts, truncation=True, max_length=self.max_len)["input_ids"]
        order = sorted(range(len(texts)), key=lambda j: -len(enc[j]))
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(order), self.batch):
            idx = order[start : start + self.batch]
            s = max(len(enc[j]) for j in idx)
            ids = np.zeros((len(idx), s), dtype=np.int64)
            mask = np.zeros((len(idx), s), dtype=np.int64)
            for r, j in enumerate(idx):
                ids[r, : len(enc[j])] = enc[j]
                mask[r, : len(enc[j])] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
        return out


def quantize_onnx(fp32: Path) -> Path:
    """onnxruntime's dynamic int8 quantisation of the fp32 export (cached beside it)."""
    dest = fp32.with_name("model-int8-dynamic.onnx")
    if not dest.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = dest.with_suffix(".partial.onnx")
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        tmp.rename(dest)
        print(f"quantised {dest}", file=sys.stderr)
    return dest


def export_onnx(model_dir: Path) -> Path:
    """Exports the encoder (last hidden state) once; returns the cached file."""
    dest = ROOT / "data" / "onnx" / model_dir.name / "model.onnx"
    if dest.is_file():
        return dest
    import torch
    from transformers import AutoModel, AutoTokenizer

    dest.parent.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(str(model_dir)).eval()

    class Encoder(torch.nn.Module):
        # Keyword arguments: BertModel.forward's positional order changes between versions.
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = Encoder().eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    sample = tok(["an example sentence to trace the graph", "short"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "seq"}
    tmp = dest.with_suffix(".partial.onnx")
    with torch.no_grad():
        torch.onnx.export(
            model,
            tuple(sample[n] for n in names),
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    tmp.replace(dest)
    print(f"exported {dest}", file=sys.stderr)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--system", required=True, choices=["st", "ort", "ort-int8"])
    ap.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--input", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--json")
    ap.add_argument("--save-npy", help="write the last run's embeddings here (for cosine checks)")
    a = ap.parse_args()

    model_dir = Path(a.model)
    texts = Path(a.input).read_text(encoding="utf-8").split("\n")
    if texts and texts[-1] == "":
        texts.pop()
    texts = texts[: a.limit] if a.limit else texts
    max_len = max_seq_length(model_dir)

    t0 = time.perf_counter()
    if a.system == "st":
        peer = SentenceTransformersPeer(model_dir, a.batch, a.threads)
    else:
        peer = OnnxRuntimePeer(model_dir, a.batch, a.threads, max_len, int8=a.system == "ort-int8")
    load_s = time.perf_counter() - t0

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    lengths = [len(x) for x in tok(texts, truncation=True, max_length=max_len)["input_ids"]]
    order = peer.order(texts, lengths)
    padded_tokens, padded_sq = padded(lengths, order, a.batch)

    peer.embed(texts[:WARMUP_TEXTS])
    runs = []
    out = None
    for r in range(a.runs):
        c0, w0 = time.process_time(), time.perf_counter()
        out = peer.embed(texts)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        runs.append({"wall_s": wall, "cpu_s": cpu})
        print(
            f"{peer.name} run {r + 1}/{a.runs}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
            f"{len(texts) / wall:.1f} sentences/s",
            file=sys.stderr,
        )
    wall = statistics.median(x["wall_s"] for x in runs)
    cpu = statistics.median(x["cpu_s"] for x in runs)
    flops = flop_model(model_dir)
    tokens = sum(lengths)
    useful = flops["per_token"] * tokens + flops["per_token_pair"] * sum(n * n for n in lengths)
    executed = flops["per_token"] * padded_tokens + flops["per_token_pair"] * padded_sq
    report = {
        "system": peer.name,
        "version": peer.version,
        "model": a.model,
        "precision": "int8" if a.system == "ort-int8" else "f32",
        "input": a.input,
        "sentences": len(texts),
        "batch": a.batch,
        "threads": a.threads,
        "runs": runs,
        "wall_s": wall,
        "cpu_s": cpu,
        "sentences_per_s": len(texts) / wall,
        "tokens_per_s": tokens / wall,
        "tokens": tokens,
        "padded_tokens": padded_tokens,
        "flops": flops,
        "useful_gflop": useful / 1e9,
        "executed_gflop": executed / 1e9,
        "gflop_per_s": useful / 1e9 / wall,
        "executed_gflop_per_s": executed / 1e9 / wall,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "load_s": load_s,
    }
    if a.save_npy:
        import numpy as np

        np.save(a.save_npy, out.astype("float32"))
    text = json.dumps(report, indent=2)
    if a.json:
        Path(a.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
