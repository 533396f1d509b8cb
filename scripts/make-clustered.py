#!/usr/bin/env python3
"""Writes a seeded clustered synthetic vector set: OUT/base.npy, OUT/queries.npy (float32,
L2-normalised rows) — the stand-in for a real embedding set where none of the size fits here.

Each vector is a cluster centre plus a low-rank spread shared by all clusters plus a little
isotropic noise, normalised: structure like real sentence embeddings (many topics, a few dozen
directions of variation, nearly unit norm), not uniform noise. The queries come from the same
distribution and are not in the base.

  .venv-peers/bin/python scripts/make-clustered.py --n 1000000 --dim 384 --queries 1000 \\
      --out data/ann/clustered-1m
"""
import argparse
import os

import numpy as np


def vectors(rng, n, centres, spread, noise):
    out = np.empty((n, centres.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        labels = rng.integers(len(centres), size=m)
        z = rng.standard_normal((m, spread.shape[0]), dtype=np.float32)
        x = centres[labels] + z @ spread + noise * rng.standard_normal((m, centres.shape[1]), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:start + m] = x
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--rank", type=int, default=48, help="directions of the shared spread")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.clusters, a.dim), dtype=np.float32)
    spread = rng.standard_normal((a.rank, a.dim), dtype=np.float32) * (0.8 / np.sqrt(a.rank))
    noise = np.float32(0.25)
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "base.npy"), vectors(rng, a.n, centres, spread, noise))
    np.save(os.path.join(a.out, "queries.npy"), vectors(rng, a.queries, centres, spread, noise))
    print(f"wrote {a.n} + {a.queries} × {a.dim}-d vectors ({a.clusters} clusters, rank {a.rank}) to {a.out}")


if __name__ == "__main__":
    main()
