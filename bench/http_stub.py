#!/usr/bin/env python3
"""TEST STUB — NOT SEXTANT. A tiny stand-in for `sextant serve`, written only to
test the benchmark clients (bench/peers/http_peers.py, bench/http_load.py)
before the real server exists. Never report numbers measured against it.

It speaks the REST contract of issue 15 (see SextantHTTP in bench/http_common.py)
with the same command line as the real server:
  python3 bench/http_stub.py --data DIR serve --listen 127.0.0.1:PORT --no-auth \
      [--max-inflight N] [--overload-status 429|503] [--drop-every N] [--delay-ms X]
Search is exact (numpy brute force over all points, cosine or l2/dot). Nothing
is persisted. Overload: when more than --max-inflight requests are being handled
it answers --overload-status with Retry-After: 1 and
{"error":{"code":"overloaded","message":...}}. --drop-every N acknowledges
every N-th upserted point without storing it (to check that http_load.py
detects lost writes). --delay-ms adds a sleep to every search (simulates work).
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.cols = {}


class Collection:
    def __init__(self, name, dim, metric):
        self.name, self.dim, self.metric = name, dim, metric
        self.ids, self.vecs, self.payloads = [], [], {}
        self.pos = {}
        self.mat = None
        self.id_arr = None
        self.lock = threading.Lock()
        self.seen = 0

    def upsert(self, points, drop_every):
        with self.lock:
            for p in points:
                self.seen += 1
                if drop_every and self.seen % drop_every == 0:
                    continue
                i = int(p["id"])
                v = np.asarray(p["vector"], dtype=np.float32)
                if v.shape != (self.dim,):
                    raise ValueError(f"vector of {v.shape} for dim {self.dim}")
                if self.metric == "cosine":
                    v = v / max(float(np.linalg.norm(v)), 1e-30)
                if i in self.pos:
                    self.vecs[self.pos[i]] = v
                else:
                    self.pos[i] = len(self.ids)
                    self.ids.append(i)
                    self.vecs.append(v)
                self.payloads[i] = p.get("payload")
            self.mat = None

    def matrix(self):
        with self.lock:
            if self.mat is None:
                self.mat = np.array(self.vecs, dtype=np.float32).reshape(-1, self.dim)
                self.id_arr = np.array(self.ids, dtype=np.int64)
            return self.mat, self.id_arr

    def search(self, vector, k):
        mat, ids = self.matrix()
        q = np.asarray(vector, dtype=np.float32)
        if self.metric == "cosine":
            q = q / max(float(np.linalg.norm(q)), 1e-30)
        s = -((mat - q) ** 2).sum(1) if self.metric == "l2" else mat @ q
        k = min(k, len(s))
        top = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        top = top[np.argsort(-s[top], kind="stable")]
        return [{"id": int(ids[t]), "score": float(s[t])} for t in top]


def make_handler(store, a):
    inflight = threading.Semaphore(a.max_inflight) if a.max_inflight else None

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16               # one write per response (flushed after each request)
        disable_nagle_algorithm = True   # no 40 ms delayed-ACK stalls on keep-alive

        def log_message(self, *args):
            pass

        def _send(self, code, obj, headers=()):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _body(self):
            n = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(n) if n else b""
            return json.loads(raw) if raw else {}

        def _err(self, code, kind, msg):
            self._send(code, {"error": {"code": kind, "message": msg}})

        def _route(self, method):
            body = self._body() if method in ("POST", "PUT") else None
            path = self.path.split("?")[0].rstrip("/")
            if method == "GET" and path == "/healthz":
                return self._send(200, {"status": "ok"})
            if inflight is not None and not inflight.acquire(blocking=False):
                return self._send(a.overload_status,
                                  {"error": {"code": "overloaded", "message": "too many requests in flight"}},
                                  [("Retry-After", "1")])
            try:
                return self._dispatch(method, path, body)
            except (ValueError, KeyError, TypeError) as e:
                return self._err(400, "bad_request", str(e))
            finally:
                if inflight is not None:
                    inflight.release()

        def _dispatch(self, method, path, body):
            parts = path.strip("/").split("/")
            if method == "POST" and parts == ["collections"]:
                with store.lock:
                    if body["name"] in store.cols:
                        return self._err(409, "exists", "collection exists")
                    store.cols[body["name"]] = Collection(body["name"], int(body["dim"]),
                                                          body.get("metric", "cosine"))
                return self._send(201, {"name": body["name"]})
            if len(parts) < 3 or parts[0] != "collections":
                return self._err(404, "not_found", path)
            col = store.cols.get(parts[1])
            if col is None:
                return self._err(404, "not_found", f"no collection {parts[1]}")
            rest = parts[2:]
            if method == "PUT" and rest == ["points"]:
                col.upsert(body["points"], a.drop_every)
                return self._send(200, {"upserted": len(body["points"])})
            if method == "POST" and rest == ["optimize"]:
                col.matrix()
                return self._send(200, {"status": "ok"})
            if method == "POST" and rest == ["search"]:
                if a.delay_ms:
                    time.sleep(a.delay_ms / 1000)
                return self._send(200, {"hits": col.search(body["vector"], int(body.get("k", 10)))})
            if method == "POST" and rest == ["points", "get"]:
                pts = [{"id": int(i), "payload": col.payloads[int(i)]} for i in body["ids"]
                       if int(i) in col.payloads]
                return self._send(200, {"points": pts})
            if method == "POST" and rest == ["points", "count"]:
                return self._send(200, {"count": len(col.ids)})
            return self._err(404, "not_found", path)

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_PUT(self):
            self._route("PUT")

    return H


def main(argv=None):
    ap = argparse.ArgumentParser(description="TEST STUB for sextant serve (not Sextant)")
    ap.add_argument("--data", required=True, help="accepted for CLI compatibility; unused")
    ap.add_argument("cmd", choices=["serve"])
    ap.add_argument("--listen", default="127.0.0.1:6333")
    ap.add_argument("--no-auth", action="store_true")
    ap.add_argument("--max-inflight", type=int, default=0, help="0: unlimited")
    ap.add_argument("--overload-status", type=int, default=429, choices=[429, 503])
    ap.add_argument("--drop-every", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    a = ap.parse_args(argv)
    host, port = a.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), make_handler(Store(), a))
    srv.daemon_threads = True
    print(f"TEST STUB listening on {a.listen}", file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
