#!/usr/bin/env python3
"""Filtered vector search with LanceDB and Chroma on the data from
bench/filtered_data.py, writing one JSON report per system in the shape that
`sextant bench filtered` writes:

  {system, version, dataset, metric, n, dim, k, queries, threads,
   import: {points, wall_s, cpu_s, points_per_s},
   build:  {wall_s, cpu_s, what},
   runs:   [{selectivity, filter, params, recall, qps, wall_s, cpu_s}]}

For each system: insert all base vectors with their payloads ({label, bucket}),
build its ANN index, then for no filter and the 1% / 10% / 50% filters of
meta.json run every query one call at a time (top-k, a Python loop as a service
would issue them) over a sweep of the system's search parameters. recall@k is
against the exact filtered ground truth. QPS = queries / wall seconds of the
loop; cpu_s = process CPU seconds (all threads) over the loop. Each setting is
preceded by an untimed warm-up of --warmup queries.

  LanceDB: table with id/label/bucket/vector columns, a BTree scalar index on
    bucket, and an IVF_HNSW_SQ vector index with a single IVF partition (= one
    HNSW graph over SQ8 codes; M=16, efConstruction=200 as Sextant's bench);
    sweeps ef, then ef with refine_factor 4 (re-ranks refine_factor*k
    candidates on the full vectors). Filters run with prefilter=True: the
    scalar index yields the allowed row set, which is passed as a mask into
    the HNSW search (results always satisfy the filter, k of them are
    returned). Also runs brute force
    (bypass_vector_index, prefiltered, exact) as mode "flat".
  Chroma: PersistentClient collection with hnsw space l2/cosine, max_neighbors
    16, ef_construction 200; the HNSW index is built as points are added, so
    import time includes it and build is null. Sweeps hnsw ef_search via
    collection.modify(configuration=...) and a reopen; filters are `where`
    clauses: Chroma's metadata (SQLite) segment yields the allowed ids, which
    the HNSW search takes as an allow-list (a pre-filter).

Threads: --threads N (default 1) is set before the libraries load as
OMP/OPENBLAS/MKL_NUM_THREADS, RAYON_NUM_THREADS and LANCE_CPU_THREADS (Lance's
compute pool); the report records them. LanceDB's I/O and tokio pools keep their
defaults (setting them to 1 deadlocked). CPU seconds cover all threads.

Each system runs in its own subprocess (env vars and memory stay separate):
  .venv-peers/bin/python bench/peers/filtered.py --data data/filtered/fashion-mnist \
      --systems lancedb,chroma --out-dir bench/out
writes bench/out/filtered-<dataset>-<system>.json.
"""
import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEMS = ("lancedb", "chroma")

# Search-parameter sweeps. LanceDB: ef of the HNSW walk and refine_factor
# (rerank refine_factor*k candidates on the original vectors; None = SQ8 scores).
# Each is a list of groups; a group is run in order with the early stop of sweep().
LANCEDB_SWEEP = [[{"ef": e} for e in (10, 16, 32, 64, 128, 256)],
                 [{"ef": e, "refine_factor": 4} for e in (48, 96, 192)]]  # Lance needs ef >= refine*k
CHROMA_SWEEP = [[{"ef_search": e} for e in (10, 16, 32, 64, 128, 256)]]


def sweep_groups(text, default):
    """--*-sweep JSON: a list of param dicts (one group) or a list of such lists."""
    if not text:
        return default
    v = json.loads(text)
    return [v] if v and isinstance(v[0], dict) else v


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "filtered", "fashion-mnist"),
                    help="directory written by bench/filtered_data.py")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--only", choices=SYSTEMS, help=argparse.SUPPRESS)  # the per-system child
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--json", help="with --only: write here instead of OUT_DIR/filtered-<set>-<system>.json")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries-n", type=int, help="use only the first N queries")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=50, help="untimed queries before each setting")
    ap.add_argument("--lancedb-sweep", help="JSON list of param dicts (ef, refine_factor, nprobes)")
    ap.add_argument("--chroma-sweep", help="JSON list of param dicts (ef_search)")
    ap.add_argument("--target", type=float, default=0.95, help="recall@k target of the early stop")
    ap.add_argument("--extra-after-target", type=int, default=0,
                    help="settings still run after the first that reaches --target")
    ap.add_argument("--full-sweep", action="store_true", help="no early stop")
    ap.add_argument("--no-flat", action="store_true", help="skip LanceDB brute-force runs")
    ap.add_argument("--flat-queries", type=int, default=200,
                    help="queries for LanceDB brute force (exact, slow: about 3 QPS unfiltered)")
    ap.add_argument("--tmp", default="/tmp", help="parent of the temporary store directories")
    return ap.parse_args()


ARGS = parse_args()
THREAD_ENV = {v: str(ARGS.threads) for v in (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS",
    "LANCE_CPU_THREADS")}
# Not set: LANCE_IO_THREADS=1 / TOKIO_WORKER_THREADS=1 deadlocked LanceDB 0.40 during
# create_table here (all threads asleep); its I/O and tokio pools keep their defaults.
if ARGS.only:
    os.environ.update(THREAD_ENV)
    os.environ.setdefault("LANCEDB_LOG", "error")   # silences per-query deprecation warnings
    os.environ.setdefault("RUST_LOG", "error")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # chroma

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from ann_data import load_vectors  # noqa: E402
from importlib.metadata import version  # noqa: E402


# ---------------------------------------------------------------- data

def load_data(a):
    with open(os.path.join(a.data, "meta.json")) as f:
        meta = json.load(f)
    base_path = meta["base"] if os.path.isabs(meta["base"]) else os.path.join(ROOT, meta["base"])
    base = load_vectors(base_path)
    queries = load_vectors(os.path.join(a.data, meta["queries"]))
    if a.queries_n:
        queries = queries[:a.queries_n]
    payloads = []
    with open(os.path.join(a.data, meta["payloads"])) as f:
        for line in f:
            payloads.append(json.loads(line))
    if len(payloads) != len(base):
        sys.exit(f"{len(payloads)} payloads for {len(base)} base vectors")
    gts = {}
    for flt in meta["filters"]:
        gt = load_vectors(os.path.join(a.data, flt["gt"]), np.int32)[:len(queries), :a.k]
        if len(gt) != len(queries):
            sys.exit(f"{flt['gt']}: {len(gt)} rows for {len(queries)} queries")
        gts[flt["selectivity"]] = gt
    return meta, base, queries, payloads, gts


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
    hits = sum(len(set(np.asarray(f[:k]).tolist()) & set(g[:k].tolist())) for f, g in zip(found, gt))
    return hits / (k * len(gt))


def sweep(name, search, groups, meta, queries, gts, a, extra=None, prepare=None):
    """search(q, flt, params) -> ids. groups: lists of param dicts, each list in
    increasing-effort order. For every filter, runs each group's settings in order
    and stops a group --extra-after-target settings (default 0) after the first
    one whose recall reaches --target (higher effort is then only slower);
    --full-sweep runs everything. prepare(params), if given, runs untimed before a setting."""
    rows = [queries[i] for i in range(len(queries))]
    runs = []
    for flt in meta["filters"]:
        sel = flt["selectivity"]
        label = flt.get(name_key(name)) if sel is not None else None
        for group in groups:
            left = None
            for params in group:
                if left is not None:
                    if left <= 0:
                        break
                    left -= 1
                if prepare:
                    prepare(params)
                for q in rows[:a.warmup]:
                    search(q, label, params)
                found, wall, cpu = timed(lambda: [search(q, label, params) for q in rows])
                rec = recall_at_k(found, gts[sel], a.k)
                run = {"selectivity": sel, "filter": flt.get("lancedb") if sel is not None else None,
                       "params": dict(params, **(extra or {})), "recall": rec,
                       "qps": len(rows) / wall, "wall_s": wall, "cpu_s": cpu}
                runs.append(run)
                print(f"  {name} sel={sel} {run['params']}: recall@{a.k}={rec:.4f} "
                      f"qps={run['qps']:.0f} cpu/wall={cpu / wall:.2f}", file=sys.stderr, flush=True)
                if left is None and rec >= a.target and not a.full_sweep:
                    left = a.extra_after_target
    return runs


def name_key(system):
    return "lancedb" if system.startswith("lancedb") else "chroma"


# ---------------------------------------------------------------- LanceDB

def run_lancedb(a, meta, base, queries, payloads, gts, store):
    import lancedb
    import pyarrow as pa
    from lancedb.index import BTree, HnswSq

    n, dim = base.shape
    metric = meta["metric"]
    cols = {"id": pa.array(np.arange(n), pa.int64())}
    for key in payloads[0]:
        cols[key] = pa.array([p[key] for p in payloads], pa.int64())
    cols["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(base.ravel(), pa.float32()), dim)
    data = pa.table(cols)  # building the Arrow table from Python lists is not timed

    db = lancedb.connect(store)
    tbl, imp_wall, imp_cpu = timed(lambda: db.create_table("bench", data=data))
    print(f"lancedb: imported {n} in {imp_wall:.2f} s ({n / imp_wall:.0f} points/s)", file=sys.stderr)

    _, sc_wall, sc_cpu = timed(lambda: tbl.create_index("bucket", config=BTree()))
    cfg = HnswSq(distance_type=metric, num_partitions=1, m=a.m, ef_construction=a.ef_construction)
    _, vx_wall, vx_cpu = timed(lambda: tbl.create_index("vector", config=cfg))
    print(f"lancedb: BTree(bucket) {sc_wall:.2f} s, IVF_HNSW_SQ {vx_wall:.2f} s wall "
          f"{vx_cpu:.2f} s CPU", file=sys.stderr)

    def search(q, flt, p):
        s = tbl.search(q, vector_column_name="vector").distance_type(metric).limit(a.k).select(["id"])
        if flt is not None:
            s = s.where(flt, prefilter=True)
        if p.get("flat"):
            s = s.bypass_vector_index()
        else:
            s = s.nprobes(p.get("nprobes", 1)).ef(p["ef"])
            if p.get("refine_factor"):
                s = s.refine_factor(p["refine_factor"])
        return s.to_arrow()["id"].to_numpy()

    groups = sweep_groups(a.lancedb_sweep, LANCEDB_SWEEP)
    runs = sweep("lancedb", search, groups, meta, queries, gts, a, {"mode": "IVF_HNSW_SQ"})
    if not a.no_flat:
        nf = min(a.flat_queries, len(queries))
        runs += sweep("lancedb", search, [[{"flat": True, "queries": nf}]], meta, queries[:nf],
                      {s: g[:nf] for s, g in gts.items()}, a,
                      {"mode": "flat (bypass_vector_index, exact)"})
    return {
        "version": version("lancedb"),
        "import": {"points": n, "wall_s": imp_wall, "cpu_s": imp_cpu, "points_per_s": n / imp_wall,
                   "what": "db.create_table(data=Arrow table with id, label, bucket, vector)"},
        "build": {"wall_s": sc_wall + vx_wall, "cpu_s": sc_cpu + vx_cpu,
                  "what": f"BTree scalar index on bucket ({sc_wall:.2f} s) + IVF_HNSW_SQ vector index, "
                          f"num_partitions=1, m={a.m}, ef_construction={a.ef_construction}, "
                          f"{metric} ({vx_wall:.2f} s)",
                  "parts": {"btree_bucket": {"wall_s": sc_wall, "cpu_s": sc_cpu},
                            "ivf_hnsw_sq": {"wall_s": vx_wall, "cpu_s": vx_cpu}}},
        "search": "tbl.search(q).where(filter, prefilter=True).nprobes(1).ef(ef)[.refine_factor(r)]"
                  ".limit(k).select(['id']).to_arrow(); mode flat adds .bypass_vector_index()",
        "runs": runs,
    }


# ---------------------------------------------------------------- Chroma

def run_chroma(a, meta, base, queries, payloads, gts, store):
    import chromadb
    from chromadb.config import Settings

    n, dim = base.shape
    space = {"l2": "l2", "cosine": "cosine", "dot": "ip"}[meta["metric"]]
    client = chromadb.PersistentClient(path=store, settings=Settings(anonymized_telemetry=False))
    groups = sweep_groups(a.chroma_sweep, CHROMA_SWEEP)
    col = client.create_collection(
        "bench", embedding_function=None,
        configuration={"hnsw": {"space": space, "max_neighbors": a.m,
                                "ef_construction": a.ef_construction,
                                "ef_search": groups[0][0]["ef_search"]}})
    batch = client.get_max_batch_size()
    ids = [str(i) for i in range(n)]

    def insert():
        for s in range(0, n, batch):
            col.add(ids=ids[s:s + batch], embeddings=base[s:s + batch], metadatas=payloads[s:s + batch])

    _, imp_wall, imp_cpu = timed(insert)
    print(f"chroma: imported {n} (HNSW built inline) in {imp_wall:.2f} s "
          f"({n / imp_wall:.0f} points/s)", file=sys.stderr)
    assert col.count() == n

    # Chroma caches the loaded HNSW index with the ef_search it was opened with;
    # collection.modify() only updates the stored configuration, so after it the
    # client's cache is cleared and the collection reopened (untimed).
    state = {"ef": groups[0][0]["ef_search"], "col": col}

    def prepare(p):
        if p["ef_search"] != state["ef"]:
            state["col"].modify(configuration={"hnsw": {"ef_search": p["ef_search"]}})
            client.clear_system_cache()
            client_ = chromadb.PersistentClient(path=store, settings=Settings(anonymized_telemetry=False))
            state["col"] = client_.get_collection("bench", embedding_function=None)
            got = state["col"].configuration["hnsw"]["ef_search"]
            assert got == p["ef_search"], (got, p)
            state["ef"] = p["ef_search"]

    def search(q, flt, p):
        r = state["col"].query(query_embeddings=q[None, :], n_results=a.k, where=flt, include=[])
        return np.array(r["ids"][0], dtype=np.int64)

    runs = sweep("chroma", search, groups, meta, queries, gts, a, {"mode": "hnsw"}, prepare)
    return {
        "version": version("chromadb"),
        "import": {"points": n, "wall_s": imp_wall, "cpu_s": imp_cpu, "points_per_s": n / imp_wall,
                   "what": f"collection.add in batches of {batch} (max batch size) with metadatas; "
                           "the HNSW index is built during add, so this includes index build"},
        "build": {"wall_s": None, "cpu_s": None,
                  "what": f"HNSW (space {space}, max_neighbors {a.m}, ef_construction "
                          f"{a.ef_construction}) built inline during import"},
        "search": "collection.query(query_embeddings=[q], n_results=k, where=filter, include=[]); "
                  "ef_search set by collection.modify(configuration={'hnsw': {'ef_search': ef}}) "
                  "then clear_system_cache() and reopening the collection (untimed)",
        "runs": runs,
    }


# ---------------------------------------------------------------- main

def child(a):
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the store is still removed
    meta, base, queries, payloads, gts = load_data(a)
    store = tempfile.mkdtemp(prefix=f"sextant-filtered-{a.only}-", dir=a.tmp)
    try:
        fn = run_lancedb if a.only == "lancedb" else run_chroma
        res = fn(a, meta, base, queries, payloads, gts, store)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    report = {
        "system": a.only, "version": res["version"], "dataset": meta["dataset"], "metric": meta["metric"],
        "n": int(base.shape[0]), "dim": int(base.shape[1]), "k": a.k, "queries": int(len(queries)),
        "threads": "env " + " ".join(f"{k}={v}" for k, v in THREAD_ENV.items())
                   + "; queries issued one at a time from one Python thread",
        "import": res["import"], "build": res["build"], "search": res["search"],
        "params": {"m": a.m, "ef_construction": a.ef_construction, "warmup": a.warmup,
                   "target": a.target, "extra_after_target": a.extra_after_target,
                   "full_sweep": a.full_sweep},
        "runs": res["runs"],
    }
    out = a.json or os.path.join(a.out_dir, f"filtered-{meta['dataset']}-{a.only}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(out + ".tmp", out)
    print(f"wrote {out}", file=sys.stderr)


def main():
    a = ARGS
    if a.only:
        return child(a)
    systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        sys.exit(f"unknown systems {bad}; choose from {SYSTEMS}")
    passthrough = [x for x in sys.argv[1:]]
    # drop --systems VALUE / --systems=VALUE from what the children get
    cleaned, skip = [], False
    for x in passthrough:
        if skip:
            skip = False
            continue
        if x == "--systems":
            skip = True
            continue
        if x.startswith("--systems="):
            continue
        cleaned.append(x)
    failed = []
    for s in systems:
        cmd = [sys.executable, os.path.abspath(__file__), "--only", s] + cleaned
        print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(s)
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main()
