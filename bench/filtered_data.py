#!/usr/bin/env python3
"""Builds the filtered-search benchmark data: payloads, filters and exact
filtered ground truth for one ANN data set (numpy only).

  python bench/filtered_data.py [fashion-mnist|glove] [--queries-n 1000] [--k 100]
                                [--selectivities 1,10,50] [--out-dir DIR]

Reads data/ann/<set>/{base,queries}.fvecs (scripts/fetch-ann-data.sh makes them)
and writes data/filtered/<dataset>/:

  payloads.jsonl   line i = payload of base point i: {"label": int, "bucket": int}
                   bucket = numpy default_rng(7).permutation(n) % 100, so every bucket
                   value 0..99 is held by exactly n/100 points (1%), independent of the
                   vectors. label = the Fashion-MNIST class 0..9 (from Debian's
                   dataset-fashion-mnist train labels); omitted for GloVe.
  queries.fvecs    the first N queries of the set (every system uses these)
  gt-all.ivecs     exact unfiltered top-k ids (k = 100), best first
  gt-sel1.ivecs    exact top-k among points with bucket < 1   (1% selectivity)
  gt-sel10.ivecs   ... bucket < 10  (10%)
  gt-sel50.ivecs   ... bucket < 50  (50%)
                   (--selectivities 2,5,20 makes gt-sel2/5/20 instead: bucket < p for each p)
  meta.json        files, metric, n, dim, and each filter in Sextant JSON,
                   LanceDB SQL and Chroma `where` forms with its GT file

Ground truth uses scripts/ann_data.ground_truth over the allowed subset (float32
candidates re-scored in float64, ties to the lower id), ids mapped back to
base ids. Cosine (GloVe) normalises both sides. Idempotent: rewrites everything
each run (a few seconds for Fashion-MNIST).
"""
import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from ann_data import ground_truth, load_vectors, read_idx, write_fvecs, write_ivecs  # noqa: E402

DATASETS = {
    # name: (data/ann dir, metric)
    "fashion-mnist": ("data/ann/fashion-mnist-784-euclidean", "l2"),
    "glove": ("data/ann/glove-50-angular", "cosine"),
    # 384-d, the size of the default embedding model's vectors: make it with
    # scripts/make-clustered.py --n 100000 --dim 384 --queries 1000 --out data/ann/clustered-100k
    "clustered-100k": ("data/ann/clustered-100k", "cosine"),
}
FASHION_LABELS = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
BUCKETS = 100
SEED = 7
# Default selectivities in percent; each filter is bucket < percent (file tag sel<percent>)
SELECTIVITIES = "1,10,50"


def fashion_labels(n):
    path = FASHION_LABELS
    if not os.path.exists(path):
        try:
            import subprocess
            out = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True,
                                 text=True).stdout.split()
            path = next(p for p in out if p.endswith("train-labels-idx1-ubyte.gz"))
        except (OSError, StopIteration):
            return None
    labels = read_idx(path)
    if labels.ndim != 1 or len(labels) != n:
        print(f"labels: {path} has shape {labels.shape}, expected ({n},); omitting label",
              file=sys.stderr)
        return None
    return labels.astype(np.int64)


def filter_forms(bound):
    return {
        "sextant": {"must": [{"key": "bucket", "range": {"lt": bound}}]},
        "lancedb": f"bucket < {bound}",
        "chroma": {"bucket": {"$lt": bound}},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", nargs="?", default="fashion-mnist", choices=sorted(DATASETS))
    ap.add_argument("--queries-n", type=int, default=1000, help="first N queries (default 1000)")
    ap.add_argument("--k", type=int, default=100, help="ground-truth depth (default 100)")
    ap.add_argument("--out-dir", help="default data/filtered/<dataset>")
    ap.add_argument("--selectivities", default=SELECTIVITIES,
                    help=f"filters as percentages 1..99, comma-separated (default {SELECTIVITIES})")
    a = ap.parse_args(argv)

    try:
        percents = sorted({int(p) for p in a.selectivities.split(",")})
    except ValueError:
        ap.error(f"--selectivities: expected whole percentages, got {a.selectivities!r}")
    if not percents or percents[0] < 1 or percents[-1] > 99:
        ap.error(f"--selectivities: each must be within 1..99, got {a.selectivities!r}")
    src, metric = DATASETS[a.dataset]
    src = os.path.join(ROOT, src)
    out = a.out_dir or os.path.join(ROOT, "data", "filtered", a.dataset)
    os.makedirs(out, exist_ok=True)
    ext = ".npy" if os.path.exists(os.path.join(src, "base.npy")) else ".fvecs"
    base_path = os.path.join(src, "base" + ext)
    if not os.path.exists(base_path):
        sys.exit(f"{base_path} missing: run `bash scripts/fetch-ann-data.sh {a.dataset}` "
                 "(or scripts/make-clustered.py for clustered-100k)")
    base = load_vectors(base_path)
    queries = load_vectors(os.path.join(src, "queries" + ext))[:a.queries_n]
    n, dim = base.shape
    if n % BUCKETS:
        print(f"warning: n={n} is not a multiple of {BUCKETS}; buckets differ by one point",
              file=sys.stderr)

    bucket = np.random.default_rng(SEED).permutation(n) % BUCKETS
    labels = fashion_labels(n) if a.dataset == "fashion-mnist" else None

    tmp = os.path.join(out, "payloads.jsonl.tmp")
    with open(tmp, "w") as f:
        if labels is not None:
            f.writelines(f'{{"label": {int(l)}, "bucket": {int(b)}}}\n' for l, b in zip(labels, bucket))
        else:
            f.writelines(f'{{"bucket": {int(b)}}}\n' for b in bucket)
    os.replace(tmp, os.path.join(out, "payloads.jsonl"))
    write_fvecs(os.path.join(out, "queries.fvecs"), queries)
    print(f"{a.dataset}: {n} x {dim} base, {len(queries)} queries, metric {metric}; "
          f"labels {'from ' + FASHION_LABELS if labels is not None else 'omitted'}")

    filters = []
    gt = ground_truth(base, queries, a.k, metric)
    write_ivecs(os.path.join(out, "gt-all.ivecs"), gt)
    filters.append({"selectivity": None, "name": "all", "allowed": n, "gt": "gt-all.ivecs"})
    print(f"  gt-all.ivecs: {gt.shape}")
    for bound in percents:
        sel, tag = bound / 100, f"sel{bound}"
        allowed = np.flatnonzero(bucket < bound)
        sub = ground_truth(base[allowed], queries, a.k, metric)
        gt = allowed[sub].astype(np.int32)
        assert np.all(bucket[gt] < bound)
        name = f"gt-{tag}.ivecs"
        write_ivecs(os.path.join(out, name), gt)
        filters.append(dict({"selectivity": sel, "name": tag, "allowed": int(len(allowed)),
                             "gt": name}, **filter_forms(bound)))
        print(f"  {name}: {gt.shape}, {len(allowed)} allowed points ({len(allowed) / n:.2%})")

    meta = {
        "dataset": a.dataset,
        "metric": metric,
        "n": n,
        "dim": dim,
        "queries_n": len(queries),
        "gt_k": a.k,
        "base": os.path.relpath(base_path, ROOT),
        "queries": "queries.fvecs",
        "payloads": "payloads.jsonl",
        "payload_fields": {"bucket": f"int 0..{BUCKETS - 1}: default_rng({SEED}).permutation(n) % {BUCKETS}",
                           **({"label": "int 0..9: Fashion-MNIST class"} if labels is not None else {})},
        "notes": "file names are relative to this directory, except base (relative to the repo root); "
                 "ids are base row numbers; gt files are exact top-gt_k, best first",
        "filters": filters,
    }
    tmp = os.path.join(out, "meta.json.tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, os.path.join(out, "meta.json"))
    print(f"wrote {out}/meta.json")


if __name__ == "__main__":
    sys.exit(main())
