#!/usr/bin/env python3
"""Vector-file helpers for Sextant's ANN benchmarks (numpy only).

Formats:
  .fvecs  per vector: int32 little-endian dim, then dim float32
  .ivecs  same, with int32 values (ground-truth neighbour ids)
  .npy    numpy's own format (2-D float32 / int32 arrays)

Importable: read_fvecs, write_fvecs, read_ivecs, write_ivecs, load_vectors,
save_vectors, read_idx, ground_truth.

Command line (used by scripts/fetch-ann-data.sh and bench/compare_ann.py):
  ann_data.py fashion-mnist SRC_DIR OUT_DIR     idx .gz files -> base/queries.fvecs
  ann_data.py glove EMB.npy OUT_DIR             400k x 50 -> 390k base + 10k queries
  ann_data.py gt --base B --queries Q --metric l2|cosine|dot [--k 100] --out GT.ivecs
  ann_data.py subset --base B --queries Q --n-base N --n-queries M --out-dir DIR
  ann_data.py summary FILE...
"""
import argparse
import gzip
import os
import sys

import numpy as np


# ---------------------------------------------------------------- vecs files

def _read_vecs(path, dtype):
    raw = np.fromfile(path, dtype="<i4")
    if raw.size == 0:
        return np.zeros((0, 0), dtype=dtype)
    dim = int(raw[0])
    if dim <= 0 or raw.size % (dim + 1) != 0:
        raise ValueError(f"{path}: not a vecs file (dim {dim}, {raw.size} words)")
    rows = raw.reshape(-1, dim + 1)
    if not np.all(rows[:, 0] == dim):
        raise ValueError(f"{path}: vectors of differing dimension")
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def _write_vecs(path, arr, dtype):
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.ndim != 2:
        raise ValueError("expected a 2-D array")
    n, dim = arr.shape
    rows = np.empty((n, dim + 1), dtype="<i4")
    rows[:, 0] = dim
    rows[:, 1:] = arr.view("<i4")
    tmp = f"{path}.tmp"
    rows.tofile(tmp)
    os.replace(tmp, path)  # never leave a half-written file behind


def read_fvecs(path):
    return _read_vecs(path, "<f4")


def write_fvecs(path, arr):
    _write_vecs(path, arr, "<f4")


def read_ivecs(path):
    return _read_vecs(path, "<i4")


def write_ivecs(path, arr):
    _write_vecs(path, arr, "<i4")


def load_vectors(path, dtype=np.float32):
    """Reads .fvecs, .ivecs or .npy into a C-contiguous 2-D array of dtype."""
    if path.endswith(".npy"):
        arr = np.load(path)
    elif path.endswith(".fvecs"):
        arr = read_fvecs(path)
    elif path.endswith(".ivecs"):
        arr = read_ivecs(path)
    else:
        raise ValueError(f"{path}: expected .fvecs, .ivecs or .npy")
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def save_vectors(path, arr):
    """Writes by extension: .fvecs (float32), .ivecs (int32) or .npy."""
    if path.endswith(".npy"):
        np.save(path, np.ascontiguousarray(arr))
    elif path.endswith(".fvecs"):
        write_fvecs(path, arr)
    elif path.endswith(".ivecs"):
        write_ivecs(path, arr)
    else:
        raise ValueError(f"{path}: expected .fvecs, .ivecs or .npy")


# ---------------------------------------------------------------- sources

def read_idx(path):
    """Reads an (optionally gzipped) MNIST idx file of unsigned bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\0\0" or dtype_code != 0x08:
        raise ValueError(f"{path}: not a uint8 idx file")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def convert_fashion_mnist(src_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for src, dst in (("train-images-idx3-ubyte.gz", "base.fvecs"),
                     ("t10k-images-idx3-ubyte.gz", "queries.fvecs")):
        images = read_idx(os.path.join(src_dir, src))
        # raw pixel values 0..255 as float32, like ann-benchmarks
        write_fvecs(os.path.join(out_dir, dst), images.reshape(len(images), -1).astype(np.float32))


def convert_glove(emb_npy, out_dir, n_queries=10_000, seed=42):
    emb = np.ascontiguousarray(np.load(emb_npy), dtype=np.float32)
    perm = np.random.default_rng(seed).permutation(len(emb))
    base_idx, query_idx = perm[:-n_queries], perm[-n_queries:]
    os.makedirs(out_dir, exist_ok=True)
    # written as-is (not normalised): the engines normalise for cosine
    write_fvecs(os.path.join(out_dir, "base.fvecs"), emb[base_idx])
    write_fvecs(os.path.join(out_dir, "queries.fvecs"), emb[query_idx])


# ---------------------------------------------------------------- ground truth

def _normalise(x):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def ground_truth(base, queries, k=100, metric="l2", mem_bytes=256 << 20):
    """Exact top-k ids (int32, best first) by brute force.

    Candidates come from float32 matrix products over query chunks (temporaries
    are a few times mem_bytes, well under 4 GB), then the best k + 64 candidates are
    re-scored in float64 so float32 rounding cannot reorder close neighbours.
    Ties are broken by the lower id.
    """
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if metric == "cosine":
        base, queries = _normalise(base), _normalise(queries)
    elif metric not in ("l2", "dot"):
        raise ValueError(f"unknown metric {metric}")
    n = len(base)
    k = min(k, n)
    n_cand = min(n, k + 64)
    base_sq = np.einsum("ij,ij->i", base, base) if metric == "l2" else None
    # bound both the float32 score matrix and the float64 re-scoring block
    chunk = max(1, min(mem_bytes // (4 * n), mem_bytes // (8 * n_cand * base.shape[1])))
    out = np.empty((len(queries), k), dtype=np.int32)
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        # smaller is better: l2 drops |q|^2 (constant per row); similarity is negated
        scores = q @ base.T
        scores *= -2.0 if metric == "l2" else -1.0
        if base_sq is not None:
            scores += base_sq
        cand = np.argpartition(scores, n_cand - 1, axis=1)[:, :n_cand] if n_cand < n \
            else np.broadcast_to(np.arange(n), scores.shape)
        del scores
        cvec = base[cand].astype(np.float64)           # (chunk, n_cand, dim)
        q64 = q.astype(np.float64)[:, None, :]
        if metric == "l2":
            exact = ((cvec - q64) ** 2).sum(axis=2)
        else:
            exact = -(cvec * q64).sum(axis=2)
        order = np.lexsort((cand, exact), axis=1)[:, :k]
        out[start:start + len(q)] = np.take_along_axis(cand, order, axis=1)
    return out


# ---------------------------------------------------------------- CLI

def _summary(paths):
    for p in paths:
        arr = load_vectors(p, np.int32 if p.endswith(".ivecs") else np.float32)
        print(f"  {p}: {arr.shape[0]} x {arr.shape[1]} {arr.dtype}, "
              f"{os.path.getsize(p) / 2**20:.1f} MiB")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fashion-mnist")
    p.add_argument("src_dir")
    p.add_argument("out_dir")
    p = sub.add_parser("glove")
    p.add_argument("emb_npy")
    p.add_argument("out_dir")
    p = sub.add_parser("gt")
    p.add_argument("--base", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--metric", required=True, choices=["l2", "cosine", "dot"])
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--out", required=True)
    p = sub.add_parser("subset")
    p.add_argument("--base", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--n-base", type=int, required=True)
    p.add_argument("--n-queries", type=int, required=True)
    p.add_argument("--out-dir", required=True)
    p = sub.add_parser("summary")
    p.add_argument("files", nargs="+")
    a = ap.parse_args(argv)

    if a.cmd == "fashion-mnist":
        convert_fashion_mnist(a.src_dir, a.out_dir)
    elif a.cmd == "glove":
        convert_glove(a.emb_npy, a.out_dir)
    elif a.cmd == "gt":
        gt = ground_truth(load_vectors(a.base), load_vectors(a.queries), a.k, a.metric)
        save_vectors(a.out, gt)
        print(f"wrote {a.out}: {gt.shape[0]} x {gt.shape[1]}")
    elif a.cmd == "subset":
        os.makedirs(a.out_dir, exist_ok=True)
        write_fvecs(os.path.join(a.out_dir, "base.fvecs"), load_vectors(a.base)[:a.n_base])
        write_fvecs(os.path.join(a.out_dir, "queries.fvecs"), load_vectors(a.queries)[:a.n_queries])
    elif a.cmd == "summary":
        _summary(a.files)


if __name__ == "__main__":
    sys.exit(main())
