#!/usr/bin/env python3
"""Runs `sextant bench ann` and bench/peers/ann.py back to back on one data set
and reports, per system, QPS at recall@k = 0.90 / 0.95 / 0.99 (linearly
interpolated on the ef sweep), build time and memory, plus Sextant/peer ratios.

  python bench/compare_ann.py --dataset fashion-mnist|glove [--runs 3] [--ef LIST]
  python bench/compare_ann.py --base B --queries Q --metric l2 --name mydata

Exact ground truth (top-100) is computed with numpy into OUT_DIR/<name>-gt.ivecs
when missing. Sextant runs three times over the same graph parameters: its default (SQ8 walk),
`--quantization pq4` (4-bit neighbour codes beside the links) and `--quantization none` (f32
walk). Writes OUT_DIR/<name>-{sextant,sextant-pq4,sextant-f32,peers,compare}.json and
-compare.md, with every Sextant walk's ratio to every peer.
--skip-sextant / --skip-peers reuse that side's existing JSON instead of running it.
Needs numpy: when started without it, re-runs itself with .venv-peers/bin/python
(made by bench/peers/setup.sh), which also runs the peers.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_VENV = os.path.join(ROOT, ".venv-peers")
PEER_PY = os.path.join(PEER_VENV, "bin", "python")

try:
    import numpy  # noqa: F401
except ImportError:
    if os.path.exists(PEER_PY) and os.path.realpath(sys.prefix) != os.path.realpath(PEER_VENV):
        os.execv(PEER_PY, [PEER_PY] + sys.argv)
    sys.exit("numpy is needed: run `bash bench/peers/setup.sh` first")

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from ann_data import ground_truth, load_vectors, save_vectors  # noqa: E402

DATASETS = {
    "fashion-mnist": ("data/ann/fashion-mnist-784-euclidean", "l2"),
    "glove": ("data/ann/glove-50-angular", "cosine"),
}
DEFAULT_EF = "10,16,24,32,48,64,96,128,192,256,384,512"
TARGETS = (0.90, 0.95, 0.99)
GT_DEPTH = 100


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS))
    ap.add_argument("--base")
    ap.add_argument("--queries")
    ap.add_argument("--metric", choices=["l2", "cosine", "dot"])
    ap.add_argument("--name", help="prefix of output files (default: the --dataset name)")
    ap.add_argument("--sextant", default="target/release/sextant")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ef", default=DEFAULT_EF)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--systems", default="hnswlib,faiss,usearch", help="peers to run")
    ap.add_argument("--out-dir", default="bench/out")
    ap.add_argument("--skip-sextant", action="store_true", help="reuse OUT_DIR/<name>-sextant.json")
    ap.add_argument("--skip-peers", action="store_true", help="reuse OUT_DIR/<name>-peers.json")
    a = ap.parse_args()
    if a.dataset:
        d, metric = DATASETS[a.dataset]
        a.base = a.base or os.path.join(ROOT, d, "base.fvecs")
        a.queries = a.queries or os.path.join(ROOT, d, "queries.fvecs")
        a.metric = a.metric or metric
    if not (a.base and a.queries and a.metric):
        ap.error("give --dataset, or all of --base, --queries and --metric")
    a.name = a.name or a.dataset or os.path.basename(os.path.dirname(os.path.abspath(a.base)))
    return a


# ---------------------------------------------------------------- running

def ensure_ground_truth(a, path):
    queries = load_vectors(a.queries)
    if os.path.exists(path):
        gt = load_vectors(path, numpy.int32)
        if len(gt) == len(queries) and gt.shape[1] >= a.k:
            print(f"ground truth: reusing {path}")
            return
        print(f"ground truth: {path} has shape {gt.shape}, recomputing")
    print(f"ground truth: exact top-{GT_DEPTH} by {a.metric} -> {path}")
    save_vectors(path, ground_truth(load_vectors(a.base), queries, GT_DEPTH, a.metric))


def common_args(a, gt):
    return ["--base", a.base, "--queries", a.queries, "--gt", gt, "--metric", a.metric,
            "--m", str(a.m), "--ef-construction", str(a.ef_construction), "--ef", a.ef,
            "--k", str(a.k), "--threads", str(a.threads), "--runs", str(a.runs)]


def run(cmd):
    print("+ " + " ".join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def load_runs(path):
    """A peers file holds {"runs": [...]}; sextant writes one run object."""
    with open(path) as f:
        data = json.load(f)
    return data["runs"] if "runs" in data else [data]


# ---------------------------------------------------------------- analysis

def qps_at(results, target):
    """QPS where the (recall, qps) curve, in ef order, first reaches target.

    Returns (qps, how): how is "interp" between two bracketing points,
    "lowest-ef" when even the smallest ef already beats the target (a lower
    bound), or "n/r" when no point reaches it."""
    pts = sorted(results, key=lambda r: r["ef"])
    if not pts:
        return None, "n/r"
    if pts[0]["recall"] >= target:
        return pts[0]["qps"], "lowest-ef"
    for lo, hi in zip(pts, pts[1:]):
        if lo["recall"] < target <= hi["recall"]:
            t = (target - lo["recall"]) / (hi["recall"] - lo["recall"])
            return lo["qps"] + t * (hi["qps"] - lo["qps"]), "interp"
    return None, "n/r"


def summarise(r):
    s = {"system": r["system"], "version": r.get("version", "?"), "isa": r.get("isa", ""),
         "build_wall_s": r["build"]["wall_s"], "build_cpu_s": r["build"]["cpu_s"],
         "memory_bytes": r.get("memory_bytes"), "memory_method": r.get("memory_method"),
         "max_recall": max((x["recall"] for x in r["results"]), default=None), "qps_at": {}}
    for t in TARGETS:
        q, how = qps_at(r["results"], t)
        s["qps_at"][f"{t:.2f}"] = {"qps": q, "how": how}
    return s


def ratio(x, y):
    return x / y if x is not None and y else None


def ratios(ours, peer):
    out = {"ours": ours["system"], "peer": peer["system"]}
    for t, v in ours["qps_at"].items():
        out[f"qps@{t}"] = ratio(v["qps"], peer["qps_at"][t]["qps"])
    out["build_wall"] = ratio(ours["build_wall_s"], peer["build_wall_s"])
    out["build_cpu"] = ratio(ours["build_cpu_s"], peer["build_cpu_s"])
    out["memory"] = ratio(ours["memory_bytes"], peer["memory_bytes"])
    return out


# ---------------------------------------------------------------- reporting

def cpu_info():
    info = {"model": "?", "cpus": os.cpu_count()}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "Model name":
                info["model"] = val.strip()
            elif key.strip() == "CPU(s)":
                info["cpus"] = int(val.strip())
    except (OSError, ValueError):
        pass
    return info


def fmt_qps(v):
    if v["how"] == "n/r":
        return "n/r"
    return ("≥" if v["how"] == "lowest-ef" else "") + f"{v['qps']:.0f}"


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}×"


def markdown(report, runs):
    h, p = report["host"], report["params"]
    ds = report["dataset"]
    ts = [f"{t:.2f}" for t in TARGETS]
    k = p["k"]
    out = [f"# ANN comparison: {report['name']}", "",
           f"- date (UTC): {report['date_utc']}",
           f"- CPU: {h['model']}, {h['cpus']} logical CPUs",
           f"- data: {ds['n_base']} base × {ds['dim']}-d, {ds['n_queries']} queries, metric {report['metric']}",
           f"- HNSW M={p['m']}, efConstruction={p['ef_construction']}, k={k}, threads={p['threads']}, "
           f"runs={p['runs']} (median QPS); queries issued one at a time",
           f"- ground truth: {report['gt']} (exact)", "",
           f"## QPS at recall@{k} targets (higher is better)", "",
           "| system | version | " + " | ".join(f"QPS @{t}" for t in ts)
           + " | build wall s | build CPU s | memory MiB | max recall |",
           "|---|---|" + "---:|" * (len(ts) + 4)]
    for s in report["systems"]:
        mem = "?" if s["memory_bytes"] is None else f"{s['memory_bytes'] / 2**20:.1f}"
        out.append(f"| {s['system']} | {s['version']} | "
                   + " | ".join(fmt_qps(s["qps_at"][t]) for t in ts)
                   + f" | {s['build_wall_s']:.2f} | {s['build_cpu_s']:.2f} | {mem} | {s['max_recall']:.4f} |")
    out += [""] + [f"- {s['system']}: {s['isa']}" for s in report["systems"] if s["isa"]]
    out += ["", "n/r: recall never reached in the sweep; ≥: the smallest ef already exceeds the target.", ""]
    if report["ratios"]:
        out += ["## Sextant / peer", "",
                "QPS ratio > 1: Sextant faster. Build time and memory ratio < 1: Sextant better.", "",
                "| sextant walk | peer | " + " | ".join(f"QPS @{t}" for t in ts)
                + " | build wall | build CPU | memory |",
                "|---|---|" + "---:|" * (len(ts) + 3)]
        for r in report["ratios"]:
            out.append(f"| {r['ours']} | {r['peer']} | " + " | ".join(fmt_ratio(r[f'qps@{t}']) for t in ts)
                       + f" | {fmt_ratio(r['build_wall'])} | {fmt_ratio(r['build_cpu'])} | {fmt_ratio(r['memory'])} |")
        out.append("")
    out += ["## Sweeps", ""]
    for r in runs:
        out += [f"### {r['system']} {r.get('version', '')}", "",
                f"| ef | recall@{k} | QPS | wall s | CPU s |", "|---:|---:|---:|---:|---:|"]
        for x in sorted(r["results"], key=lambda x: x["ef"]):
            out.append(f"| {x['ef']} | {x['recall']:.4f} | {x['qps']:.0f} | {x['wall_s']:.3f} | {x['cpu_s']:.3f} |")
        out.append("")
    return "\n".join(out)


def main():
    a = parse_args()
    out_dir = os.path.join(ROOT, a.out_dir) if not os.path.isabs(a.out_dir) else a.out_dir
    os.makedirs(out_dir, exist_ok=True)
    prefix = os.path.join(out_dir, a.name)
    gt, ours_json, peers_json = prefix + "-gt.ivecs", prefix + "-sextant.json", prefix + "-peers.json"
    # Our default walk (SQ8 codes, exact rescoring) and the plain f32 walk over the same graph
    # parameters, so the report separates the graph from the quantised walk.
    f32_json = prefix + "-sextant-f32.json"
    pq4_json = prefix + "-sextant-pq4.json"
    a.base, a.queries = os.path.abspath(a.base), os.path.abspath(a.queries)

    ensure_ground_truth(a, gt)
    if not a.skip_sextant:
        exe = a.sextant if os.path.isabs(a.sextant) else os.path.join(ROOT, a.sextant)
        if not os.path.exists(exe):
            sys.exit(f"{exe} not found: build it (cargo build --release) or pass --skip-sextant")
        run([exe, "bench", "ann"] + common_args(a, gt) + ["--json", ours_json])
        run([exe, "bench", "ann"] + common_args(a, gt)
            + ["--quantization", "pq4", "--json", pq4_json])
        run([exe, "bench", "ann"] + common_args(a, gt)
            + ["--quantization", "none", "--json", f32_json])
    if not a.skip_peers:
        run([sys.executable, os.path.join(ROOT, "bench", "peers", "ann.py")] + common_args(a, gt)
            + ["--systems", a.systems, "--json", peers_json])

    paths = (ours_json, pq4_json, f32_json, peers_json)
    runs = [r for path in paths if os.path.exists(path) for r in load_runs(path)]
    if not runs:
        sys.exit("no results to compare")
    systems = [summarise(r) for r in runs]
    ours = [s for s in systems if s["system"].startswith("sextant")]
    peers = [s for s in systems if not s["system"].startswith("sextant")]
    first = runs[0]
    report = {
        "name": a.name,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "host": cpu_info(),
        "dataset": first["dataset"],
        "metric": first["metric"],
        "gt": os.path.relpath(gt, ROOT) if gt.startswith(ROOT + os.sep) else gt,
        "params": dict(first["params"], runs=a.runs),
        "targets": list(TARGETS),
        "systems": systems,
        "ratios": [ratios(o, s) for o in ours for s in peers],
    }
    md = markdown(report, runs)
    with open(prefix + "-compare.json", "w") as f:
        json.dump(report, f, indent=1)
    with open(prefix + "-compare.md", "w") as f:
        f.write(md)
    print(md)
    print(f"wrote {prefix}-compare.json and {prefix}-compare.md")


if __name__ == "__main__":
    main()
