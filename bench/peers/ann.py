#!/usr/bin/env python3
"""Benchmarks peer HNSW libraries (hnswlib, faiss IndexHNSWFlat, usearch) on one
data set with the same parameters as `sextant bench ann`, and writes the same
JSON shape: {"runs": [ {system, version, dataset, metric, params, build,
memory_bytes, memory_method, results: [{ef, recall, qps, qps_runs, wall_s, cpu_s}]} ]}.

Queries are issued one at a time from a Python loop (as a service would), so
per-call Python overhead (about a microsecond or two) is included for every peer.
For cosine, faiss gets vectors normalised by numpy outside the timed loops
(faiss has no cosine metric); hnswlib and usearch normalise internally.

Run with the venv from bench/peers/setup.sh:
  .venv-peers/bin/python bench/peers/ann.py --base B --queries Q --gt GT \
      --metric l2 --ef 10,16,32 --runs 3 --json out.json
"""
import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help=".fvecs or .npy float32")
    ap.add_argument("--queries", required=True, help=".fvecs or .npy float32")
    ap.add_argument("--gt", required=True, help=".ivecs or .npy int32, best first")
    ap.add_argument("--metric", required=True, choices=["l2", "cosine", "dot"])
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="10,16,24,32,48,64,96,128,192,256,384,512")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="build threads; search is one query at a time")
    ap.add_argument("--runs", type=int, default=3, help="timed passes per ef; the median is reported")
    ap.add_argument("--systems", default="hnswlib,faiss,usearch",
                    help="hnswlib, faiss, usearch, faiss-ivfpq, faiss-ivfpq-noref")
    ap.add_argument("--nprobe", default="", help="faiss-ivfpq: lists scanned, comma-separated")
    ap.add_argument("--nlist", type=int, default=0, help="faiss-ivfpq: lists (0: about sqrt(n), as sextant)")
    ap.add_argument("--pq-m", type=int, default=0,
                    help="faiss-ivfpq: sub-quantisers (0: ceil(dim/4) at 4 bits, ceil(dim/8) at 8)")
    ap.add_argument("--pq-bits", type=int, default=4, choices=[4, 8],
                    help="faiss-ivfpq: bits per code (4: fast scan PQ{m}x4fs; 8: PQ{m}x8)")
    ap.add_argument("--opq", action="store_true", help="faiss-ivfpq: an OPQ{m} rotation first")
    ap.add_argument("--json", help="write results here")
    return ap.parse_args()


ARGS = parse_args()
# Thread limits must be in place before numpy/faiss load their thread pools.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from ann_data import load_vectors  # noqa: E402
from importlib.metadata import version  # noqa: E402


# ---------------------------------------------------------------- adapters
# Each adapter: build(base) once, then set_ef(ef) and query(q) -> ids.
# query() receives a (1, dim) float32 row.

class Hnswlib:
    name, package = "hnswlib", "hnswlib"
    memory_method = "hnswlib Index.index_file_size() (size save_index would write)"

    def __init__(self):
        import hnswlib  # imported here so the import is not timed as build
        self.hnswlib = hnswlib

    def build(self, base, metric, a):
        hnswlib = self.hnswlib
        space = {"l2": "l2", "cosine": "cosine", "dot": "ip"}[metric]
        self.index = hnswlib.Index(space=space, dim=base.shape[1])
        self.index.init_index(max_elements=len(base), M=a.m, ef_construction=a.ef_construction,
                              random_seed=100)
        self.index.set_num_threads(a.threads)
        self.index.add_items(base, np.arange(len(base)), num_threads=a.threads)
        self.index.set_num_threads(1)
        self.k = a.k

    def memory(self):
        return self.index.index_file_size()

    def isa(self):
        return "compiled here by setup.sh with -O3 -march=native"

    def set_ef(self, ef):
        self.index.set_ef(ef)

    def query(self, q):
        return self.index.knn_query(q, k=self.k, num_threads=1)[0][0]


class Faiss:
    name, package = "faiss", "faiss-cpu"
    memory_method = "len(faiss.serialize_index(index))"

    def __init__(self):
        import faiss
        self.faiss = faiss

    def build(self, base, metric, a):
        faiss = self.faiss
        faiss.omp_set_num_threads(a.threads)
        faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.index = faiss.IndexHNSWFlat(base.shape[1], a.m, faiss_metric)
        self.index.hnsw.efConstruction = a.ef_construction
        self.index.add(base)
        faiss.omp_set_num_threads(1)
        self.k = a.k

    def memory(self):
        return len(self.faiss.serialize_index(self.index))

    def isa(self):
        return "wheel; compile options: " + self.faiss.get_compile_options().strip()

    def set_ef(self, ef):
        self.index.hnsw.efSearch = ef

    def query(self, q):
        return self.index.search(q, self.k)[1][0]


class Usearch:
    name, package = "usearch", "usearch"
    memory_method = "len(usearch Index.save()) (serialized index incl. vectors)"

    def __init__(self):
        from usearch.index import Index
        self.Index = Index

    def build(self, base, metric, a):
        usearch_metric = {"l2": "l2sq", "cosine": "cos", "dot": "ip"}[metric]
        self.index = self.Index(ndim=base.shape[1], metric=usearch_metric, dtype="f32",
                                connectivity=a.m, expansion_add=a.ef_construction)
        self.index.add(np.arange(len(base), dtype=np.uint64), base, threads=a.threads)
        self.k = a.k

    def memory(self):
        return len(self.index.save())

    def isa(self):
        return "wheel; hardware_acceleration: " + str(self.index.hardware_acceleration)

    def set_ef(self, ef):
        self.index.expansion_search = ef

    def query(self, q):
        return self.index.search(q[0], self.k, threads=1).keys


class FaissIvfPq:
    """faiss IVF with PQ codes and exact refinement: the peer of `sextant bench ann --index
    ivf-pq` (index_factory "IVF{nlist},PQ{m}x4fs,RFlat" for 4-bit fast-scan codes,
    "IVF{nlist},PQ{m}x8,RFlat" for 8-bit codes, "OPQ{m},..." first with --opq). Sweeps nprobe
    and ef, where ef is the number of candidates refined exactly (k_factor = ef / k)."""
    name, package = "faiss-ivfpq", "faiss-cpu"
    memory_method = "len(faiss.serialize_index(index)) (codes, ids, centroids and the f32 refine vectors)"
    sweeps_nprobe = True
    factory = "IVF{nlist},PQ{m}x4fs,RFlat"

    def __init__(self):
        import faiss
        self.faiss = faiss

    def build(self, base, metric, a):
        faiss = self.faiss
        faiss.omp_set_num_threads(a.threads)
        faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        n, d = base.shape
        self.nlist = a.nlist or max(1, min(round(n ** 0.5), n // 64))
        self.m = a.pq_m or -(-d // (8 if a.pq_bits == 8 else 4))
        factory = self.factory.format(nlist=self.nlist, m=self.m)
        if a.pq_bits == 8:
            factory = factory.replace(f"PQ{self.m}x4fs", f"PQ{self.m}x8")
        if a.opq:
            factory = f"OPQ{self.m}," + factory
        self.factory_used = factory
        self.index = faiss.index_factory(d, factory, faiss_metric)
        self.index.train(base)
        self.index.add(base)
        faiss.omp_set_num_threads(1)
        self.ivf = faiss.extract_index_ivf(self.index)
        if "RFlat" not in self.factory:
            self.ivf.nprobe = 1
        self.k = a.k

    def memory(self):
        return len(self.faiss.serialize_index(self.index))

    def isa(self):
        return "wheel; compile options: " + self.faiss.get_compile_options().strip()

    def set_ef(self, ef):
        self.index.k_factor = max(1.0, ef / self.k)

    def set_nprobe(self, nprobe):
        self.ivf.nprobe = nprobe

    def query(self, q):
        return self.index.search(q, self.k)[1][0]


class FaissIvfPqNoRefine(FaissIvfPq):
    """faiss IVF-PQ 4-bit fast scan without refinement: the codes alone in memory
    (index_factory "IVF{nlist},PQ{m}x4fs"), the faiss layout at the memory of Sextant's
    on-disk ivf_pq (codes in memory, f32 vectors on disk). ef does not apply (give --ef K)."""
    name = "faiss-ivfpq-noref"
    memory_method = "len(faiss.serialize_index(index)) (codes, ids and centroids)"
    factory = "IVF{nlist},PQ{m}x4fs"

    def set_ef(self, ef):
        pass


ADAPTERS = {cls.name: cls for cls in (Hnswlib, Faiss, Usearch, FaissIvfPq, FaissIvfPqNoRefine)}


# ---------------------------------------------------------------- measuring

def timed(fn):
    gc.collect()
    gc.disable()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        out = fn()
    finally:
        w1, c1 = time.perf_counter(), time.process_time()
        gc.enable()
    return out, w1 - w0, c1 - c0


def recall_at_k(found, gt, k):
    hits = sum(len(set(f[:k].tolist()) & set(g[:k].tolist())) for f, g in zip(found, gt))
    return hits / (k * len(gt))


def bench_system(adapter, base, queries, gt, a, efs):
    base_in, queries_in = base, queries
    if adapter.name.startswith("faiss") and a.metric == "cosine":
        base_in = base / np.linalg.norm(base, axis=1, keepdims=True).clip(1e-30)
        queries_in = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-30)
    rows = [queries_in[i:i + 1] for i in range(len(queries_in))]

    _, build_wall, build_cpu = timed(lambda: adapter.build(base_in, a.metric, a))
    memory = adapter.memory()
    print(f"{adapter.name}: built in {build_wall:.2f} s wall, {build_cpu:.2f} s CPU; "
          f"{memory / 2**20:.1f} MiB", file=sys.stderr)

    adapter.set_ef(efs[0])
    for q in rows[:200]:  # warm-up, not measured
        adapter.query(q)

    nprobes = [int(x) for x in a.nprobe.split(",") if x] if getattr(adapter, "sweeps_nprobe", False) else [None]
    if nprobes == []:
        sys.exit(f"{adapter.name} needs --nprobe")
    results = []
    for nprobe, ef in [(n, e) for n in nprobes for e in efs]:
        if nprobe is not None:
            adapter.set_nprobe(nprobe)
        adapter.set_ef(ef)
        runs = []
        for _ in range(a.runs):
            found, wall, cpu = timed(lambda: [adapter.query(q) for q in rows])
            runs.append((len(rows) / wall, wall, cpu))
        recall = recall_at_k(found, gt, a.k)
        results.append({
            "ef": ef,
            **({"nprobe": nprobe} if nprobe is not None else {}),
            "recall": recall,
            "qps": statistics.median(r[0] for r in runs),
            "qps_runs": [r[0] for r in runs],
            "wall_s": statistics.median(r[1] for r in runs),
            "cpu_s": statistics.median(r[2] for r in runs),
        })
        print(f"  nprobe={nprobe} ef={ef}: recall@{a.k}={recall:.4f} qps={results[-1]['qps']:.0f}", file=sys.stderr)

    return {
        "system": adapter.name,
        "version": version(adapter.package),
        "isa": adapter.isa(),
        "dataset": {"base": a.base, "queries": a.queries, "n_base": len(base),
                    "n_queries": len(queries), "dim": base.shape[1]},
        "metric": a.metric,
        "params": ({"m": a.m, "ef_construction": a.ef_construction} if not hasattr(adapter, "nlist")
                   else {"m": 0, "ef_construction": 0, "nlist": adapter.nlist,
                         "pq": adapter.factory_used})
                  | {"k": a.k, "threads": a.threads, "runs": a.runs},
        "build": {"wall_s": build_wall, "cpu_s": build_cpu},
        "memory_bytes": memory,
        "memory_method": adapter.memory_method,
        "results": results,
    }


def markdown(run, k):
    lines = [f"### {run['system']} {run['version']}  (build {run['build']['wall_s']:.2f} s wall, "
             f"{run['build']['cpu_s']:.2f} s CPU; {run['memory_bytes'] / 2**20:.1f} MiB)",
             "", f"| nprobe | ef | recall@{k} | QPS | wall s | CPU s |", "|---:|---:|---:|---:|---:|---:|"]
    for r in run["results"]:
        lines.append(f"| {r.get('nprobe', '')} | {r['ef']} | {r['recall']:.4f} | {r['qps']:.0f} | {r['wall_s']:.3f} | {r['cpu_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main():
    a = ARGS
    efs = [int(x) for x in a.ef.split(",") if x]
    systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in ADAPTERS]
    if unknown:
        sys.exit(f"unknown systems {unknown}; choose from {sorted(ADAPTERS)}")

    base = load_vectors(a.base, np.float32)
    queries = load_vectors(a.queries, np.float32)
    gt = load_vectors(a.gt, np.int32)
    if len(gt) != len(queries) or gt.shape[1] < a.k:
        sys.exit(f"ground truth {gt.shape} does not fit {len(queries)} queries and k={a.k}")
    if base.shape[1] != queries.shape[1]:
        sys.exit(f"dimension mismatch: base {base.shape}, queries {queries.shape}")
    gt = gt[:, :a.k]

    if a.json and os.path.dirname(a.json):
        os.makedirs(os.path.dirname(a.json), exist_ok=True)
    runs = []
    for name in systems:
        run = bench_system(ADAPTERS[name](), base, queries, gt, a, efs)
        runs.append(run)
        print(markdown(run, a.k))
        if a.json:  # rewrite after each system so a crash keeps what was measured
            tmp = a.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"runs": runs}, f, indent=1)
            os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
