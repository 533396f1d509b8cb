#!/usr/bin/env python3
"""A reranked run in the order the engine returns it, scored against the run it reranks.

`sextant eval` orders each run by score, but after `rerank_top=N` the engine's documents
carry two kinds of score: the reranked ones the cross-encoder's logit, the rest their fusion
score (in the engine's list they follow the reranked ones). Ordered by score, a logit below
the fusion scores puts a reranked document under every fusion-scored one, which is not the
order the engine returns. This rebuilds the engine's order from `sextant eval`'s runs
(`--out DIR` writes DIR/runs/<config>.trec): a document of the reranked run whose score is
its score in the base run was not reranked; reranked documents come first by logit, then the
others by fusion score. It prints nDCG@10, recall@10, MRR@10 of the base run, of the reranked
run as `sextant eval` orders it, and in the engine's order, and the paired randomisation test
(sign flips of the per-query differences, two-sided) of the engine order against the base.

  rerank_order.py QRELS BASE.trec RERANKED.trec [--permutations 10000] [--seed 1] [--json OUT]
"""
import argparse
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ir_metrics import ranked, read_qrels, read_run  # noqa: E402


def metrics(judged, ranking):
    rel = {d: s for d, s in judged.items() if s > 0}
    if not rel:
        return None
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    mrr = next((1.0 / (i + 1) for i, d in enumerate(ranking[:10]) if d in rel), 0.0)
    recall = sum(1 for d in ranking[:10] if d in rel) / len(rel)
    return {"ndcg@10": dcg / idcg, "recall@10": recall, "mrr@10": mrr}


def engine_order(base, reranked):
    """Reranked documents (score differs from the base run's) by logit, then the rest."""
    head = {d: s for d, s in reranked.items() if base.get(d) != s}
    tail = {d: s for d, s in reranked.items() if base.get(d) == s}
    return ranked(head) + ranked(tail), len(head)


def paired_p(diffs, permutations, seed):
    rng = random.Random(seed)
    observed = abs(sum(diffs))
    hits = 0
    for _ in range(permutations):
        if abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed - 1e-12:
            hits += 1
    return (hits + 1) / (permutations + 1)


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
    rows = {"base": {}, "reranked, by score": {}, "reranked, engine order": {}}
    heads, mixed = [], 0
    for q, judged in qrels.items():
        b = ranked(base.get(q, {}))
        by_score = ranked(rr.get(q, {}))
        order, head = engine_order(base.get(q, {}), rr.get(q, {}))
        heads.append(head)
        if by_score[:10] != order[:10]:
            mixed += 1
        for name, ranking in zip(rows, (b, by_score, order)):
            m = metrics(judged, ranking)
            if m is not None:
                rows[name][q] = m
    qs = sorted(rows["base"])
    print(f"{len(qs)} queries; reranked documents a query: mean {sum(heads) / len(heads):.1f}, "
          f"min {min(heads)}; top 10 ordered differently by score than by the engine: {mixed}")
    out = {}
    for name, per in rows.items():
        means = {k: sum(per[q][k] for q in qs) / len(qs) for k in ("ndcg@10", "recall@10", "mrr@10")}
        out[name] = means
        print(f"{name:24} " + "  ".join(f"{k} {v:.4f}" for k, v in means.items()))
    diffs = [rows["reranked, engine order"][q]["ndcg@10"] - rows["base"][q]["ndcg@10"] for q in qs]
    p = paired_p(diffs, a.permutations, a.seed)
    delta = sum(diffs) / len(diffs)
    print(f"engine order - base, nDCG@10: {delta:+.4f} (paired randomisation p {p:.4f}, "
          f"{a.permutations} permutations)")
    out["ndcg@10 difference"] = delta
    out["p"] = p
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
