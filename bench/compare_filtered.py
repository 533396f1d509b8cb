#!/usr/bin/env python3
"""Filtered-search comparison: runs `sextant bench filtered` and the peers
(bench/peers/filtered.py: LanceDB, Chroma) back to back on the same data,
filters, queries and exact filtered ground truth, then reports per system and
selectivity (none, 1%, 10%, 50%) the best QPS among settings with recall@k >= 0.95,
Sextant/peer QPS ratios, each system's filtered-1% / unfiltered QPS, and import
throughput (points/s) with ratios.

  python bench/compare_filtered.py [--dataset fashion-mnist|glove]
      [--sextant-json PATH] [--skip-sextant] [--skip-peers] [--systems lancedb,chroma]

Data comes from data/filtered/<dataset>/ (made by bench/filtered_data.py when
missing). Writes bench/out/filtered-<dataset>-{sextant,lancedb,chroma}.json and
bench/out/filtered-<dataset>-compare.{json,md}; prints the Markdown.
--skip-sextant / --skip-peers reuse that side's existing JSON; --sextant-json takes
Sextant's report from PATH instead of running the binary. The peers run with
.venv-peers/bin/python (bash bench/peers/setup.sh makes it). Stdlib only.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_PY = os.path.join(ROOT, ".venv-peers", "bin", "python")
DATASETS = {"fashion-mnist": "l2", "glove": "cosine"}
PEERS = ("lancedb", "chroma")
SELS = (None, 0.01, 0.1, 0.5)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    ap.add_argument("--data", help="default data/filtered/<dataset>")
    ap.add_argument("--sextant", default="target/release/sextant")
    ap.add_argument("--sextant-json", help="use this Sextant report instead of running the binary")
    ap.add_argument("--ef", default="32,64,128,256", help="Sextant's ef sweep")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--systems", default=",".join(PEERS), help="peers to run")
    ap.add_argument("--peer-args", default="", help="extra arguments for bench/peers/filtered.py")
    ap.add_argument("--out-dir", default="bench/out")
    ap.add_argument("--skip-sextant", action="store_true")
    ap.add_argument("--skip-peers", action="store_true")
    a = ap.parse_args()
    a.metric = DATASETS[a.dataset]
    a.data = os.path.abspath(a.data or os.path.join(ROOT, "data", "filtered", a.dataset))
    a.out_dir = a.out_dir if os.path.isabs(a.out_dir) else os.path.join(ROOT, a.out_dir)
    return a


def run(cmd):
    print("+ " + " ".join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def python_with_numpy():
    for py in (PEER_PY, sys.executable):
        if os.path.exists(py) and subprocess.run([py, "-c", "import numpy"],
                                                 capture_output=True).returncode == 0:
            return py
    sys.exit("numpy is needed: run `bash bench/peers/setup.sh` first")


# ---------------------------------------------------------------- running

def ensure_data(a):
    if os.path.exists(os.path.join(a.data, "meta.json")):
        return
    print(f"{a.data}/meta.json missing: making the data")
    if run([python_with_numpy(), os.path.join(ROOT, "bench", "filtered_data.py"), a.dataset,
            "--out-dir", a.data]) != 0:
        sys.exit("bench/filtered_data.py failed")


def run_sextant(a, meta, out_json):
    exe = a.sextant if os.path.isabs(a.sextant) else os.path.join(ROOT, a.sextant)
    if not os.path.exists(exe):
        print(f"SKIPPED Sextant: {exe} not found (cargo build --release), or pass --sextant-json")
        return False
    probe = subprocess.run([exe, "bench", "filtered", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"SKIPPED Sextant: `{a.sextant} bench filtered` is not available "
              f"({(probe.stderr or probe.stdout).strip().splitlines()[-1:] or '?'})")
        return False
    base = meta["base"] if os.path.isabs(meta["base"]) else os.path.join(ROOT, meta["base"])
    cmd = [exe, "bench", "filtered", "--base", base,
           "--queries", os.path.join(a.data, meta["queries"]),
           "--payloads", os.path.join(a.data, meta["payloads"]),
           "--filters", os.path.join(a.data, "meta.json"), "--gt-dir", a.data,
           "--metric", meta["metric"], "--k", str(a.k), "--ef", a.ef, "--json", out_json]
    if run(cmd) != 0:
        print("Sextant run FAILED")
        return False
    return True


def run_peers(a, systems):
    if not os.path.exists(PEER_PY):
        print(f"SKIPPED peers: {PEER_PY} missing (bash bench/peers/setup.sh)")
        return
    cmd = [PEER_PY, os.path.join(ROOT, "bench", "peers", "filtered.py"), "--data", a.data,
           "--systems", ",".join(systems), "--k", str(a.k), "--target", str(a.target),
           "--out-dir", a.out_dir] + a.peer_args.split()
    if run(cmd) != 0:
        print("a peer run FAILED (see above); comparing what was written")


# ---------------------------------------------------------------- analysis

def best_at(runs, sel, target):
    """Best QPS among runs of this selectivity with recall >= target; when none
    reaches it, the run with the highest recall, flagged reached=False."""
    rs = [r for r in runs if r.get("selectivity") == sel]
    if not rs:
        return None
    ok = [r for r in rs if r["recall"] >= target]
    if ok:
        r = max(ok, key=lambda r: r["qps"])
        return {"qps": r["qps"], "recall": r["recall"], "params": r.get("params"), "reached": True}
    r = max(rs, key=lambda r: (r["recall"], r["qps"]))
    return {"qps": r["qps"], "recall": r["recall"], "params": r.get("params"), "reached": False}


def ratio(x, y):
    return x / y if x is not None and y else None


def sel_key(sel):
    return "none" if sel is None else f"{sel:g}"


def summarise(rep, target):
    s = {"system": rep["system"], "version": rep.get("version", "?"), "threads": rep.get("threads"),
         "import": rep.get("import", {}), "build": rep.get("build", {}), "best": {}, "by_mode": {}}
    for sel in SELS:
        s["best"][sel_key(sel)] = best_at(rep["runs"], sel, target)
    modes = sorted({(r.get("params") or {}).get("mode") for r in rep["runs"]} - {None})
    if len(modes) > 1:
        for m in modes:
            mr = [r for r in rep["runs"] if (r.get("params") or {}).get("mode") == m]
            s["by_mode"][m] = {sel_key(sel): best_at(mr, sel, target) for sel in SELS}
    none, one = s["best"]["none"], s["best"]["0.01"]
    s["filtered_1pct_over_unfiltered"] = ratio(one and one["qps"], none and none["qps"])
    s["all_reached"] = all(v is not None and v["reached"] for v in s["best"].values())
    return s


def compare(ours, peer):
    out = {"peer": peer["system"]}
    for sel in SELS:
        k = sel_key(sel)
        o, p = ours["best"][k], peer["best"][k]
        out[f"qps_{k}"] = ratio(o and o["qps"], p and p["qps"])
    out["import_points_per_s"] = ratio(ours["import"].get("points_per_s"), peer["import"].get("points_per_s"))
    return out


# ---------------------------------------------------------------- reporting

def cpu_info():
    info = {"model": "?", "cpus": os.cpu_count()}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "Model name":
                info["model"] = val.strip()
    except OSError:
        pass
    return info


def fmt_best(b):
    if b is None:
        return "—"
    return (f"{b['qps']:.0f} ({b['recall']:.3f})" if b["reached"]
            else f"n/r: {b['recall']:.3f} @ {b['qps']:.0f}")


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}×"


def fmt_num(x, spec=".2f"):
    return "—" if x is None else format(x, spec)


def fmt_params(p):
    return ", ".join(f"{k}={v}" for k, v in (p or {}).items())


def markdown(report, reports):
    t, k = report["target"], report["k"]
    m = report["meta"]
    out = [f"# Filtered search: {report['dataset']}", "",
           f"- date (UTC): {report['date_utc']}; CPU: {report['host']['model']}, "
           f"{report['host']['cpus']} logical CPUs",
           f"- data: {m['n']} × {m['dim']}-d, metric {m['metric']}, {report['queries']} queries, k={k}; "
           f"payload bucket = seeded permutation % 100; filters bucket < 1 / 10 / 50 "
           f"(exactly 1% / 10% / 50% of points)",
           f"- ground truth: exact filtered top-{m.get('gt_k', 100)} ({report['data']})",
           "- queries issued one at a time; cell = best QPS among settings with recall@"
           f"{k} ≥ {t} (recall reached); n/r = target not reached, best recall shown", "",
           f"## QPS at recall@{k} ≥ {t}", "",
           "| system | version | unfiltered | 1% | 10% | 50% | 1% / unfiltered | import points/s | build s |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in report["systems"]:
        b = s["best"]
        out.append(f"| {s['system']} | {s['version']} | " + " | ".join(fmt_best(b[sel_key(x)]) for x in SELS)
                   + f" | {fmt_ratio(s['filtered_1pct_over_unfiltered'])}"
                   f" | {fmt_num(s['import'].get('points_per_s'), '.0f')}"
                   f" | {fmt_num(s['build'].get('wall_s'))} |")
    ours = next((s for s in report["systems"] if s["system"] == "sextant"), None)
    if ours:
        ok = ours["all_reached"]
        f1 = ours["filtered_1pct_over_unfiltered"]
        out += ["", f"Bar: recall@{k} ≥ {t} at every selectivity: **{'yes' if ok else 'no'}**; "
                f"filtered-1% QPS ≥ ½ unfiltered QPS: **{'yes' if f1 is not None and f1 >= 0.5 else 'no'}** "
                f"({fmt_ratio(f1)})"]
    if report["ratios"]:
        out += ["", "## Sextant / peer (> 1: Sextant faster)", "",
                "| peer | unfiltered | 1% | 10% | 50% | import points/s |", "|---|---:|---:|---:|---:|---:|"]
        for r in report["ratios"]:
            out.append(f"| {r['peer']} | " + " | ".join(fmt_ratio(r[f'qps_{sel_key(x)}']) for x in SELS)
                       + f" | {fmt_ratio(r['import_points_per_s'])} |")
    modes = [(s, mode, v) for s in report["systems"] for mode, v in s["by_mode"].items()]
    if modes:
        out += ["", "## Per search mode", "", "| system | mode | unfiltered | 1% | 10% | 50% |",
                "|---|---|---:|---:|---:|---:|"]
        for s, mode, v in modes:
            out.append(f"| {s['system']} | {mode} | " + " | ".join(fmt_best(v[sel_key(x)]) for x in SELS) + " |")
    out += ["", "## Setup", ""]
    for s in report["systems"]:
        imp, bld = s["import"], s["build"]
        out.append(f"- **{s['system']}**: threads: {s['threads']}; import {imp.get('points', '?')} points "
                   f"in {fmt_num(imp.get('wall_s'))} s wall / {fmt_num(imp.get('cpu_s'))} s CPU"
                   + (f" ({imp['what']})" if imp.get("what") else "")
                   + f"; build {fmt_num(bld.get('wall_s'))} s wall / {fmt_num(bld.get('cpu_s'))} s CPU"
                   + (f": {bld['what']}" if bld.get("what") else ""))
    out += ["", "## Sweeps", ""]
    for rep in reports:
        out += [f"### {rep['system']} {rep.get('version', '')}", "",
                f"| selectivity | params | recall@{k} | QPS | wall s | CPU s | plans |",
                "|---|---|---:|---:|---:|---:|---|"]
        for r in rep["runs"]:
            out.append(f"| {sel_key(r.get('selectivity'))} | {fmt_params(r.get('params'))} | "
                       f"{r['recall']:.4f} | {r['qps']:.0f} | {fmt_num(r.get('wall_s'), '.3f')} | "
                       f"{fmt_num(r.get('cpu_s'), '.3f')} | {fmt_params(r.get('plans'))} |")
        out.append("")
    return "\n".join(out)


def main():
    a = parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    ensure_data(a)
    with open(os.path.join(a.data, "meta.json")) as f:
        meta = json.load(f)
    prefix = os.path.join(a.out_dir, f"filtered-{meta['dataset']}")
    systems = [s.strip() for s in a.systems.split(",") if s.strip()]

    ours_json = a.sextant_json or prefix + "-sextant.json"
    if a.sextant_json:
        print(f"Sextant: using {a.sextant_json}")
    elif not a.skip_sextant:
        run_sextant(a, meta, ours_json)
    if not a.skip_peers and systems:
        run_peers(a, systems)

    reports = []
    for path in [ours_json] + [f"{prefix}-{s}.json" for s in systems]:
        if os.path.exists(path):
            with open(path) as f:
                reports.append(json.load(f))
        else:
            print(f"missing {path}: left out of the comparison")
    if not reports:
        sys.exit("no results to compare")
    sums = [summarise(r, a.target) for r in reports]
    ours = next((s for s in sums if s["system"] == "sextant"), None)
    report = {
        "dataset": meta["dataset"],
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "host": cpu_info(),
        "data": os.path.relpath(a.data, ROOT) if a.data.startswith(ROOT + os.sep) else a.data,
        "meta": {k: meta.get(k) for k in ("n", "dim", "metric", "gt_k", "queries_n")},
        "queries": reports[0].get("queries"),
        "k": a.k,
        "target": a.target,
        "filters": meta["filters"],
        "systems": sums,
        "ratios": [compare(ours, s) for s in sums if ours and s is not ours],
    }
    md = markdown(report, reports)
    with open(prefix + "-compare.json", "w") as f:
        json.dump(report, f, indent=1)
    with open(prefix + "-compare.md", "w") as f:
        f.write(md + "\n")
    print(md)
    print(f"wrote {prefix}-compare.json and {prefix}-compare.md")


if __name__ == "__main__":
    main()
