#!/usr/bin/env python3
"""What Python costs: Sextant through its Python package against its Rust API on the same index,
and against LanceDB, Chroma and Qdrant's embedded engine through their Python APIs, same data,
same run (issue 17's benchmark bar).

Data: GloVe-50d (cosine) from data/ann/glove-50-angular: the first --base rows of base.fvecs
and the first --queries rows of queries.fvecs; exact top-k ground truth is computed here with
numpy (float64 cosine), so any subset is judged exactly.

1. Ingest (--rounds rounds, systems interleaved in each round, each into a fresh directory, in
   batches of --batch points, numpy rows in hand):
   - sextant: ``Collection.upsert(ids, rows)`` per batch (default durability: each batch one
     WAL record, fsynced before the call returns);
   - sextant-cli: ``sextant upsert --file base.npy --batch B`` (its ``write_seconds``: the same
     upserts plus a final sync; the process's whole wall time, which adds reading the file and
     the merge after the import, is recorded beside it);
   - lancedb: ``tbl.add(Arrow batch)``; chroma: ``collection.add`` (it builds its HNSW during
     add, so its ingest includes its index build); qdrant-edge: ``shard.update(upsert_points)``.
   In the first round each system also builds its index (sextant ``optimize()``, LanceDB
   IVF_HNSW_SQ with one partition, qdrant-edge ``optimize()``), timed apart; that directory is
   the one searched. HNSW m = 16, ef_construction = 200 everywhere.
2. Search (--rounds rounds; in each, every system in its own fresh process pinned to one core
   (--cpu), RAYON/OMP/LANCE threads = 1): for each setting an untimed warm-up pass, then timed
   passes over all queries issued one at a time, k = --k; a process reports the median pass.
   - sextant-rust: ``sextant bench search`` (the engine's ``Collection::search``);
   - sextant: ``Collection.search(q, k=10, ef=ef)`` (the public API, default options);
   - sextant-native: the extension's ``search`` called directly (the binding without the
     package's Python layer: it splits the overhead into binding and wrapper);
   - peers at their own settings (ef / ef_search / hnsw_ef).
   Python loops run with the garbage collector on, as users run them.
The report takes medians over rounds; Python's overhead is computed per round (the processes of
one round ran back to back) and its median reported.

Writes bench/results/python-<date>[-tag].{json,md}. Usage (after bash bench/python/setup.sh):
  .venv-bench-py/bin/python bench/python/bench_python.py --base 100000 --queries 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEMS = ("sextant", "lancedb", "chroma", "qdrant-edge")
THREAD_VARS = ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LANCE_CPU_THREADS")
# Default settings swept per system (k = 10). LanceDB needs ef >= k.
SWEEPS = {
    "sextant": [16, 24, 32, 48, 64, 96, 128],
    "qdrant-edge": [16, 24, 32, 48, 64, 96, 128],
    "chroma": [16, 24, 32, 48, 64, 96, 128],
    "lancedb": [16, 32, 64, 128, 256],
}
NAME = "bench"


# ------------------------------------------------------------------------------ data


def read_fvecs(path, rows=None):
    import numpy as np

    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    m = raw.reshape(-1, dim + 1)[:rows]
    return np.ascontiguousarray(m[:, 1:].view(np.float32))


def exact_topk(base, queries, k):
    """Exact cosine top-k (float64; a zero vector scores 0 against everything)."""
    import numpy as np

    def unit(x):
        x = x.astype(np.float64)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(n == 0, 1.0, n)

    b, q = unit(base), unit(queries)
    out = np.empty((len(q), k), dtype=np.int32)
    for s in range(0, len(q), 256):
        sims = q[s : s + 256] @ b.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[s : s + 256] = np.take_along_axis(part, order, axis=1)
    return out


def recall(found, gt, k):
    hits = sum(len(set(int(x) for x in f[:k]) & set(int(x) for x in g[:k])) for f, g in zip(found, gt))
    return hits / (k * len(gt))


# ------------------------------------------------------------------------------ workers
# Each runs in its own process: `bench_python.py --worker SPEC.json`, answering one JSON line.


def pin(spec):
    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {int(spec["cpu"])})


def clock():
    return time.perf_counter(), time.process_time()


def since(t):
    w, c = clock()
    return w - t[0], c - t[1]


def batches(n, b):
    return [(s, min(s + b, n)) for s in range(0, n, b)]


def ingest_sextant(spec, base):
    import sextant

    db = sextant.open(spec["dir"])
    c = db.create_collection(NAME, dim=base.shape[1], metric="cosine", m=spec["m"], ef_construction=spec["efc"])
    t = clock()
    for s, e in batches(len(base), spec["batch"]):
        c.upsert(list(range(s, e)), base[s:e])
    ingest = since(t)
    build = None
    if spec["build"]:
        t = clock()
        c.optimize()
        build = since(t)
    db.close()
    return ingest, build, {"what": "Collection.upsert(ids, rows) per batch (durable on return)"}


def ingest_lancedb(spec, base):
    import lancedb
    import pyarrow as pa
    from lancedb.index import HnswSq

    n, dim = base.shape
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("vector", pa.list_(pa.float32(), dim))])
    db = lancedb.connect(spec["dir"])
    tbl = db.create_table(NAME, schema=schema)
    t = clock()
    for s, e in batches(n, spec["batch"]):
        vec = pa.FixedSizeListArray.from_arrays(pa.array(base[s:e].ravel(), pa.float32()), dim)
        tbl.add(pa.table({"id": pa.array(range(s, e), pa.int64()), "vector": vec}))
    ingest = since(t)
    build = None
    if spec["build"]:
        cfg = HnswSq(distance_type="cosine", num_partitions=1, m=spec["m"], ef_construction=spec["efc"])
        t = clock()
        tbl.create_index("vector", config=cfg)
        build = since(t)
    return ingest, build, {"what": "tbl.add(Arrow table) per batch; index IVF_HNSW_SQ, num_partitions=1"}


def chroma_client(path):
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))


def ingest_chroma(spec, base):
    client = chroma_client(spec["dir"])
    col = client.create_collection(
        NAME,
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine", "max_neighbors": spec["m"], "ef_construction": spec["efc"]}},
    )
    t = clock()
    for s, e in batches(len(base), spec["batch"]):
        col.add(ids=[str(i) for i in range(s, e)], embeddings=base[s:e])
    ingest = since(t)
    assert col.count() == len(base)
    return ingest, None, {"what": "collection.add(ids, embeddings) per batch; its HNSW is built during add"}


def qdrant_config(spec, dim, search_threads=None):
    from qdrant_edge import Distance, EdgeConfig, EdgeOptimizersConfig, EdgeVectorParams, HnswIndexConfig

    return EdgeConfig(
        vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
        # full_scan_threshold (KB): below it a search is exact; 10 KB makes every search walk
        # the graph, as in the other systems.
        hnsw_config=HnswIndexConfig(m=spec["m"], ef_construct=spec["efc"], full_scan_threshold=10),
        # One segment, indexed by optimize() whatever its size (indexing_threshold in KB).
        optimizers=EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1),
        max_search_threads=search_threads,
    )


def ingest_qdrant(spec, base):
    from qdrant_edge import EdgeShard, Point, UpdateOperation

    shard = EdgeShard.create(spec["dir"], qdrant_config(spec, base.shape[1]))
    t = clock()
    for s, e in batches(len(base), spec["batch"]):
        shard.update(UpdateOperation.upsert_points([Point(i, base[i], None) for i in range(s, e)]))
    ingest = since(t)
    build = None
    if spec["build"]:
        t = clock()
        shard.optimize()
        build = since(t)
    info = str(shard.info())
    shard.close()
    return ingest, build, {"what": "shard.update(UpdateOperation.upsert_points(points)) per batch", "info": info}


def ingest_cli(spec, base):
    """sextant upsert from the .npy the harness wrote (a fresh data directory)."""
    exe = spec["sextant_bin"]
    d = ["--data", spec["dir"]]
    subprocess.run(
        [exe, *d, "collection", "create", NAME, "--dim", str(base.shape[1]), "--metric", "cosine",
         "--m", str(spec["m"]), "--ef-construction", str(spec["efc"])],
        check=True, stdout=subprocess.DEVNULL,
    )
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        [exe, *d, "--json", "upsert", NAME, "--file", spec["base_npy"], "--batch", str(spec["batch"])],
        check=True, capture_output=True, text=True,
    )
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rep = json.loads(out.stdout)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return (rep["write_seconds"], None), None, {
        "what": "sextant upsert --file base.npy (write_seconds: upserts + sync; process: read, check, write, merge)",
        "process_wall_s": wall, "process_cpu_s": cpu, "cli": rep,
    }


INGEST = {"sextant": ingest_sextant, "sextant-cli": ingest_cli, "lancedb": ingest_lancedb,
          "chroma": ingest_chroma, "qdrant-edge": ingest_qdrant}


def worker_ingest(spec):
    import numpy as np

    base = np.load(spec["base_npy"])
    (iw, ic), build, extra = INGEST[spec["system"]](spec, base)
    n = len(base)
    return {
        "ingest": {"points": n, "wall_s": iw, "cpu_s": ic, "points_per_s": n / iw},
        "build": None if build is None else {"wall_s": build[0], "cpu_s": build[1]},
        **extra,
    }


def searcher(spec):
    """(set_param(p), search(q) -> ids, version) for the system."""
    import numpy as np

    system, k = spec["system"], spec["k"]
    if system in ("sextant", "sextant-native"):
        import sextant

        db = sextant.open(spec["dir"])
        c = db.get_collection(NAME)
        st = {"ef": None}
        if system == "sextant":
            def search(q):
                return [h.id for h in c.search(q, k=k, ef=st["ef"])]
        else:
            native = db._backend._db  # the extension's Database: what Collection.search calls

            def search(q):
                return [h.id for h in native.search(NAME, q, k, st["ef"])]
        return (lambda p: st.update(ef=p)), search, sextant.__version__
    if system == "lancedb":
        import lancedb

        tbl = lancedb.connect(spec["dir"]).open_table(NAME)
        st = {"ef": None}

        def search(q):
            r = tbl.search(q, vector_column_name="vector").distance_type("cosine").limit(k)
            return r.select(["id"]).nprobes(1).ef(st["ef"]).to_arrow()["id"].to_pylist()

        return (lambda p: st.update(ef=p)), search, version("lancedb")
    if system == "chroma":
        st = {"col": None}

        def set_param(p):
            # Chroma caches an opened index with the ef_search it was opened with: change the
            # stored setting, drop the cache and reopen (untimed).
            client = chroma_client(spec["dir"])
            client.get_collection(NAME, embedding_function=None).modify(configuration={"hnsw": {"ef_search": p}})
            client.clear_system_cache()
            st["col"] = chroma_client(spec["dir"]).get_collection(NAME, embedding_function=None)
            assert st["col"].configuration["hnsw"]["ef_search"] == p

        def search(q):
            return [int(i) for i in st["col"].query(query_embeddings=q[None, :], n_results=k, include=[])["ids"][0]]

        return set_param, search, version("chromadb")
    if system == "qdrant-edge":
        from qdrant_edge import EdgeShard, Query, SearchParams, SearchRequest

        dim = int(np.load(spec["queries_npy"], mmap_mode="r").shape[1])
        shard = EdgeShard.load(spec["dir"], qdrant_config(spec, dim, search_threads=1))
        st = {"params": None}

        def search(q):
            req = SearchRequest(query=Query.Nearest(q), limit=k, params=st["params"], with_payload=False, with_vector=False)
            return [p.id for p in shard.search(req)]

        return (lambda p: st.update(params=SearchParams(hnsw_ef=p))), search, version("qdrant-edge-py")
    raise ValueError(system)


def version(dist):
    from importlib.metadata import version as v

    return v(dist)


def worker_search(spec):
    import numpy as np

    queries = list(np.load(spec["queries_npy"]))  # 1-D float32 rows, made before timing
    gt = np.load(spec["gt_npy"])
    set_param, search, ver = searcher(spec)
    runs = []
    for p in spec["settings"]:
        set_param(p)
        for _ in range(spec["warmup"]):
            for q in queries:
                search(q)
        passes, rec = [], None
        for i in range(spec["passes"]):
            t = clock()
            found = [search(q) for q in queries]
            w, c = since(t)
            passes.append((len(queries) / w, w, c))
            if i == 0:
                rec = recall(found, gt, spec["k"])
        runs.append(summarise(p, rec, passes, len(queries)))
    return {"version": ver, "runs": runs}


def summarise(param, rec, passes, nq):
    qps = [p[0] for p in passes]
    med = statistics.median(qps)
    _, w, c = min(passes, key=lambda p: abs(p[0] - med))
    return {"param": param, "recall": rec, "qps": med, "wall_s": w, "cpu_s": c,
            "us_per_query": w / nq * 1e6, "cpu_us_per_query": c / nq * 1e6, "qps_runs": qps}


def worker(path):
    with open(path) as f:
        spec = json.load(f)
    pin(spec)
    out = worker_ingest(spec) if spec["action"] == "ingest" else worker_search(spec)
    print("RESULT " + json.dumps(out), flush=True)


# ------------------------------------------------------------------------------ driver


def run_worker(spec, env, log):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", f.name],
                           capture_output=True, text=True, env=env)
    finally:
        os.unlink(f.name)
    if p.returncode != 0:
        log(p.stderr[-3000:])
        raise RuntimeError(f"worker {spec['system']} {spec['action']} failed ({p.returncode})")
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def run_rust_search(a, spec, env):
    out = spec["dir"] + "-rust-search.json"
    cmd = [a.sextant_bin, "bench", "search", "--data", spec["dir"], "--collection", NAME,
           "--queries", spec["queries_npy"], "--gt", spec["gt_npy"], "--k", str(spec["k"]),
           "--ef", ",".join(str(x) for x in spec["settings"]), "--runs", str(spec["passes"]),
           "--warmup", str(spec["warmup"]), "--json", out]
    subprocess.run(["taskset", "-c", str(a.cpu), *cmd], check=True, env=env, stdout=subprocess.DEVNULL)
    with open(out) as f:
        rep = json.load(f)
    os.unlink(out)
    return {"version": rep["version"], "open_s": rep["open_s"], "segments": rep["segments"],
            "runs": [{"param": r["ef"], "recall": r["recall"], "qps": r["qps"], "wall_s": r["wall_s"],
                      "cpu_s": r["cpu_s"], "us_per_query": r["us_per_query"],
                      "cpu_us_per_query": r["cpu_us_per_query"], "qps_runs": r["qps_runs"]} for r in rep["runs"]]}


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()}


def git_state():
    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty_files": git("status", "--porcelain", "--untracked-files=no").splitlines()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated among {', '.join(SYSTEMS)}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--base", type=int, default=100_000, help="first N base vectors (0 = all)")
    ap.add_argument("--queries", type=int, default=1_000, help="first N queries")
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "ann", "glove-50-angular"))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1_000, help="points per write call")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--sextant-passes", type=int, default=10, help="timed passes per setting, Sextant (fast)")
    ap.add_argument("--peer-passes", type=int, default=1, help="timed passes per setting, peers")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes per setting")
    for s in SYSTEMS:
        ap.add_argument(f"--{s}-sweep", help=f"comma-separated settings (default {','.join(map(str, SWEEPS[s]))})")
    ap.add_argument("--cpu", type=int, default=1, help="core the search processes are pinned to")
    ap.add_argument("--no-ingest-rounds", action="store_true", help="ingest once (round 1) only")
    ap.add_argument("--sextant-bin", default=os.path.join(ROOT, "target", "release", "sextant"))
    ap.add_argument("--work", default=None, help="parent of the data directories (default: a temporary one)")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--tag", default="", help="suffix of the output file names")
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker)

    import numpy as np

    systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        sys.exit(f"unknown systems {bad}; choose from {SYSTEMS}")
    sweeps = {s: [int(x) for x in (getattr(a, f"{s.replace('-', '_')}_sweep") or ",".join(map(str, SWEEPS[s]))).split(",")]
              for s in SYSTEMS}
    started = datetime.now(timezone.utc)
    load_start = os.getloadavg()
    t_start = time.time()

    def log(msg):
        print(f"[{time.time() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    work = a.work or tempfile.mkdtemp(prefix="sextant-bench-python-")
    os.makedirs(work, exist_ok=True)
    base = read_fvecs(os.path.join(a.data, "base.fvecs"))
    if a.base:
        base = np.ascontiguousarray(base[: a.base])
    queries = np.ascontiguousarray(read_fvecs(os.path.join(a.data, "queries.fvecs"))[: a.queries])
    log(f"data: {base.shape[0]} × {base.shape[1]} base, {len(queries)} queries; exact top-{a.k} by numpy")
    gt = exact_topk(base, queries, a.k)
    paths = {n: os.path.join(work, f"{n}.npy") for n in ("base", "queries", "gt")}
    for n, arr in (("base", base), ("queries", queries), ("gt", gt)):
        np.save(paths[n], arr)

    env1 = dict(os.environ, **{v: "1" for v in THREAD_VARS}, ANONYMIZED_TELEMETRY="False",
                LANCEDB_LOG="error", RUST_LOG="error")
    common = {"base_npy": paths["base"], "queries_npy": paths["queries"], "gt_npy": paths["gt"], "k": a.k,
              "batch": a.batch, "m": a.m, "efc": a.ef_construction, "sextant_bin": a.sextant_bin}
    ingest_systems = [("sextant", "sextant"), ("sextant", "sextant-cli")] if "sextant" in systems else []
    ingest_systems += [(s, s) for s in systems if s != "sextant"]
    index_dirs, ingest = {}, {name: [] for _, name in ingest_systems}
    rounds_ingest = 1 if a.no_ingest_rounds else a.rounds
    for r in range(rounds_ingest):
        order = ingest_systems if r % 2 == 0 else ingest_systems[::-1]
        for _, name in order:
            d = os.path.join(work, f"{name}-r{r + 1}")
            build = r == 0 and name != "sextant-cli"
            res = run_worker(dict(common, action="ingest", system=name, dir=d, build=build), None, log)
            res["round"] = r + 1
            ingest[name].append(res)
            log(f"ingest r{r + 1} {name}: {res['ingest']['points_per_s']:,.0f} points/s"
                + (f"; build {res['build']['wall_s']:.1f} s" if res.get("build") else ""))
            if build:
                index_dirs[name] = d
            else:
                shutil.rmtree(d, ignore_errors=True)

    search_systems = (["sextant-rust", "sextant", "sextant-native"] if "sextant" in systems else [])
    search_systems += [s for s in systems if s != "sextant"]
    search = {s: [] for s in search_systems}
    for r in range(a.rounds):
        trio = [s for s in search_systems if s.startswith("sextant")]
        trio = trio[r % len(trio):] + trio[: r % len(trio)] if trio else []
        for s in trio + [s for s in search_systems if not s.startswith("sextant")]:
            fam = "sextant" if s.startswith("sextant") else s
            spec = dict(common, action="search", system=s, dir=index_dirs[fam], settings=sweeps[fam], cpu=a.cpu,
                        passes=a.sextant_passes if fam == "sextant" else a.peer_passes, warmup=a.warmup)
            res = run_rust_search(a, spec, env1) if s == "sextant-rust" else run_worker(spec, env1, log)
            res["round"] = r + 1
            search[s].append(res)
            log(f"search r{r + 1} {s}: " + ", ".join(f"{x['param']}: {x['recall']:.3f} / {x['qps']:,.0f}" for x in res["runs"]))

    report = {
        "what": "Python overhead and embedded peers (issue 17)",
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.executable, ROOT), os.path.relpath(os.path.abspath(__file__), ROOT), *sys.argv[1:]]),
        "machine": dict(machine(), loadavg_start=load_start, loadavg_end=os.getloadavg()),
        "git": git_state(),
        "versions": {s: (search[s][0]["version"] if search.get(s) else None) for s in search},
        "data": {"set": "glove-50-angular", "n": int(base.shape[0]), "dim": int(base.shape[1]),
                 "queries": int(len(queries)), "metric": "cosine", "ground_truth": "exact, numpy float64"},
        "params": {k: v for k, v in vars(a).items() if k not in ("worker",)} | {"sweeps": sweeps},
        "ingest": ingest,
        "search": search,
    }
    report["summary"] = summarise_report(report)
    os.makedirs(a.out_dir, exist_ok=True)
    stem = os.path.join(a.out_dir, f"python-{started.date().isoformat()}{'-' + a.tag if a.tag else ''}")
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    md = markdown(report)
    with open(stem + ".md", "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {stem}.json and .md")
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------ report


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def per_setting(rounds):
    """{param: {recall, qps (median over rounds), cpu_us, us, qps_rounds}}."""
    out = {}
    for p in [x["param"] for x in rounds[0]["runs"]]:
        rs = [next(x for x in r["runs"] if x["param"] == p) for r in rounds]
        out[p] = {"recall": rs[0]["recall"], "qps": med([x["qps"] for x in rs]),
                  "us_per_query": med([x["us_per_query"] for x in rs]),
                  "cpu_us_per_query": med([x["cpu_us_per_query"] for x in rs]),
                  "qps_rounds": [x["qps"] for x in rs]}
    return out


def summarise_report(rep, target=0.95):
    s = {"search": {}, "ingest": {}, "overhead": {}}
    for name, rounds in rep["search"].items():
        s["search"][name] = per_setting(rounds)
    if "sextant-rust" in rep["search"]:
        rust, py, nat = (rep["search"][n] for n in ("sextant-rust", "sextant", "sextant-native"))
        for p in [x["param"] for x in rust[0]["runs"]]:
            def pick(rounds, r):
                return next(x for x in rounds[r]["runs"] if x["param"] == p)

            rows = []
            for r in range(len(rust)):
                ru, pu, nu = pick(rust, r), pick(py, r), pick(nat, r)
                rows.append({"time": pu["us_per_query"] / ru["us_per_query"] - 1,
                             "qps_loss": 1 - pu["qps"] / ru["qps"],
                             "cpu": pu["cpu_us_per_query"] / ru["cpu_us_per_query"] - 1,
                             "native_time": nu["us_per_query"] / ru["us_per_query"] - 1,
                             "py_minus_rust_us": pu["us_per_query"] - ru["us_per_query"],
                             "native_minus_rust_us": nu["us_per_query"] - ru["us_per_query"]})
            s["overhead"][p] = {k: med([x[k] for x in rows]) for k in rows[0]} | {"rounds": rows}
    for name, rounds in rep["ingest"].items():
        s["ingest"][name] = {
            "points_per_s": med([x["ingest"]["points_per_s"] for x in rounds]),
            "wall_s": med([x["ingest"]["wall_s"] for x in rounds]),
            "cpu_s": med([x["ingest"]["cpu_s"] for x in rounds]),
            "build_wall_s": rounds[0]["build"]["wall_s"] if rounds[0].get("build") else None,
            "build_cpu_s": rounds[0]["build"]["cpu_s"] if rounds[0].get("build") else None,
            "process_wall_s": med([x.get("process_wall_s") for x in rounds]),
            "process_cpu_s": med([x.get("process_cpu_s") for x in rounds]),
            "rounds": [x["ingest"]["points_per_s"] for x in rounds],
        }
    # Headline per system: the first setting (in sweep order) with recall >= target.
    s["at_target"] = {}
    for name, table in s["search"].items():
        hit = next(((p, v) for p, v in table.items() if v["recall"] >= target), None)
        s["at_target"][name] = None if hit is None else dict(hit[1], param=hit[0])
    s["target_recall"] = target
    return s


def fmt(x, spec=",.0f"):
    return "—" if x is None else format(x, spec)


def markdown(rep):
    s, d = rep["summary"], rep["data"]
    L = [f"# Python overhead and embedded peers: GloVe-50d {d['n']:,} × {d['dim']} ({d['metric']}), "
         f"{d['queries']:,} queries, k = {rep['params']['k']}",
         "", f"Started {rep['started_utc']}, finished {rep['finished_utc']}; commit `{rep['git']['commit'][:10]}`"
         f"{' (dirty: ' + ', '.join(rep['git']['dirty_files']) + ')' if rep['git']['dirty_files'] else ''}; "
         f"{rep['machine']['cpu']}, {rep['machine']['cores']} cores; load average "
         f"{rep['machine']['loadavg_start'][0]:.2f} → {rep['machine']['loadavg_end'][0]:.2f}.",
         f"Command: `{rep['command']}`", ""]
    if s["overhead"]:
        L += ["## Sextant: Python API against the Rust API, same index, one thread",
              "", "Medians over rounds; overhead per round (processes back to back), then its median. "
              "`native`: the extension's own `search` without the package's Python layer.", "",
              "| ef | recall@10 | Rust QPS | Python QPS | native QPS | Rust µs/q | Python µs/q | Python − Rust µs | "
              "**Python time overhead** | QPS lost | CPU overhead | native time overhead |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        ru, py, na = (s["search"][n] for n in ("sextant-rust", "sextant", "sextant-native"))
        for p, o in s["overhead"].items():
            L.append(f"| {p} | {ru[p]['recall']:.4f} | {fmt(ru[p]['qps'])} | {fmt(py[p]['qps'])} | {fmt(na[p]['qps'])} | "
                     f"{ru[p]['us_per_query']:.1f} | {py[p]['us_per_query']:.1f} | {o['py_minus_rust_us']:.1f} | "
                     f"**{o['time'] * 100:+.1f}%** | {o['qps_loss'] * 100:.1f}% | {o['cpu'] * 100:+.1f}% | "
                     f"{o['native_time'] * 100:+.1f}% |")
        L.append("")
    L += ["## Search: every system through its Python API, one thread, k = 10",
          "", f"Headline: the first setting in each sweep reaching recall@10 ≥ {s['target_recall']}.", "",
          "| system | version | setting | recall@10 | QPS | µs/query | CPU µs/query | Sextant (Python) / system |",
          "|---|---|---:|---:|---:|---:|---:|---:|"]
    ref = s["at_target"].get("sextant")
    for name, v in s["at_target"].items():
        if v is None:
            L.append(f"| {name} | {rep['versions'].get(name)} | — | below target | | | | |")
            continue
        ratio = f"{ref['qps'] / v['qps']:.2f}×" if ref and name != "sextant" else "—"
        L.append(f"| {name} | {rep['versions'].get(name)} | {v['param']} | {v['recall']:.4f} | {fmt(v['qps'])} | "
                 f"{v['us_per_query']:.1f} | {v['cpu_us_per_query']:.1f} | {ratio} |")
    L += ["", "Full sweeps (recall@10 / median QPS / CPU µs per query):", ""]
    for name, table in s["search"].items():
        L.append(f"- **{name}**: " + "; ".join(f"{p}: {v['recall']:.3f} / {fmt(v['qps'])} / {v['cpu_us_per_query']:.0f}"
                                            for p, v in table.items()))
    L += ["", f"## Ingest: {d['n']:,} points in batches of {rep['params']['batch']:,}, each system into a fresh directory", "",
          "| system | points/s (median) | wall s | CPU s | rounds (points/s) | index build wall / CPU s |",
          "|---|---:|---:|---:|---|---:|"]
    for name, v in s["ingest"].items():
        extra = ""
        if v.get("process_wall_s"):
            extra = f" (process: {v['process_wall_s']:.1f} s wall, {v['process_cpu_s']:.1f} s CPU)"
        b = "—" if v["build_wall_s"] is None else f"{v['build_wall_s']:.1f} / {v['build_cpu_s']:.1f}"
        L.append(f"| {name} | {fmt(v['points_per_s'])} | {v['wall_s']:.2f}{extra} | {fmt(v['cpu_s'], '.2f')} | "
                 f"{', '.join(fmt(x) for x in v['rounds'])} | {b} |")
    if "sextant" in s["ingest"] and "sextant-cli" in s["ingest"]:
        L += ["", f"Python ingest / CLI ingest (write phase): "
              f"{s['ingest']['sextant']['points_per_s'] / s['ingest']['sextant-cli']['points_per_s']:.2f}×"]
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    main()
