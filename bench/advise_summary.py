#!/usr/bin/env python3
"""Compares what `collection advise` predicted from a sample with what it measured on the whole
collection and with the recommended layout built for real (bench/advise_check.sh writes the
inputs). Standard library only.

    python3 bench/advise_summary.py --import-flags PREDICT.json   # `bench import` and `bench open` flags
    python3 bench/advise_summary.py --out DIR SET [SET ...]        # Markdown to stdout, summary.json
"""

import argparse
import json
import os
import sys


def flags(layout, chosen):
    """The `bench import` flags making `layout`, and the `bench open` flags searching it at `chosen`."""
    index = layout["index"]
    f = ["--index", index["type"]]
    if index["type"] == "hnsw":
        f += ["--quantization", index.get("quantization", "auto")]
    elif index["type"] == "ivf_pq":
        f += ["--pq-m", str(index["m"])]
    if layout["on_disk"]:
        f.append("--on-disk")
    s = []
    if chosen and chosen.get("nprobe"):
        s += ["--nprobe", str(chosen["nprobe"])]
    s += ["--ef", str((chosen or {}).get("ef") or 10)]
    return " ".join(f), " ".join(s)


def mib(b):
    return f"{b / 2**20:.1f}"


def by_name(report):
    return {l["layout"]: l for l in report["layouts"]}


def summarise(out, name):
    p = json.load(open(os.path.join(out, f"{name}-predict.json")))
    f = json.load(open(os.path.join(out, f"{name}-full.json")))
    real = json.load(open(os.path.join(out, f"{name}-real.json")))
    fl = by_name(f)
    lines = [
        f"### {name}: {p['live_points']:,} x {p['dim']}-d {p['metric']}, {p['queries']} queries",
        "",
        f"Predicted from a sample of {p['sample']:,} (projected to {p['points']:,} points) against "
        f"measured on {f['sample']:,}. Recall@{p['k']} target {p['target_recall']}; QPS at the fastest "
        "setting reaching it, one thread.",
        "",
        "| layout | RAM MiB predicted | RAM MiB measured | setting predicted | setting measured "
        "| QPS predicted | QPS measured | predicted / measured |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    rows = []
    for l in p["layouts"]:
        m = fl.get(l["layout"])
        if m is None:
            continue

        def setting(x):
            c = x["chosen"]
            if not c:
                return "not reached"
            parts = []
            if c.get("nprobe"):
                parts.append(f"nprobe {c['nprobe']}")
            if c.get("ef"):
                parts.append(f"ef {c['ef']}")
            return ", ".join(parts) or "exact"

        pq = l.get("projected_qps")
        mq = m["chosen"]["qps"] if m["chosen"] else None
        ratio = f"{pq / mq:.2f}" if pq and mq else "-"
        lines.append(
            f"| {l['layout']} | {mib(l['ram_bytes'])} | {mib(m['ram_bytes'])} | {setting(l)} | {setting(m)} "
            f"| {pq or 0:,.0f} | {mq or 0:,.0f} | {ratio} |"
        )
        rows.append(
            {
                "layout": l["layout"],
                "ram_predicted": l["ram_bytes"],
                "ram_measured": m["ram_bytes"],
                "qps_predicted": pq,
                "qps_measured": mq,
            }
        )
    rec_p = p["layouts"][p["recommended"]] if p["recommended"] is not None else None
    rec_f = f["layouts"][f["recommended"]] if f["recommended"] is not None else None
    lines += [
        "",
        f"Recommended from the sample: **{rec_p['layout'] if rec_p else 'none'}**; "
        f"from the whole collection: **{rec_f['layout'] if rec_f else 'none'}**.",
    ]
    real_row = None
    if rec_p and real["search"]:
        run = real["search"][0]
        real_row = {
            "layout": rec_p["layout"],
            "engine_memory_bytes": real["engine_memory_bytes"],
            "rss_bytes": real["rss_bytes"],
            "recall": run["recall"],
            "qps": run["qps"],
            "ef": run["ef"],
            "nprobe": run.get("nprobe"),
        }
        c = rec_p["chosen"] or {}
        lines += [
            "",
            "The recommended layout built for real (`bench import`, then `bench open` at the advised "
            "setting over every query of the file, median of 3 runs):",
            "",
            "| | RAM MiB | recall@10 | QPS |",
            "|---|---:|---:|---:|",
            f"| predicted | {mib(rec_p['ram_bytes'])} | {c.get('recall', 0):.4f} | {rec_p.get('projected_qps') or 0:,.0f} |",
            f"| real (engine-accounted heap; RSS {mib(real['rss_bytes'])}) | {mib(real['engine_memory_bytes'])} "
            f"| {run['recall']:.4f} | {run['qps']:,.0f} |",
        ]
    lines.append("")
    return "\n".join(lines), {"set": name, "layouts": rows, "real": real_row}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--import-flags", help="print the recommended layout's bench flags, tab-separated")
    ap.add_argument("--out")
    ap.add_argument("sets", nargs="*")
    a = ap.parse_args()
    if a.import_flags:
        r = json.load(open(a.import_flags))
        if r["recommended"] is None:
            sys.exit(f"no recommendation: {r['reason']}")
        l = r["layouts"][r["recommended"]]
        print("\t".join(flags(l, l["chosen"])))
        return
    parts, data = [], []
    for s in a.sets:
        text, d = summarise(a.out, s)
        parts.append(text)
        data.append(d)
    print("\n".join(parts))
    json.dump(data, open(os.path.join(a.out, "summary.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
