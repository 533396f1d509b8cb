#!/usr/bin/env python3
"""Summarises bench/ivf_codes.sh: per data set and code layout (4-bit, 4-bit + OPQ, 8-bit,
8-bit + OPQ, at equal bytes per vector), Sextant's and faiss's best QPS at recall@10 0.90 /
0.95 / 0.99, their ratio, build times, and each system's recall at one fixed grid point where
rescoring is shallow (the codes' own quality shows there).

  python3 bench/ivf_codes_summary.py DIR     (writes DIR/summary.md and DIR/summary.json)
"""
import json
import os
import sys

LAYOUTS = ("4bit", "4bit-opq", "8bit", "8bit-opq")
# (data set, fixed nprobe, fixed ef): shallow rescoring, enough lists.
PROBES = (("fashion-mnist", 8, 20), ("glove", 64, 50))
TARGETS = ("0.90", "0.95", "0.99")


def load(path):
    with open(path) as f:
        return json.load(f)


def at(run, nprobe, ef):
    for r in run["results"]:
        if r.get("nprobe") == nprobe and r["ef"] == ef:
            return r["recall"]
    return None


def main():
    d = sys.argv[1]
    rows, out = [], []
    for name, nprobe, ef in PROBES:
        for layout in LAYOUTS:
            prefix = os.path.join(d, f"{name}-{layout}")
            if not os.path.exists(prefix + "-ivf-compare.json"):
                continue
            cmp = load(prefix + "-ivf-compare.json")
            ours, peer = cmp["systems"]
            runs = {"sextant": load(prefix + "-ivf-sextant.json"),
                    "faiss": load(prefix + "-ivf-peers.json")["runs"][0]}
            row = {"dataset": name, "layout": layout, "date_utc": cmp["date_utc"],
                   "sextant_pq": ours["params"].get("pq"), "faiss_pq": peer["params"].get("pq"),
                   "build_s": [ours["build_wall_s"], peer["build_wall_s"]],
                   "fixed_point": {"nprobe": nprobe, "ef": ef,
                                   "recall": [at(runs["sextant"], nprobe, ef), at(runs["faiss"], nprobe, ef)]},
                   "best_at": {t: [ours["best_at"][t], peer["best_at"][t]] for t in TARGETS}}
            rows.append(row)
    for name, nprobe, ef in PROBES:
        sel = [r for r in rows if r["dataset"] == name]
        if not sel:
            continue
        out += [f"### {name}", "",
                f"| layout | Sextant QPS @0.90 / 0.95 / 0.99 | faiss QPS @0.90 / 0.95 / 0.99 | ratio @0.95 | recall@10 at nprobe {nprobe}, ef {ef} (Sextant / faiss) | build s (Sextant / faiss) |",
                "|---|---|---|---:|---|---|"]
        for r in sel:
            def cells(i):
                return " / ".join("n/r" if r["best_at"][t][i] is None else f"{r['best_at'][t][i]['qps']:,.0f}" for t in TARGETS)
            s95, f95 = r["best_at"]["0.95"]
            ratio = f"{s95['qps'] / f95['qps']:.2f}×" if s95 and f95 else "n/a"
            rec = r["fixed_point"]["recall"]
            recs = " / ".join("—" if x is None else f"{x:.4f}" for x in rec)
            out.append(f"| {r['layout']} ({r['sextant_pq']}; faiss `{r['faiss_pq']}`) | {cells(0)} | {cells(1)} | {ratio} | {recs} | {r['build_s'][0]:.2f} / {r['build_s'][1]:.2f} |")
        out.append("")
    out.append("n/r: no grid point reached the target. Each row is one `bench/compare_ivf.py` run "
               "(`<dataset>-<layout>-ivf-compare.md` has both sweeps).")
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print("\n".join(out))


if __name__ == "__main__":
    main()
