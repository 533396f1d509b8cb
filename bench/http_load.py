#!/usr/bin/env python3
"""Load test of `sextant serve` (issue 15): saturation, then an open-loop mixed
search/upsert workload at --overload-factor (default 2) × saturation for
--duration seconds (default 300), loopback only.

Phases:
  0. start the server (--sextant-bin, `--data DIR serve --listen 127.0.0.1:P
     --no-auth`; or attach with --sextant-url/--sextant-pid), wait for
     GET /healthz, create the collection, upsert the first --n GloVe-50d vectors
     (batches of 1000), optimize.
  1. saturation: closed loop, the same mix (--search-frac searches, the rest
     upserts of new ids), concurrency 1, 2, 4, ... (--sat-levels), --sat-step
     seconds each; stops when the 2xx rate has not risen by --sat-plateau
     (5%) over the best for two levels in a row. Saturation = best 2xx/s.
  2. open loop: Poisson arrivals at rate R = factor × saturation (or --rate),
     from --procs generator processes (asyncio + aiohttp, keep-alive, each
     request its own task, so a slow answer never delays the next arrival; at
     most --max-inflight outstanding per process, beyond which an arrival is
     counted as client_shed, never queued). Latency is measured from the
     scheduled arrival (so generator lag is charged, not hidden) and also from
     the moment of sending; the generator's send lag is reported to show
     whether the client kept up.
     Records per kind (search/upsert) and status counts: only 2xx, 429 and 503
     are allowed; anything else (other statuses, timeouts after --timeout s,
     connection errors) is a failure, counted and printed. 429/503 answers are
     checked for a Retry-After header and {"error":{"code":"overloaded"}}.
     p50/p99 of admitted (2xx) requests; the server's RSS (VmRSS of its
     process tree, /proc) sampled every second; memory flat = median RSS of
     the last minute against the first minute (first/last 20% when shorter).
     Server CPU seconds (process tree) and the generators' CPU seconds.
  3. verification: every upsert id acknowledged with 2xx (in phases 1 and 2) is
     read back with POST .../points/get in batches of 1000 and its payload
     compared; "acknowledged writes lost" must be 0; count must be
     >= n + acknowledged.

Run against the real server (after bash scripts/fetch-ann-data.sh glove,
bash bench/peers/setup.sh, cargo build --release):
  .venv-peers/bin/python bench/http_load.py --sextant-bin target/release/sextant \
      --json bench/out/http-load.json --md bench/out/http-load.md
Test against the stub (NOT Sextant; numbers meaningless):
  .venv-peers/bin/python bench/http_load.py --sextant-bin '.venv-peers/bin/python bench/http_stub.py' \
      --sextant-arg=--max-inflight=8 --n 20000 --duration 20 --sat-step 3
"""
import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import http_common as hc  # noqa: E402

COLLECTION = "glove"
ALLOWED_OVERLOAD = (429, 503)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sextant-bin", default=os.path.join(hc.ROOT, "target", "release", "sextant"))
    ap.add_argument("--sextant-arg", action="append", default=[], help="extra serve argument (repeatable)")
    ap.add_argument("--sextant-url", help="attach to a running server instead of starting one")
    ap.add_argument("--sextant-pid", type=int, help="with --sextant-url: pid for RSS/CPU")
    ap.add_argument("--skip-load", action="store_true", help="collection already created and loaded")
    ap.add_argument("--n", type=int, default=100_000, help="GloVe-50d vectors loaded before the test")
    ap.add_argument("--data-dir", default=hc.GLOVE)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, default=64, help="search ef (pick the recall-0.95 point)")
    ap.add_argument("--search-frac", type=float, default=0.9)
    ap.add_argument("--upsert-batch", type=int, default=1, help="points per upsert request")
    ap.add_argument("--duration", type=float, default=300.0, help="open-loop seconds")
    ap.add_argument("--overload-factor", type=float, default=2.0)
    ap.add_argument("--rate", type=float, help="arrival rate (req/s): skip the saturation phase")
    ap.add_argument("--sat-levels", default="1,2,4,8,16,32,64,128,256")
    ap.add_argument("--sat-step", type=float, default=10.0, help="seconds per concurrency level")
    ap.add_argument("--sat-plateau", type=float, default=0.05)
    ap.add_argument("--procs", type=int, default=2, help="generator processes")
    ap.add_argument("--max-inflight", type=int, default=1024, help="outstanding requests per generator")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--md")
    a = ap.parse_args(argv)
    a.sat_levels = [int(x) for x in a.sat_levels.split(",")]
    return a


# ---------------------------------------------------------------- generator process

ID_BASE = 1_000_000_000   # new ids: ID_BASE + phase * 100M + proc * 10M + j


def gen_main(cfg, res_q):
    try:
        res_q.put(("result", cfg["proc"], asyncio.run(gen_async(cfg))))
    except Exception as e:  # noqa: BLE001
        res_q.put(("error", cfg["proc"], f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


async def gen_async(cfg):
    import aiohttp
    q = np.load(cfg["queries_path"])
    newv = np.load(cfg["new_vectors_path"])
    bodies = [json.dumps({"vector": [float(x) for x in v], "k": cfg["k"], "ef": cfg["ef"]},
                         separators=(",", ":")).encode() for v in q]
    rng = random.Random(cfg["seed"] * 1000 + cfg["proc"])
    url = cfg["url"].rstrip("/")
    search_url = f"{url}/collections/{COLLECTION}/search"
    upsert_url = f"{url}/collections/{COLLECTION}/points"
    hdr = {"content-type": "application/json"}
    next_id = ID_BASE + cfg["phase"] * 100_000_000 + cfg["proc"] * 10_000_000
    counts = {}          # "search 200" -> n
    failures = {}        # description -> n
    bad_overload = {}    # what was wrong with a 429/503 answer -> n
    lat_sched = {"search": [], "upsert": []}
    lat_send = {"search": [], "upsert": []}
    send_lag = []
    acked, unacked = [], []
    per_sec = {}         # second -> [ok, overload, fail]
    state = {"inflight": 0, "shed": 0, "sent": 0, "max_inflight": 0}
    t_zero = cfg["t_start"]     # wall-clock start shared by all generators
    loop = asyncio.get_running_loop()
    mono0 = loop.time() + (t_zero - time.time())

    def bump(d, key, n=1):
        d[key] = d.get(key, 0) + n

    def sec_slot(t):
        return per_sec.setdefault(int(t - mono0), [0, 0, 0])

    async def one(session, kind, sched):
        nonlocal next_id
        if kind == "search":
            body = bodies[rng.randrange(len(bodies))]
            u, method, ids = search_url, "POST", None
        else:
            ids = list(range(next_id, next_id + cfg["upsert_batch"]))
            next_id += cfg["upsert_batch"]
            pts = [{"id": i, "vector": [float(x) for x in newv[i % len(newv)]], "payload": {"i": i}}
                   for i in ids]
            body = json.dumps({"points": pts}, separators=(",", ":")).encode()
            u, method = upsert_url, "PUT"
        state["inflight"] += 1
        state["max_inflight"] = max(state["max_inflight"], state["inflight"])
        state["sent"] += 1
        s = loop.time()
        send_lag.append(s - sched)
        try:
            async with session.request(method, u, data=body, headers=hdr) as r:
                data = await r.read()
                st = r.status
                end = loop.time()
                bump(counts, f"{kind} {st}")
                slot = sec_slot(end)
                if 200 <= st < 300:
                    lat_sched[kind].append(end - sched)
                    lat_send[kind].append(end - s)
                    slot[0] += 1
                    if ids is not None:
                        acked.extend(ids)
                elif st in ALLOWED_OVERLOAD:
                    slot[1] += 1
                    if ids is not None:
                        unacked.extend(ids)
                    if "retry-after" not in r.headers:
                        bump(bad_overload, f"{st} without Retry-After")
                    try:
                        code = json.loads(data)["error"]["code"]
                        if code != "overloaded":
                            bump(bad_overload, f"{st} error.code={code!r}")
                    except Exception:  # noqa: BLE001
                        bump(bad_overload, f"{st} body not {{error:{{code}}}}: {data[:80]!r}")
                else:
                    slot[2] += 1
                    if ids is not None:
                        unacked.extend(ids)
                    bump(failures, f"{kind} HTTP {st}: {data[:120].decode('utf-8', 'replace')}")
        except asyncio.TimeoutError:
            sec_slot(loop.time())[2] += 1
            if ids is not None:
                unacked.extend(ids)
            bump(failures, f"{kind} timeout after {cfg['timeout']} s")
        except Exception as e:  # noqa: BLE001
            sec_slot(loop.time())[2] += 1
            if ids is not None:
                unacked.extend(ids)
            bump(failures, f"{kind} {type(e).__name__}: {str(e)[:120]}")
        finally:
            state["inflight"] -= 1

    def pick():
        return "search" if rng.random() < cfg["search_frac"] else "upsert"

    conn = aiohttp.TCPConnector(limit=cfg["max_inflight"], limit_per_host=cfg["max_inflight"],
                                keepalive_timeout=60, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=cfg["timeout"])
    c0 = time.process_time()
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        await asyncio.sleep(max(0.0, mono0 - loop.time()))
        end = mono0 + cfg["duration"]
        if cfg["mode"] == "closed":
            async def closed_worker():
                while loop.time() < end:
                    await one(session, pick(), loop.time())
            await asyncio.gather(*(closed_worker() for _ in range(cfg["concurrency"])))
        else:
            rate = cfg["rate"]
            tasks = set()
            nxt = mono0
            while True:
                now = loop.time()
                while nxt <= now and nxt < end:
                    if state["inflight"] >= cfg["max_inflight"]:
                        state["shed"] += 1
                    else:
                        t = asyncio.ensure_future(one(session, pick(), nxt))
                        tasks.add(t)
                        t.add_done_callback(tasks.discard)
                    nxt += rng.expovariate(rate)
                if nxt >= end:
                    break
                await asyncio.sleep(max(0.0, nxt - loop.time()))
            if tasks:
                await asyncio.wait(tasks, timeout=cfg["timeout"] + 5)
    cpu = time.process_time() - c0
    return {"counts": counts, "failures": failures, "bad_overload": bad_overload,
            "lat_sched": {k: np.asarray(v, np.float32) for k, v in lat_sched.items()},
            "lat_send": {k: np.asarray(v, np.float32) for k, v in lat_send.items()},
            "send_lag": np.asarray(send_lag, np.float32), "acked": acked, "unacked": unacked,
            "per_sec": per_sec, "shed": state["shed"], "sent": state["sent"],
            "max_inflight": state["max_inflight"], "cpu_s": cpu, "wall_s": loop.time() - mono0}


def run_phase(a, url, phase, mode, duration, queries_path, newv_path, concurrency=None, rate=None):
    """Runs the generators, returns their merged results."""
    ctx = mp.get_context("spawn")
    res_q = ctx.Queue()
    t_start = time.time() + 3.0   # leaves time for the processes to start
    procs = []
    for p in range(a.procs):
        cfg = {"proc": p, "phase": phase, "mode": mode, "duration": duration, "url": url,
               "queries_path": queries_path, "new_vectors_path": newv_path, "k": a.k, "ef": a.ef,
               "search_frac": a.search_frac, "upsert_batch": a.upsert_batch, "seed": a.seed,
               "max_inflight": a.max_inflight, "timeout": a.timeout, "t_start": t_start}
        if mode == "closed":
            cfg["concurrency"] = concurrency // a.procs + (1 if p < concurrency % a.procs else 0)
            if cfg["concurrency"] == 0:
                continue
        else:
            cfg["rate"] = rate / a.procs
        pr = ctx.Process(target=gen_main, args=(cfg, res_q), daemon=True)
        pr.start()
        procs.append(pr)
    results = []
    for _ in procs:
        kind, p, msg = res_q.get(timeout=duration + a.timeout + 120)
        if kind == "error":
            raise RuntimeError(f"generator {p}: {msg}")
        results.append(msg)
    for pr in procs:
        pr.join(10)
    return merge(results, t_start)


def merge(results, t_start):
    out = {"counts": {}, "failures": {}, "bad_overload": {}, "acked": [], "unacked": [],
           "shed": 0, "sent": 0, "cpu_s": 0.0, "per_sec": {}, "max_inflight": 0}
    for r in results:
        for key in ("counts", "failures", "bad_overload"):
            for k, v in r[key].items():
                out[key][k] = out[key].get(k, 0) + v
        out["acked"] += r["acked"]
        out["unacked"] += r["unacked"]
        out["shed"] += r["shed"]
        out["sent"] += r["sent"]
        out["cpu_s"] += r["cpu_s"]
        out["max_inflight"] = max(out["max_inflight"], r["max_inflight"])
        for s, v in r["per_sec"].items():
            acc = out["per_sec"].setdefault(int(s), [0, 0, 0])
            for i in range(3):
                acc[i] += v[i]
    out["wall_s"] = max(r["wall_s"] for r in results)
    for key in ("lat_sched", "lat_send"):
        out[key] = {k: np.concatenate([r[key][k] for r in results]) for k in ("search", "upsert")}
    out["send_lag"] = np.concatenate([r["send_lag"] for r in results])
    return out


def summarize(m, duration):
    ok = sum(v for k, v in m["counts"].items() if k.split()[1].startswith("2"))
    over = {s: sum(v for k, v in m["counts"].items() if k.split()[1] == str(s)) for s in ALLOWED_OVERLOAD}
    fails = sum(m["failures"].values())
    lat = {}
    for kind in ("search", "upsert"):
        ls, ln = m["lat_sched"][kind], m["lat_send"][kind]
        lat[kind] = {"n": int(len(ls)),
                     "p50_ms": None if not len(ls) else hc.pct(ls, 50) * 1e3,
                     "p99_ms": None if not len(ls) else hc.pct(ls, 99) * 1e3,
                     "p50_from_send_ms": None if not len(ln) else hc.pct(ln, 50) * 1e3,
                     "p99_from_send_ms": None if not len(ln) else hc.pct(ln, 99) * 1e3}
    allk = np.concatenate([m["lat_sched"]["search"], m["lat_sched"]["upsert"]])
    return {"sent": m["sent"], "ok": ok, "ok_per_s": ok / duration, "overload": over,
            "failures": fails, "failure_kinds": m["failures"], "bad_overload_answers": m["bad_overload"],
            "client_shed": m["shed"], "counts": m["counts"], "latency": lat,
            "admitted_p50_ms": hc.pct(allk, 50) * 1e3 if len(allk) else None,
            "admitted_p99_ms": hc.pct(allk, 99) * 1e3 if len(allk) else None,
            "send_lag_p50_ms": hc.pct(m["send_lag"], 50) * 1e3 if len(m["send_lag"]) else None,
            "send_lag_p99_ms": hc.pct(m["send_lag"], 99) * 1e3 if len(m["send_lag"]) else None,
            "client_cpu_s": m["cpu_s"], "max_inflight_per_generator": m["max_inflight"],
            "acked_upserts": len(m["acked"])}


class RssSampler(threading.Thread):
    def __init__(self, pid, every=1.0):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples, self.stop_evt = pid, every, [], threading.Event()
        self.phase = "setup"

    def run(self):
        t0 = time.time()
        while not self.stop_evt.is_set():
            try:
                self.samples.append((time.time() - t0, self.phase, hc.tree_rss_bytes(self.pid)))
            except Exception:  # noqa: BLE001
                pass
            self.stop_evt.wait(self.every)


def memory_flatness(samples, phase):
    xs = [(t, r) for t, p, r in samples if p == phase]
    if len(xs) < 4:
        return None
    t0, t1 = xs[0][0], xs[-1][0]
    win = 60.0 if t1 - t0 >= 180 else (t1 - t0) * 0.2
    first = [r for t, r in xs if t <= t0 + win]
    last = [r for t, r in xs if t >= t1 - win]
    f, l_ = float(np.median(first)), float(np.median(last))
    return {"window_s": win, "first_median_bytes": f, "last_median_bytes": l_,
            "growth_bytes": l_ - f, "growth_pct": (l_ - f) / f * 100 if f else None,
            "max_bytes": max(r for _, r in xs), "samples": len(xs)}


def verify(s, acked, n, batch=1000):
    acked = sorted(set(acked))
    missing, wrong_payload = [], 0
    for i in range(0, len(acked), batch):
        chunk = acked[i:i + batch]
        got = {p["id"]: p for p in s.get(chunk)}
        for pid in chunk:
            p = got.get(pid)
            if p is None:
                missing.append(pid)
            elif isinstance(p.get("payload"), dict) and p["payload"].get("i") != pid:
                wrong_payload += 1
    count = s.count()
    return {"acknowledged": len(acked), "lost": len(missing), "lost_examples": missing[:20],
            "wrong_payload": wrong_payload, "count": count, "count_expected_at_least": n + len(acked),
            "count_ok": count >= n + len(acked)}


def mib(b):
    return hc.fmt(None if b is None else b / 2**20, 1)


def markdown(rep):
    a = rep["args"]
    mch = rep["machine"]
    L = [f"Load test: GloVe-50d {a['n']:,} points (cosine, ef {a['ef']}), "
         f"{a['search_frac'] * 100:.0f}% search / {100 - a['search_frac'] * 100:.0f}% upsert "
         f"({a['upsert_batch']} point(s) per upsert), {a['procs']} generator processes; "
         f"{mch.get('Model name')} × {mch.get('CPU(s)')} CPUs; {mch['date']}.", ""]
    if rep.get("saturation"):
        rows = [[lv["concurrency"], hc.fmt(lv["ok_per_s"]), hc.fmt(lv["admitted_p50_ms"], 2),
                 hc.fmt(lv["admitted_p99_ms"], 2), sum(lv["overload"].values()), lv["failures"],
                 hc.fmt(lv.get("server_cpu_s"), 1), hc.fmt(lv["client_cpu_s"], 1)]
                for lv in rep["saturation"]["levels"]]
        L.append(f"Saturation (closed loop, {a['sat_step']:g} s per level): "
                 f"**{hc.fmt(rep['saturation']['qps'])} 2xx/s** at concurrency "
                 f"{rep['saturation']['at_concurrency']}.")
        L.append("")
        L.append(hc.md_table(["concurrency", "2xx/s", "p50 ms", "p99 ms", "429+503", "failures",
                              "server CPU s", "client CPU s"], rows))
        L.append("")
    o = rep.get("open_loop")
    if o:
        mem = rep.get("memory") or {}
        v = rep.get("verify") or {}
        lat = o["latency"]
        how = "fixed --rate" if a.get("rate") else f"{a['overload_factor']:g}× saturation"
        L.append(f"Open loop at {hc.fmt(o['rate'])} req/s ({how}) for {a['duration']:g} s:")
        L.append("")
        rows = [
            ["requests sent / shed by the client", f"{o['sent']:,} / {o['client_shed']:,}"],
            ["offered rate achieved (target)", f"{hc.fmt(o.get('offered_rate_achieved'))}/s ({hc.fmt(o['rate'])}/s)"],
            ["2xx (admitted)", f"{o['ok']:,} ({hc.fmt(o['ok_per_s'])}/s)"],
            ["429 / 503", f"{o['overload'][429]:,} / {o['overload'][503]:,}"],
            ["**failures** (other status, timeout, connection)", f"**{o['failures']:,}**"],
            ["429/503 answers breaking the contract", f"{sum(o['bad_overload_answers'].values()):,}"],
            ["admitted p50 / p99 ms (from scheduled arrival)",
             f"{hc.fmt(o['admitted_p50_ms'], 2)} / {hc.fmt(o['admitted_p99_ms'], 2)}"],
            ["search p50 / p99 ms", f"{hc.fmt(lat['search']['p50_ms'], 2)} / {hc.fmt(lat['search']['p99_ms'], 2)}"],
            ["upsert p50 / p99 ms", f"{hc.fmt(lat['upsert']['p50_ms'], 2)} / {hc.fmt(lat['upsert']['p99_ms'], 2)}"],
            ["search p50 / p99 ms from send",
             f"{hc.fmt(lat['search']['p50_from_send_ms'], 2)} / {hc.fmt(lat['search']['p99_from_send_ms'], 2)}"],
            ["generator send lag p50 / p99 ms", f"{hc.fmt(o['send_lag_p50_ms'], 2)} / {hc.fmt(o['send_lag_p99_ms'], 2)}"],
            ["server CPU s / client CPU s / wall s",
             f"{hc.fmt(o.get('server_cpu_s'), 1)} / {hc.fmt(o['client_cpu_s'], 1)} / {hc.fmt(o['wall_s'], 1)}"],
            ["server RSS first / last window median MiB (max)",
             f"{mib(mem.get('first_median_bytes'))} / {mib(mem.get('last_median_bytes'))} "
             f"({mib(mem.get('max_bytes'))}); growth {hc.fmt(mem.get('growth_pct'), 1)}%, "
             f"{hc.fmt(mem.get('growth_bytes_per_acked_point'))} B per point upserted meanwhile"],
            ["acknowledged upserts (all phases) / **lost**",
             f"{hc.fmt(v.get('acknowledged'))} / **{hc.fmt(v.get('lost'))}**"],
            ["count after the run (expected ≥)",
             f"{hc.fmt(v.get('count'))} ({hc.fmt(v.get('count_expected_at_least'))})"],
        ]
        L.append(hc.md_table(["", "value"], rows))
        if o["failure_kinds"]:
            L.append("")
            L.append("Failures: " + "; ".join(f"{k} × {n}" for k, n in o["failure_kinds"].items()))
    if rep.get("error"):
        L.append("")
        L.append(f"**Run failed:** {rep['error']}")
    return "\n".join(L)


def main(argv=None):
    a = parse_args(argv)
    base, queries, _ = hc.load_glove(a.n + 50_000, a.queries, a.k, a.data_dir, gt=False)
    newv, base = base[a.n:], base[:a.n]
    workdir = tempfile.mkdtemp(prefix="http-load-", dir=a.tmp)
    qpath, npath = os.path.join(workdir, "queries.npy"), os.path.join(workdir, "new.npy")
    np.save(qpath, queries)
    np.save(npath, newv)
    rep = {"machine": hc.machine(), "args": vars(a)}
    proc = None
    sampler = None
    try:
        if a.sextant_url:
            url, pid = a.sextant_url, a.sextant_pid
            rep["server_cmd"] = ["(attached)", url]
        else:
            port = hc.free_port()
            url = f"http://127.0.0.1:{port}"
            proc, cmd = hc.start_sextant(a.sextant_bin, os.path.join(workdir, "sextant"), port,
                                         os.path.join(workdir, "server.log"), a.sextant_arg)
            pid = proc.pid
            rep["server_cmd"] = cmd
        s = hc.SextantHTTP(url, COLLECTION, timeout=3600)
        s.wait_healthy(120, proc)
        if pid:
            sampler = RssSampler(pid)
            sampler.start()
        if not a.skip_load:
            s.create(base.shape[1], "cosine", 16, 200)
            t0 = time.perf_counter()
            for i in range(0, a.n, 1000):
                ids = range(i, min(a.n, i + 1000))
                s.upsert(ids, base[i:i + 1000], [{"i": j} for j in ids])
            t1 = time.perf_counter()
            s.optimize()
            rep["load"] = {"points": a.n, "upsert_wall_s": t1 - t0, "optimize_wall_s": time.perf_counter() - t1}
            print(f"loaded {a.n} in {t1 - t0:.1f} s, optimize {rep['load']['optimize_wall_s']:.1f} s",
                  file=sys.stderr, flush=True)
        acked_all = []
        # ---- phase 1: saturation
        if a.rate:
            rate = a.rate
        else:
            if sampler:
                sampler.phase = "saturation"
            levels, best, best_c, flat = [], 0.0, None, 0
            for c in a.sat_levels:
                c0 = hc.tree_cpu_s(pid) if pid else None
                m = run_phase(a, url, 1, "closed", a.sat_step, qpath, npath, concurrency=c)
                summ = summarize(m, a.sat_step)
                summ["concurrency"] = c
                summ["server_cpu_s"] = None if c0 is None else hc.tree_cpu_s(pid) - c0
                acked_all += m["acked"]
                levels.append({k: v for k, v in summ.items() if k not in ("counts",)})
                print(f"saturation c={c}: {summ['ok_per_s']:.0f} 2xx/s p50={summ['admitted_p50_ms']}ms "
                      f"overload={summ['overload']} failures={summ['failures']} "
                      f"client_cpu={summ['client_cpu_s']:.1f}s", file=sys.stderr, flush=True)
                if summ["ok_per_s"] > best * (1 + a.sat_plateau):
                    flat = 0
                else:
                    flat += 1
                if summ["ok_per_s"] > best:
                    best, best_c = summ["ok_per_s"], c
                if flat >= 2:
                    break
            rep["saturation"] = {"qps": best, "at_concurrency": best_c, "levels": levels}
            rate = a.overload_factor * best
        # ---- phase 2: open loop
        if sampler:
            sampler.phase = "open"
        print(f"open loop at {rate:.0f} req/s for {a.duration:g} s", file=sys.stderr, flush=True)
        c0 = hc.tree_cpu_s(pid) if pid else None
        m = run_phase(a, url, 2, "open", a.duration, qpath, npath, rate=rate)
        summ = summarize(m, a.duration)
        summ["rate"] = rate
        summ["offered_rate_achieved"] = m["sent"] / a.duration   # < rate: the generator fell behind
        summ["wall_s"] = m["wall_s"]
        summ["server_cpu_s"] = None if c0 is None else hc.tree_cpu_s(pid) - c0
        summ["per_second"] = [[s_, *v] for s_, v in sorted(m["per_sec"].items())]
        acked_all += m["acked"]
        rep["open_loop"] = summ
        if sampler:
            sampler.phase = "verify"
            mem = memory_flatness(sampler.samples, "open")
            if mem and m["acked"]:
                # upserts add points, so some growth is data: growth per point acknowledged
                # between the two windows (acks spread evenly over the run, approximately)
                span = max(1e-9, a.duration - mem["window_s"])
                pts = len(m["acked"]) * span / a.duration
                mem["acked_points_between_windows"] = pts
                mem["growth_bytes_per_acked_point"] = mem["growth_bytes"] / pts if pts else None
            rep["memory"] = mem
        # ---- phase 3: verification
        rep["verify"] = verify(s, acked_all, a.n)
        rep["adapter_notes"] = sorted(s.notes)
        s.close()
    except Exception as e:  # noqa: BLE001
        rep["error"] = f"{type(e).__name__}: {e}"
        rep["traceback"] = traceback.format_exc()
        print(rep["traceback"], file=sys.stderr)
    finally:
        if sampler:
            sampler.stop_evt.set()
            rep["rss_samples"] = [[round(t, 1), p, r] for t, p, r in sampler.samples]
        if proc is not None:
            hc.stop_process(proc)
            try:
                with open(os.path.join(workdir, "server.log")) as f:
                    rep["server_log_tail"] = f.read()[-2000:]
            except OSError:
                pass
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    md = markdown(rep)
    print(md)
    hc.write_outputs(rep, md, a.json, a.md)
    o, v = rep.get("open_loop") or {}, rep.get("verify") or {}
    ok = not rep.get("error") and o.get("failures", 1) == 0 and v.get("lost", 1) == 0
    print("RESULT:", "PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
