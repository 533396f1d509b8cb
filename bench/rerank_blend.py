#!/usr/bin/env python3
"""How a cross-encoder's order blended with the first stage's would score, from eval's runs.

`sextant eval --out DIR` (with KEEP_RUNS=1 in bench/finetune_ce_eval.sh) writes the hybrid run
and the reranked run. In the reranked run the documents the cross-encoder scored (the head)
carry its logits and the rest keep hybrid's scores shifted by one constant (the engine keeps
them below the head), so the head is every document whose score is not the query's tail
offset from its hybrid score. For each weight w the head is reordered by
w * (rank by the cross-encoder) + (1 - w) * (rank in hybrid), ties by the cross-encoder,
the tail after it: w = 1 is the cross-encoder's order, w = 0 hybrid's. Prints nDCG@10 a
weight and the paired randomisation test of each against hybrid.

  rerank_blend.py QRELS HYBRID.trec RERANKED.trec [--permutations 10000] [--json OUT]

Superseded: the engine blends itself now (`rerank_blend`, BENCHMARKS "`rerank_blend` in the
engine"), and this replica's guess of the head is wrong when the tail's offsets are not one
value: with eval's --depth 100 and 20 reranked chunks it took all 100 documents as the head
(its `rerank_order.py` line reads "reranked documents a query: mean 100.0"). Kept so that the
figures measured with it can be reproduced; measure blends with `sextant eval --config
"NAME=mode=hybrid;rerank=DIR;rerank_blend=W"` (bench/finetune_ce_eval.sh BLENDS="...").
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ir_metrics import ranked, read_qrels, read_run  # noqa: E402
from rerank_order import metrics, paired_p  # noqa: E402

WEIGHTS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def head_and_tail(base, reranked):
    """The reranked documents (best first by the cross-encoder) and the rest, in order: the
    head is the longest prefix of the reranked run whose documents are not at the tail's
    offset from their hybrid score (the most common offset of the run's second half; a
    document hybrid's run cut off counts as tail). Run eval with a depth well past the
    reranked chunks (100) so that there is a tail."""
    order = ranked(reranked)
    diffs = [round(reranked[d] - base[d], 3) for d in order[len(order) // 2:] if d in base]
    if not diffs:
        return order, []
    offset = max(set(diffs), key=diffs.count)
    n = 0
    while n < len(order) and order[n] in base and abs(reranked[order[n]] - base[order[n]] - offset) > 1e-3:
        n += 1
    return order[:n], order[n:]


def blended(base, reranked, w):
    head, tail = head_and_tail(base, reranked)
    by_base = {d: i for i, d in enumerate(sorted(head, key=lambda d: -base[d]))}
    by_ce = {d: i for i, d in enumerate(head)}
    head = sorted(head, key=lambda d: (w * by_ce[d] + (1 - w) * by_base[d], by_ce[d]))
    return head + tail


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("qrels")
    ap.add_argument("base")
    ap.add_argument("reranked")
    ap.add_argument("--permutations", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    qrels = read_qrels(a.qrels)
    base, rr = read_run(a.base), read_run(a.reranked)
    qs = sorted(q for q, j in qrels.items() if any(s > 0 for s in j.values()) and q in rr)
    hybrid = {q: metrics(qrels[q], ranked(base[q]))["ndcg@10"] for q in qs}
    out = {"queries": len(qs), "hybrid": sum(hybrid.values()) / len(qs), "weights": {}}
    print(f"{len(qs)} queries; hybrid nDCG@10 {out['hybrid']:.4f}")
    for w in WEIGHTS:
        per = {q: metrics(qrels[q], blended(base[q], rr[q], w))["ndcg@10"] for q in qs}
        diffs = [per[q] - hybrid[q] for q in qs]
        mean = sum(per.values()) / len(qs)
        p = paired_p(diffs, a.permutations, a.seed)
        out["weights"][str(w)] = {"ndcg@10": mean, "difference": mean - out["hybrid"], "p": p}
        print(f"w {w:.1f}: nDCG@10 {mean:.4f} ({mean - out['hybrid']:+.4f}, p {p:.4f})")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
