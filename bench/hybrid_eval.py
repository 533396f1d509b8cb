#!/usr/bin/env python3
"""Hybrid retrieval quality on a judged BEIR-format set, through the `sextant` CLI.

Ingests the corpus once (dense all-MiniLM-L6-v2 + BM25 + SPLADE), then runs every query set
through `sextant search --queries … --run-out` per configuration (bm25, dense, splade, hybrid
with each fusion, hybrid + rerank) and scores the runs with bench/ir_metrics.py (nDCG@10,
Recall@100, MRR@10, MAP; trec_eval conventions). Writes a JSON and a Markdown table.

Usage:
  python3 bench/hybrid_eval.py --data-dir data/text/gcide-5k [--db /tmp/sx-eval] \
      [--collection g5k] [--splade models/splade-mini | none] [--out bench/out/hybrid-g5k]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import ir_metrics  # noqa: E402

CONFIGS = [
    ("bm25", ["--mode", "bm25"]),
    ("dense", ["--mode", "dense"]),
    ("splade", ["--mode", "splade"]),
    ("hybrid dense+bm25 rrf", ["--mode", "hybrid", "--sources", "dense,bm25", "--fusion", "rrf"]),
    ("hybrid dense+bm25 weighted", ["--mode", "hybrid", "--sources", "dense,bm25", "--fusion", "weighted"]),
    ("hybrid dense+bm25 weighted-z", ["--mode", "hybrid", "--sources", "dense,bm25", "--fusion", "weighted-z"]),
    ("hybrid dense+bm25 dbsf", ["--mode", "hybrid", "--sources", "dense,bm25", "--fusion", "dbsf"]),
    ("hybrid dense+bm25+splade rrf", ["--mode", "hybrid", "--sources", "dense,bm25,splade", "--fusion", "rrf"]),
    ("hybrid dense+bm25+splade dbsf", ["--mode", "hybrid", "--sources", "dense,bm25,splade", "--fusion", "dbsf"]),
    ("hybrid dense+bm25 rrf + maxsim rerank top 30",
     ["--mode", "hybrid", "--sources", "dense,bm25", "--fusion", "rrf", "--rerank", "maxsim", "--rerank-top", "30"]),
    ("hybrid dense+bm25 weighted + maxsim rerank top 30",
     ["--mode", "hybrid", "--sources", "dense,bm25", "--fusion", "weighted", "--rerank", "maxsim", "--rerank-top", "30"]),
]


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data/text/gcide-5k")
    ap.add_argument("--db", type=Path, default=Path("/tmp/sx-eval"))
    ap.add_argument("--collection", default="g5k")
    ap.add_argument("--splade", default="models/splade-mini", help="SPLADE model dir, or none")
    ap.add_argument("--bin", default=str(ROOT / "target/release/sextant"))
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--only", help="comma-separated config names to run")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/hybrid-g5k")
    a = ap.parse_args()
    corpus, queries = a.data_dir / "corpus.jsonl", a.data_dir / "queries.jsonl"
    qrels = a.data_dir / "qrels" / "test.tsv"
    if not qrels.exists():
        qrels = a.data_dir / "qrels"
    base = [a.bin, "--data", str(a.db)]
    listed = subprocess.run(base + ["--json", "collection", "list"], capture_output=True, text=True)
    ingest = None
    if a.collection not in listed.stdout:
        t = time.time()
        splade = ["--no-splade"] if a.splade == "none" else ["--splade", a.splade]
        out = run(base + ["--json", "ingest", a.collection, "--jsonl", str(corpus)] + splade,
                  capture_output=True, text=True)
        ingest = json.loads(out.stdout)
        ingest["wall_s"] = time.time() - t
    qrels_map = ir_metrics.read_qrels(str(qrels))
    results = {}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    only = set(a.only.split(",")) if a.only else None
    for name, args in CONFIGS:
        if only and name not in only:
            continue
        path = a.out.parent / f"{a.out.name}-{name.replace(' ', '_').replace('+', 'p')}.trec"
        t = time.time()
        run(base + ["search", a.collection, "--queries", str(queries), "--k", str(a.k),
                    "--run-out", str(path)] + args)
        secs = time.time() - t
        m = ir_metrics.evaluate(qrels_map, ir_metrics.read_run(str(path)))
        m = {k: v for k, v in m.items() if not isinstance(v, dict)}
        m["seconds"] = secs
        results[name] = m
        print(name, json.dumps(m), file=sys.stderr, flush=True)
    report = {"data": str(a.data_dir), "ingest": ingest, "results": results}
    a.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = ["| run | nDCG@10 | Recall@100 | MRR@10 | MAP | s (all queries) |", "|---|---:|---:|---:|---:|---:|"]
    for name, m in results.items():
        lines.append(f"| {name} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | {m['mrr@10']:.4f} | "
                     f"{m['map']:.4f} | {m['seconds']:.1f} |")
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
