#!/usr/bin/env python3
"""Runs `sextant bench ann --index ivf_pq` and faiss's IVF-PQ with exact refinement
(bench/peers/ann.py --systems faiss-ivfpq: 4-bit fast scan, or 8-bit codes with --pq-bits 8,
an OPQ rotation first with --opq) on one data set with the same lists, sub-quantisers, code
width, rotation and (nprobe, ef) grid, where ef is the number of candidates rescored exactly
(faiss: k_factor = ef / k). Reports, per system, the best QPS among grid points reaching
recall@k 0.90 / 0.95 / 0.99 (measured points only, no interpolation), build time and memory.

  python3 bench/compare_ivf.py --dataset glove|fashion-mnist [--pq-m M] [--pq-bits 4|8] [--opq]
      [--nlist N] [--nprobe LIST] [--ef LIST] [--runs 3] [--out-dir bench/out] [--tag T]

Ground truth as bench/compare_ann.py computes it (OUT_DIR/<name>-gt.ivecs, exact top-100).
Writes OUT_DIR/<name>[-T]-ivf-{sextant,peers,compare}.json and -ivf-compare.md.
"""
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_PY = os.path.join(ROOT, ".venv-peers", "bin", "python")
try:
    import numpy  # noqa: F401
except ImportError:
    if os.path.exists(PEER_PY) and sys.executable != PEER_PY:
        os.execv(PEER_PY, [PEER_PY] + sys.argv)
    sys.exit("numpy is needed: run `bash bench/peers/setup.sh` first")
import argparse  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "bench"))
from compare_ann import DATASETS, GT_DEPTH, cpu_info, ensure_ground_truth, load_runs, run  # noqa: E402

TARGETS = (0.90, 0.95, 0.99)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--sextant", default="target/release/sextant")
    ap.add_argument("--nlist", type=int, default=0, help="0: about sqrt(n), the same for both")
    ap.add_argument("--pq-m", type=int, default=0,
                    help="sub-quantisers (0: ceil(dim/4) at 4 bits, ceil(dim/8) at 8)")
    ap.add_argument("--pq-bits", type=int, default=4, choices=[4, 8])
    ap.add_argument("--opq", action="store_true", help="an OPQ rotation before quantising")
    ap.add_argument("--tag", default="", help="suffix of the output names")
    ap.add_argument("--nprobe", default="4,8,16,32,64,128")
    ap.add_argument("--ef", default="20,50,100,200,400")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out-dir", default="bench/out")
    a = ap.parse_args()
    d, a.metric = DATASETS[a.dataset]
    a.base = os.path.join(ROOT, d, "base.fvecs")
    a.queries = os.path.join(ROOT, d, "queries.fvecs")
    a.name = a.dataset + (f"-{a.tag}" if a.tag else "")
    return a


def best_at(results, target):
    ok = [r for r in results if r["recall"] >= target]
    if not ok:
        return None
    r = max(ok, key=lambda r: r["qps"])
    return {"qps": r["qps"], "nprobe": r.get("nprobe"), "ef": r["ef"], "recall": r["recall"]}


def main():
    a = parse_args()
    out = a.out_dir if os.path.isabs(a.out_dir) else os.path.join(ROOT, a.out_dir)
    os.makedirs(out, exist_ok=True)
    prefix = os.path.join(out, a.name)
    gt = os.path.join(out, a.dataset + "-gt.ivecs")
    ensure_ground_truth(a, gt)
    def common(nlist):
        return ["--base", a.base, "--queries", a.queries, "--gt", gt, "--metric", a.metric,
                "--k", str(a.k), "--runs", str(a.runs), "--nprobe", a.nprobe, "--ef", a.ef,
                "--nlist", str(nlist), "--pq-m", str(a.pq_m), "--pq-bits", str(a.pq_bits)] \
            + (["--opq"] if a.opq else [])
    ours, peers = prefix + "-ivf-sextant.json", prefix + "-ivf-peers.json"
    exe = a.sextant if os.path.isabs(a.sextant) else os.path.join(ROOT, a.sextant)
    run([exe, "bench", "ann", "--index", "ivf_pq"] + common(a.nlist) + ["--json", ours])
    # faiss gets the list count Sextant resolved.
    nlist = load_runs(ours)[0]["params"]["nlist"]
    run([PEER_PY, os.path.join(ROOT, "bench", "peers", "ann.py"), "--systems", "faiss-ivfpq"]
        + common(nlist) + ["--json", peers])
    runs = load_runs(ours) + load_runs(peers)
    systems = []
    for r in runs:
        systems.append({"system": r["system"], "version": r.get("version"),
                        "params": r["params"], "build_wall_s": r["build"]["wall_s"],
                        "build_cpu_s": r["build"]["cpu_s"], "memory_bytes": r.get("memory_bytes"),
                        "memory_method": r.get("memory_method", "Sextant's own accounting (heap)"),
                        "best_at": {f"{t:.2f}": best_at(r["results"], t) for t in TARGETS}})
    report = {"name": a.name, "date_utc": datetime.datetime.now(datetime.timezone.utc)
              .strftime("%Y-%m-%d %H:%M:%S"), "host": cpu_info(), "dataset": runs[0]["dataset"],
              "metric": a.metric, "k": a.k, "runs": a.runs, "nlist": nlist, "systems": systems,
              "grid": {"nprobe": a.nprobe, "ef": a.ef}, "gt_depth": GT_DEPTH}
    with open(prefix + "-ivf-compare.json", "w") as f:
        json.dump(report, f, indent=1)
    ds, h = report["dataset"], report["host"]
    lines = [f"# IVF-PQ comparison: {a.name}", "", f"- date (UTC): {report['date_utc']}",
             f"- CPU: {h['model']}, {h['cpus']} logical CPUs",
             f"- data: {ds['n_base']} × {ds['dim']}-d, {ds['n_queries']} queries, {a.metric}; "
             f"nlist={nlist}; grid nprobe {a.nprobe} × ef {a.ef}; k={a.k}; 1 thread, "
             f"queries one at a time; median of {a.runs} runs", "",
             "| system | PQ | " + " | ".join(f"best QPS @{t:.2f} (nprobe/ef)" for t in TARGETS)
             + " | build wall s | memory MiB |", "|---|---|" + "---:|" * (len(TARGETS) + 2)]
    for s in systems:
        cells = []
        for t in TARGETS:
            b = s["best_at"][f"{t:.2f}"]
            cells.append("n/r" if b is None else f"{b['qps']:.0f} ({b['nprobe']}/{b['ef']})")
        lines.append(f"| {s['system']} {s['version']} | {s['params'].get('pq')} | " + " | ".join(cells)
                     + f" | {s['build_wall_s']:.2f} | {s['memory_bytes'] / 2**20:.1f} |")
    ours_s, peer_s = systems[0], systems[1]
    lines += ["", "Sextant ÷ faiss at each target: " + ", ".join(
        f"@{t:.2f} " + (f"{ours_s['best_at'][f'{t:.2f}']['qps'] / peer_s['best_at'][f'{t:.2f}']['qps']:.2f}×"
                       if ours_s["best_at"][f"{t:.2f}"] and peer_s["best_at"][f"{t:.2f}"] else "n/a")
        for t in TARGETS), "", "n/r: no grid point reached the target.", "",
        "Memory: " + "; ".join(f"{s['system']}: {s['memory_method']}" for s in systems), ""]
    for r in runs:
        lines += [f"## {r['system']} sweep", "", f"| nprobe | ef | recall@{a.k} | QPS | CPU s |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {x.get('nprobe')} | {x['ef']} | {x['recall']:.4f} | {x['qps']:.0f} | {x['cpu_s']:.3f} |"
                  for x in r["results"]]
        lines.append("")
    md = "\n".join(lines)
    print(md)
    with open(prefix + "-ivf-compare.md", "w") as f:
        f.write(md)


if __name__ == "__main__":
    main()
