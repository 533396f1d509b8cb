#!/usr/bin/env python3
"""Top-10 overlap between TREC run files (standard library only): the command behind the
"top-10 overlap with Sextant" column of BENCHMARKS.md.

  python3 bench/run_overlap.py REFERENCE RUN [RUN ...] [--depth 10] [--json OUT]

Each run's documents per query are ranked as bench/ir_metrics.py ranks them (score
descending, ties by docid descending, trec_eval's order), and compared with REFERENCE's with
the measure bench/peers/bm25.py reports between peers: per query
|top(a) & top(b)| / min(depth, max(|top(a)|, |top(b)|)), averaged over the queries where at
least one of the two returns something (a query missing from a run counts as returning
nothing); also the share of those queries with the same top-depth set and the same top-1.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ir_metrics  # noqa: E402


def overlap(ref, run, depth):
    fr, same_set, same_top1, n = 0.0, 0, 0, 0
    for qid in sorted(set(ref) | set(run)):
        a = ir_metrics.ranked(ref.get(qid, {}))[:depth]
        b = ir_metrics.ranked(run.get(qid, {}))[:depth]
        if not a and not b:
            continue
        n += 1
        fr += len(set(a) & set(b)) / min(depth, max(len(a), len(b)))
        same_set += set(a) == set(b)
        same_top1 += bool(a and b and a[0] == b[0])
    return {"mean_overlap": fr / n if n else 0.0, "same_set": same_set / n if n else 0.0,
            "same_top1": same_top1 / n if n else 0.0, "queries": n, "depth": depth}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reference")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()
    ref = ir_metrics.read_run(a.reference)
    out = {}
    for path in a.runs:
        o = overlap(ref, ir_metrics.read_run(path), a.depth)
        out[path] = o
        print(f"{path} vs {a.reference}: top-{a.depth} overlap {o['mean_overlap']:.4f}, "
              f"same set {o['same_set']:.4f}, same top-1 {o['same_top1']:.4f} "
              f"({o['queries']} queries)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"reference": a.reference, "runs": out}, f, indent=2)


if __name__ == "__main__":
    main()
