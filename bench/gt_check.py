#!/usr/bin/env python3
"""Checks a ground-truth file of `sextant bench gt` against numpy in float64: the command behind
"its top-10 matches numpy's float64-rescored ground truth" in BENCHMARKS.md.

  .venv-peers/bin/python bench/gt_check.py --base B.fvecs --queries Q.fvecs --gt GT.ivecs
      [--metric cosine|dot|l2] [--k 10] [--json OUT]

For every query, numpy scores all base vectors in float64 (cosine: both sides L2-normalised
in float64; a zero vector scores 0) and takes the exact top k. A query *matches* when the
first k ids of the ground truth are the same set as numpy's top k, or differ only among ids
whose float64 scores tie with numpy's k-th score within 1e-12 relative (so the order of
exact ties cannot count as a mismatch). Reports the number of matching queries and, for the
others, the worst float64 score gap between the ground truth's k-th id and numpy's k-th.
"""
import argparse
import json

import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    assert (rows[:, 0] == dim).all(), f"{path}: rows of different dimensions"
    return rows[:, 1:].view(dtype) if dtype != np.int32 else rows[:, 1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--metric", default="cosine", choices=["cosine", "dot", "l2"])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--json")
    a = ap.parse_args()
    base = read_vecs(a.base, np.float32).astype(np.float64)
    queries = read_vecs(a.queries, np.float32).astype(np.float64)
    gt = read_vecs(a.gt, np.int32)[:, : a.k]
    assert len(gt) == len(queries), "one ground-truth row per query"
    if a.metric == "cosine":
        for m in (base, queries):
            n = np.linalg.norm(m, axis=1, keepdims=True)
            np.divide(m, n, out=m, where=n > 0)
    base_sq = (base * base).sum(axis=1) if a.metric == "l2" else None
    matches, worst = 0, 0.0
    for start in range(0, len(queries), a.block):
        q = queries[start:start + a.block]
        s = q @ base.T  # higher is better
        if a.metric == "l2":
            s = 2 * s - base_sq[None, :] - (q * q).sum(axis=1)[:, None]
        top = np.argpartition(-s, a.k - 1, axis=1)[:, : a.k]
        for i in range(len(q)):
            row = s[i]
            kth = row[top[i]].min()
            mine = set(top[i].tolist())
            theirs = set(gt[start + i].tolist())
            tol = 1e-12 * max(1.0, abs(kth))
            if mine == theirs or all(row[j] >= kth - tol for j in theirs):
                matches += 1
            else:
                worst = max(worst, float(kth - row[gt[start + i]].min()))
    total = len(queries)
    print(f"top-{a.k} of {a.gt} equals numpy float64 for {matches} of {total} queries"
          + (f" (largest score gap {worst:.3e})" if matches < total else ""))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"gt": a.gt, "k": a.k, "metric": a.metric, "queries": total,
                       "matching": matches, "largest_gap": worst}, f, indent=2)


if __name__ == "__main__":
    main()
