#!/usr/bin/env python3
"""Embedding-speed comparison: `sextant bench embed` and the peers (bench/peers/embed.py:
sentence-transformers on PyTorch, onnxruntime on the same model exported to ONNX) back to back
on the same sentences, batch size and thread counts.

  python bench/compare_embed.py [--input data/text/sentences.txt] [--threads 1,2] [--runs 3]
      [--batch 32] [--limit N] [--sextant PATH] [--systems sextant,st,ort,ort-int8]
      [--precision f32,bf16:amx,int8:amx,int8:vnni:noamx,auto] [--skip-existing] [--tag NAME]

For every thread count, runs each system in its own process (so peak RSS is per system), then
writes bench/out/embed-<system>-t<N>.json and bench/out/embed-compare.{json,md}: sentences/s,
tokens/s, wall and CPU seconds, GFLOP/s (useful: real tokens; FLOPs from config.json), peak RSS,
and Sextant / peer throughput ratios. --precision takes a list: Sextant runs once per precision
(JSON embed-sextant-<precision>-t<N>.json for other than f32) and every peer row gets one ratio
per Sextant precision. `bf16:KERNEL` runs bf16 on one kernel (SEXTANT_BF16_KERNEL=amx, avx512 or
emulated) instead of the fastest this CPU has; `int8:KERNEL` likewise (SEXTANT_INT8_KERNEL=amx,
vnni or emulated), and `int8:vnni:noamx` also keeps bf16 off AMX (SEXTANT_BF16_KERNEL=avx512), so
int8's down projection runs in f32 as on a CPU without AMX; `auto` measures at load. The peers run with .venv-ref/bin/python
(scripts/embed_reference.py creates it; `pip install onnxruntime onnx` into it). Stdlib only.
--skip-existing reuses a system's JSON when it is already there (to re-run one side only).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_PY = os.environ.get("PEER_PYTHON", os.path.join(ROOT, ".venv-ref", "bin", "python"))
NAMES = {"sextant": "sextant", "st": "sentence-transformers", "ort": "onnxruntime",
         "ort-int8": "onnxruntime int8"}


def default_sextant():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "sextant")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default=os.path.join(ROOT, "data", "text", "sentences.txt"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, help="use only the first N lines (all systems)")
    ap.add_argument("--sextant", default=default_sextant())
    ap.add_argument("--systems", default="sextant,st,ort")
    ap.add_argument("--precision", default="f32",
                    help="Sextant's --precision, comma-separated (e.g. f32,bf16)")
    ap.add_argument("--tag", default="", help="suffix of Sextant's JSON name (e.g. bf16)")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--skip-existing", action="store_true")
    ap.add_argument("--no-rss", action="store_true",
                    help="skip the peak-RSS run of `sextant embed` on the whole file")
    return ap.parse_args()


def embed_rss(a, threads):
    """Peak RSS (MiB) and wall seconds of `sextant embed` on the whole input, via GNU time."""
    out = os.path.join(a.out_dir, "embed-rss.npy")
    cmd = ["/usr/bin/time", "-f", "%M %e", a.sextant, "embed", "--model", a.model,
           "--input", a.input, "--output", out, "--batch", str(a.batch), "--threads", str(threads)]
    print("+ " + " ".join(cmd), file=sys.stderr)
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    kib, wall = p.stderr.strip().splitlines()[-1].split()
    os.remove(out)
    return {"threads": threads, "peak_rss_mib": int(kib) / 1024, "wall_s": float(wall)}


def run_system(a, system, threads, path, precision="f32"):
    if a.skip_existing and os.path.isfile(path):
        print(f"reusing {path}", file=sys.stderr)
    elif system == "sextant":
        cmd = [a.sextant, "bench", "embed", "--model", a.model, "--input", a.input,
               "--batch", str(a.batch), "--threads", str(threads), "--runs", str(a.runs),
               "--json", path]
        if a.limit:
            cmd += ["--limit", str(a.limit)]
        env = dict(os.environ)
        env.pop("SEXTANT_BF16_KERNEL", None)
        env.pop("SEXTANT_INT8_KERNEL", None)
        name, _, kernel = precision.partition(":")
        kernel, _, flag = kernel.partition(":")
        if name != "f32":
            cmd += ["--precision", name]
        sets = {}
        if kernel:
            sets["SEXTANT_INT8_KERNEL" if name == "int8" else "SEXTANT_BF16_KERNEL"] = kernel
        if flag == "noamx":
            # A CPU without AMX: bf16 products (int8's down projection) off the tiles.
            sets["SEXTANT_BF16_KERNEL"] = "avx512"
        env.update(sets)
        print("+ " + "".join(f"{k}={v} " for k, v in sets.items()) + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    else:
        cmd = [PEER_PY, os.path.join(ROOT, "bench", "peers", "embed.py"), "--system", system,
               "--model", a.model, "--input", a.input, "--batch", str(a.batch),
               "--threads", str(threads), "--runs", str(a.runs), "--json", path]
        if a.limit:
            cmd += ["--limit", str(a.limit)]
        print("+ " + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(path) as f:
        return json.load(f)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    a = parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    systems = a.systems.split(",")
    precisions = a.precision.split(",")
    threads = [int(t) for t in a.threads.split(",")]
    # (system key, precision): Sextant once per precision, peers once.
    runs = [("sextant", p) for p in precisions if "sextant" in systems]
    runs += [(s, None) for s in systems if s != "sextant"]
    results = {}
    for t in threads:
        for s, p in runs:
            tag = ""
            if s == "sextant":
                parts = [x for x in (a.tag, p.replace(":", "-") if p != "f32" else "") if x]
                tag = "".join(f"-{x}" for x in parts)
            path = os.path.join(a.out_dir, f"embed-{s}{tag}-t{t}.json")
            results[(s, p, t)] = run_system(a, s, t, path, p or "f32")

    rows = []
    for t in threads:
        ours = {p: results[("sextant", p, t)] for s, p in runs if s == "sextant"}
        for s, p in runs:
            r = results[(s, p, t)]
            row = {
                "system": NAMES[s], "threads": t,
                "precision": r.get("precision", "f32")
                + (f" ({r['kernel']})" if r.get("precision") in ("bf16", "int8") and "kernel" in r else ""),
                "sentences": r["sentences"], "sentences_per_s": r["sentences_per_s"],
                "tokens_per_s": r["tokens_per_s"], "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
                "gflop_per_s": r["gflop_per_s"], "peak_rss_mib": r["peak_rss_bytes"] / 2**20,
                "version": r.get("version", ""),
                "runs_wall_s": [x["wall_s"] for x in r.get("runs", [])],
            }
            if s != "sextant":
                row["sextant_ratio"] = {
                    q: o["sentences_per_s"] / r["sentences_per_s"] for q, o in ours.items()}
            rows.append(row)
    rss = None if a.no_rss else embed_rss(a, max(threads))
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu_model()}, {os.cpu_count()} vCPUs",
        "input": a.input, "batch": a.batch, "runs": a.runs, "rows": rows,
        "sextant_embed_rss": rss,
    }
    with open(os.path.join(a.out_dir, "embed-compare.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    md = [f"# Embedding speed ({report['date']}, {report['machine']})", "",
          f"{rows[0]['sentences']} sentences from {os.path.relpath(a.input, ROOT)}, batch "
          f"{a.batch}, median of {a.runs} runs; ratio = Sextant sentences/s ÷ peer's, one "
          f"column per Sextant precision; wall s of every run in the last column.", "",
          "| system | threads | precision | sentences/s | tokens/s | wall s | CPU s | GFLOP/s "
          "| peak RSS MiB | " + " | ".join(f"Sextant {p} ÷ peer" for p in precisions)
          + " | runs (wall s) |",
          "|---|---:|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(precisions) + "---|"]
    for r in rows:
        ratios = " | ".join(
            f"{r['sextant_ratio'][p]:.2f}×" if "sextant_ratio" in r else "—" for p in precisions)
        each = ", ".join(f"{w:.2f}" for w in r["runs_wall_s"])
        md.append(f"| {r['system']} | {r['threads']} | {r['precision']} | "
                  f"{r['sentences_per_s']:.1f} | {r['tokens_per_s']:.0f} | {r['wall_s']:.2f} | "
                  f"{r['cpu_s']:.2f} | {r['gflop_per_s']:.1f} | {r['peak_rss_mib']:.0f} | "
                  f"{ratios} | {each} |")
    if rss:
        md += ["", f"`sextant embed` on the whole file ({rss['threads']} threads): peak RSS "
               f"{rss['peak_rss_mib']:.0f} MiB, {rss['wall_s']:.1f} s wall (model load included)."]
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out_dir, "embed-compare.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
