#!/usr/bin/env python3
"""Dense retrieval quality of `sextant embed` per precision on a BEIR-format judged set, and
how close the reduced-precision vectors are to f32.

  .venv-ref/bin/python bench/dense_eval.py [--data data/text/gcide-5k] [--precision f32,bf16]
      [--threads 2] [--sextant PATH] [--model models/all-MiniLM-L6-v2]
      [--cosine-texts data/text/sentences.txt --cosine-limit 2000] [--out-dir bench/out/dense]

For every precision: embeds the corpus (`title + " " + text`, one line per document, line
breaks replaced by spaces, `--passage`) and the queries (`--query`) with `sextant embed`
(.npy), ranks the whole corpus for every query by exact cosine, keeps the top 100 (TREC run
file `run-<precision>.trec`) and scores it with bench/ir_metrics.py (nDCG@10, Recall@100,
MRR@10, MAP over the qrels' queries). Then compares every other precision with the first
(f32): per-vector cosine (minimum, mean, 0.1% quantile) on documents, queries and, with
--cosine-texts, the first --cosine-limit lines of that file, and the nDCG@10 difference.
Writes dense-eval.json and dense-eval.md to --out-dir and prints the Markdown. Needs numpy
(in .venv-ref).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import ir_metrics  # noqa: E402

TOP = 100


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "text", "gcide-5k"),
                    help="BEIR directory: corpus.jsonl, queries.jsonl, qrels/test.tsv")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--sextant", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "sextant"))
    ap.add_argument("--precision", default="f32,bf16",
                    help="comma-separated; the first is the reference of the comparisons")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cosine-texts", help="extra text file (one per line) for the cosine check")
    ap.add_argument("--cosine-limit", type=int, default=2000)
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "out", "dense"))
    return ap.parse_args()


def one_line(s):
    return " ".join(s.split())


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def embed(a, precision, inp, out, flag):
    cmd = [a.sextant, "embed", "--model", a.model, "--input", inp, "--output", out,
           "--threads", str(a.threads), "--precision", precision]
    if flag:
        cmd.append(flag)
    print("+ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    v = np.load(out).astype(np.float32)
    return v


def unit(v):
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(n == 0, 1, n)


def search(q, d, qids, dids, path, tag):
    """Exact cosine top-100 per query: the run as {qid: {docid: score}}, also written as TREC."""
    scores = unit(q) @ unit(d).T
    run = {}
    with open(path, "w") as f:
        for i, qid in enumerate(qids):
            top = np.argpartition(-scores[i], TOP - 1)[:TOP] if len(dids) > TOP else \
                np.arange(len(dids))
            top = top[np.argsort(-scores[i][top], kind="stable")]
            run[qid] = {}
            for rank, j in enumerate(top, 1):
                s = float(scores[i][j])
                run[qid].setdefault(dids[j], s)
                f.write(f"{qid} Q0 {dids[j]} {rank} {s:.8f} {tag}\n")
    return run


def cosines(a, b):
    c = np.sum(unit(a) * unit(b), axis=1)
    return {"n": int(len(c)), "min": float(c.min()), "mean": float(c.mean()),
            "q0.001": float(np.quantile(c, 0.001)), "argmin": int(c.argmin())}


def main():
    a = parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    precisions = a.precision.split(",")
    corpus = read_jsonl(os.path.join(a.data, "corpus.jsonl"))
    queries = read_jsonl(os.path.join(a.data, "queries.jsonl"))
    qrels = ir_metrics.read_qrels(os.path.join(a.data, "qrels", "test.tsv"))
    dids = [d["_id"] for d in corpus]
    qids = [q["_id"] for q in queries]
    docs_txt = os.path.join(a.out_dir, "corpus.txt")
    queries_txt = os.path.join(a.out_dir, "queries.txt")
    write_lines(docs_txt, [one_line((d.get("title", "") + " " + d.get("text", "")).strip())
                           for d in corpus])
    write_lines(queries_txt, [one_line(q["text"]) for q in queries])
    extra_txt = None
    if a.cosine_texts:
        with open(a.cosine_texts, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f][: a.cosine_limit]
        extra_txt = os.path.join(a.out_dir, "cosine-texts.txt")
        write_lines(extra_txt, lines)

    vecs, metrics = {}, {}
    for p in precisions:
        d = embed(a, p, docs_txt, os.path.join(a.out_dir, f"corpus-{p}.npy"), "--passage")
        q = embed(a, p, queries_txt, os.path.join(a.out_dir, f"queries-{p}.npy"), "--query")
        assert d.shape[0] == len(dids) and q.shape[0] == len(qids), (d.shape, q.shape)
        x = None
        if extra_txt:
            x = embed(a, p, extra_txt, os.path.join(a.out_dir, f"cosine-texts-{p}.npy"), None)
        vecs[p] = (d, q, x)
        run = search(q, d, qids, dids, os.path.join(a.out_dir, f"run-{p}.trec"), f"sextant-{p}")
        metrics[p] = ir_metrics.evaluate(qrels, run)

    ref = precisions[0]
    compare = {}
    for p in precisions[1:]:
        c = {"documents": cosines(vecs[p][0], vecs[ref][0]),
             "queries": cosines(vecs[p][1], vecs[ref][1]),
             "ndcg@10_delta": metrics[p]["ndcg@10"] - metrics[ref]["ndcg@10"]}
        if extra_txt:
            c["cosine_texts"] = cosines(vecs[p][2], vecs[ref][2])
        compare[p] = c

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": a.data, "model": a.model, "documents": len(dids), "queries": len(qids),
        "threads": a.threads, "metrics": metrics, "against": ref, "compare": compare,
    }
    with open(os.path.join(a.out_dir, "dense-eval.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    md = [f"# Dense retrieval per precision ({report['date']})", "",
          f"{len(dids)} documents, {len(qids)} queries ({os.path.basename(a.data)}), "
          f"{os.path.basename(a.model)}, exact cosine top {TOP}.", "",
          "| precision | " + " | ".join(ir_metrics.METRICS) + " | queries |",
          "|---|" + "---:|" * (len(ir_metrics.METRICS) + 1)]
    for p in precisions:
        m = metrics[p]
        md.append(f"| {p} | " + " | ".join(f"{m[k]:.4f}" for k in ir_metrics.METRICS)
                  + f" | {m['queries']} |")
    md += ["", f"Against {ref}:", "",
           "| precision | vectors | n | min cosine | 0.1% quantile | mean cosine |",
           "|---|---|---:|---:|---:|---:|"]
    for p, c in compare.items():
        for name in ("documents", "queries", "cosine_texts"):
            if name in c:
                s = c[name]
                md.append(f"| {p} | {name} | {s['n']} | {s['min']:.6f} | {s['q0.001']:.6f} | "
                          f"{s['mean']:.7f} |")
        md.append(f"| {p} | nDCG@10 Δ | | {c['ndcg@10_delta']:+.4f} | | |")
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out_dir, "dense-eval.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
