"""Helpers shared by bench/peers/http_peers.py and bench/http_load.py (issue 15):
the GloVe-50d data and its exact ground truth, CPU and memory accounting of a
server's process tree through /proc, latency percentiles, Markdown tables, the
machine description, and the Sextant HTTP adapter (SextantHTTP) with the code
that starts `sextant serve` (or the test stub, bench/http_stub.py) and waits
for GET /healthz.

Not a benchmark by itself; see bench/README-http.md.
"""
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from ann_data import ground_truth, load_vectors  # noqa: E402

GLOVE = os.path.join(ROOT, "data", "ann", "glove-50-angular")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- data

def load_glove(n, n_queries, k=10, data_dir=GLOVE, gt=True):
    """First n base vectors and first n_queries held-out queries of GloVe-50d
    (scripts/fetch-ann-data.sh glove), with exact top-k cosine ground truth
    (int32 ids = row numbers, best first) computed by numpy here."""
    base_p, q_p = os.path.join(data_dir, "base.fvecs"), os.path.join(data_dir, "queries.fvecs")
    if not os.path.exists(base_p):
        sys.exit(f"{base_p} missing: run bash scripts/fetch-ann-data.sh glove")
    base = np.ascontiguousarray(load_vectors(base_p)[:n], dtype=np.float32)
    queries = np.ascontiguousarray(load_vectors(q_p)[:n_queries], dtype=np.float32)
    truth = ground_truth(base, queries, k=k, metric="cosine") if gt else None
    return base, queries, truth


def recall_at_k(found, truth, k):
    hits = 0
    for f, g in zip(found, truth):
        hits += len(set(int(x) for x in list(f)[:k]) & set(g[:k].tolist()))
    return hits / (k * len(truth))


# ---------------------------------------------------------------- /proc accounting

def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def process_tree(pid):
    """pid and all its live descendants."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()  # fields from index 3 (state) on


def tree_cpu_s(pid):
    """CPU seconds (user + system) of pid's process tree: every live process's
    own time plus the time of the children it has reaped (cutime/cstime), so a
    PostgreSQL backend that exited is still counted through the postmaster."""
    total = 0
    for p in process_tree(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK_TCK


def tree_rss_bytes(pid):
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def self_cpu_s():
    """CPU seconds of this process and its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# ---------------------------------------------------------------- stats / output

def pct(values, q):
    """q-th percentile (0..100), nearest-rank on sorted values; None when empty."""
    if not len(values):
        return None
    v = np.sort(np.asarray(values, dtype=np.float64))
    idx = min(len(v) - 1, max(0, int(np.ceil(q / 100 * len(v))) - 1))
    return float(v[idx])


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def md_table(headers, rows):
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join("" if c is None else str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fmt(x, nd=0):
    if x is None:
        return "—"
    return f"{x:,.{nd}f}"


def machine():
    info = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count()}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket"):
                info[k.strip()] = v.strip()
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return info


def write_outputs(report, md, json_path, md_path):
    for p in (json_path, md_path):
        if p:
            os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {json_path}", file=sys.stderr)
    if md_path:
        with open(md_path, "w") as f:
            f.write(md + "\n")
        print(f"wrote {md_path}", file=sys.stderr)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{host}:{port} not listening after {timeout} s")


def stop_process(proc, timeout=20):
    """SIGTERM the process group we started, then SIGKILL it after timeout."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------- Sextant over HTTP

class ContractError(RuntimeError):
    pass


class _Resp:
    def __init__(self, status, data, headers):
        self.status_code, self.content, self.headers = status, data, headers

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


class StdlibHTTP:
    """A keep-alive HTTP/1.1 connection from the standard library (http.client),
    with the small part of httpx.Client's interface SextantHTTP uses. Lighter on
    client CPU than httpx; reconnects once when the server closed the connection."""

    def __init__(self, base_url, timeout=120.0):
        from urllib.parse import urlsplit
        u = urlsplit(base_url)
        self.host, self.port, self.timeout = u.hostname, u.port or 80, timeout
        self.conn = None

    def _connect(self, timeout):
        import http.client
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, method, path, content=None, timeout=None):
        import http.client
        if isinstance(content, str):
            content = content.encode()
        hdrs = {"content-type": "application/json", "content-length": str(len(content or b""))}
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self._connect(timeout or self.timeout)
                elif timeout:
                    self.conn.sock.settimeout(timeout)
                self.conn.request(method, path, body=content, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                if timeout:
                    self.conn.sock.settimeout(self.timeout)
                return _Resp(r.status, data, {k.lower(): v for k, v in r.getheaders()})
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise

    def get(self, path, timeout=None):
        return self.request("GET", path, None, timeout)

    def post(self, path, content=None, timeout=None):
        return self.request("POST", path, content, timeout)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class SextantHTTP:
    """Sextant's REST API over plain HTTP/JSON with keep-alive: httpx.Client, or
    with transport="stdlib" one http.client connection (less client CPU).

    The contract (issue 15; the server is being written):
      GET  /healthz                             -> 200
      POST /collections                         {"name","dim","metric","index","m","ef_construction"} -> 200/201
      PUT  /collections/{c}/points              {"points":[{"id","vector","payload"}]} -> {"upserted": n}
      POST /collections/{c}/optimize            -> 200
      POST /collections/{c}/search              {"vector","k","ef"} -> {"hits":[{"id","score"}]}
      POST /collections/{c}/points/get          {"ids":[...]} -> {"points":[{"id","payload"}]}
      POST /collections/{c}/points/count        {} -> {"count": n}
      overload: 429/503, Retry-After header, {"error":{"code":"overloaded","message"}}

    Tolerated differences, so a small drift does not void a run: create answering
    409 (already exists) when asked with exist_ok; a search answer whose list is
    under "hits", "results", "points" or "result", or is the top-level list; hits
    whose id is a string of digits; get answers under "points" / "results" or a
    list; count under "count" or "points_count"; optimize answering 202 (then
    polled through count until it answers) or 404 (no such step: skipped, noted
    in `notes`). Each tolerance used is recorded once in `notes`.
    """

    LIST_KEYS = ("hits", "results", "points", "result")

    def __init__(self, base_url, collection="glove", timeout=120.0, transport="httpx"):
        self.base = base_url.rstrip("/")
        self.col = collection
        if transport == "stdlib":
            self.http = StdlibHTTP(self.base, timeout)
        else:
            import httpx
            self.http = httpx.Client(
                base_url=self.base, timeout=timeout,
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
                headers={"content-type": "application/json"})
        self.notes = set()

    def close(self):
        self.http.close()

    def _note(self, what):
        if what not in self.notes:
            self.notes.add(what)
            print(f"sextant adapter: {what}", file=sys.stderr)

    def _post(self, method, path, body=None, ok=(200, 201)):
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        r = self.http.request(method, path, content=data)
        if r.status_code not in ok:
            raise ContractError(f"{method} {path} -> {r.status_code}: {r.text[:300]}")
        return r

    def healthy(self):
        try:
            return self.http.get("/healthz", timeout=2).status_code == 200
        except Exception:
            return False

    def wait_healthy(self, timeout=60, proc=None):
        end = time.time() + timeout
        while time.time() < end:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            if self.healthy():
                return
            time.sleep(0.2)
        raise TimeoutError(f"GET {self.base}/healthz not 200 after {timeout} s")

    def create(self, dim, metric="cosine", m=16, ef_construction=200, exist_ok=True):
        body = {"name": self.col, "dim": dim, "metric": metric, "index": "hnsw",
                "m": m, "ef_construction": ef_construction}
        r = self._post("POST", "/collections", body, ok=(200, 201, 409))
        if r.status_code == 409:
            if not exist_ok:
                raise ContractError(f"collection {self.col} exists")
            self._note("create answered 409: collection already existed, reused")

    def upsert(self, ids, vectors, payloads=None):
        pts = []
        for j, (i, v) in enumerate(zip(ids, vectors)):
            p = {"id": int(i), "vector": [float(x) for x in v]}
            p["payload"] = payloads[j] if payloads is not None else {"i": int(i)}
            pts.append(p)
        r = self._post("PUT", f"/collections/{self.col}/points", {"points": pts})
        try:
            n = r.json().get("upserted")
        except ValueError:
            n = None
        if n is None:
            self._note("upsert answer has no 'upserted' count")
        elif n != len(pts):
            raise ContractError(f"upserted {n} of {len(pts)}")
        return len(pts)

    def optimize(self, timeout=3600):
        r = self.http.post(f"/collections/{self.col}/optimize", timeout=timeout)
        if r.status_code == 404:
            self._note("optimize answered 404: skipped")
            return
        if r.status_code == 202:
            self._note("optimize answered 202 (asynchronous): waiting for count to answer")
            self.count()
            return
        if r.status_code not in (200, 201, 204):
            raise ContractError(f"optimize -> {r.status_code}: {r.text[:300]}")

    def search_body(self, vector, k=10, ef=None):
        body = {"vector": [float(x) for x in vector], "k": k}
        if ef is not None:
            body["ef"] = int(ef)
        return json.dumps(body, separators=(",", ":")).encode()

    def parse_hits(self, data):
        if isinstance(data, list):
            self._note("search answer is a bare list")
            lst = data
        else:
            lst = None
            for key in self.LIST_KEYS:
                if key in data:
                    if key != "hits":
                        self._note(f"search hits under '{key}'")
                    lst = data[key]
                    break
            if lst is None:
                raise ContractError(f"search answer without hits: {str(data)[:200]}")
        ids = []
        for h in lst:
            i = h["id"] if isinstance(h, dict) else h
            if isinstance(i, str):
                self._note("hit ids are strings")
                i = int(i)
            ids.append(i)
        return ids

    def search(self, vector, k=10, ef=None):
        r = self.http.post(f"/collections/{self.col}/search", content=self.search_body(vector, k, ef))
        if r.status_code != 200:
            raise ContractError(f"search -> {r.status_code}: {r.text[:300]}")
        return self.parse_hits(r.json())

    def get(self, ids):
        r = self._post("POST", f"/collections/{self.col}/points/get", {"ids": [int(i) for i in ids]})
        return self.parse_points(r.json())

    def parse_points(self, data):
        lst = data if isinstance(data, list) else data.get("points", data.get("results"))
        if lst is None:
            raise ContractError(f"get answer without points: {str(data)[:200]}")
        return [{"id": int(p["id"]), "payload": p.get("payload")} for p in lst]

    def count(self):
        r = self._post("POST", f"/collections/{self.col}/points/count", {})
        d = r.json()
        n = d.get("count", d.get("points_count")) if isinstance(d, dict) else d
        if n is None:
            raise ContractError(f"count answer without count: {str(d)[:200]}")
        return int(n)


def start_sextant(bin_cmd, data_dir, port, log_path, extra_args=(), env=None):
    """Start `<bin> --data DIR serve --listen 127.0.0.1:PORT --no-auth` in its own
    process group. bin_cmd may hold several words (e.g. 'python3 bench/http_stub.py')."""
    cmd = shlex.split(bin_cmd) + ["--data", data_dir, "serve", "--listen", f"127.0.0.1:{port}",
                                  "--no-auth", *extra_args]
    log = open(log_path, "w")
    print("starting:", " ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True, env=env)
    return proc, cmd


def server_pid(proc):
    """The pid to account to the server: the started process itself."""
    return proc.pid
