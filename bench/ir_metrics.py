#!/usr/bin/env python3
"""Ranked-retrieval metrics over BEIR qrels and TREC run files (standard library only).

Inputs
  qrels: BEIR TSV `query-id<TAB>corpus-id<TAB>score`, one header line (a first
         line whose third field is not an integer is taken as the header).
         Also accepted: TREC qrels `qid 0 docid rel` (4 whitespace fields).
         A document is relevant when its score is > 0.
  run:   TREC run `qid Q0 docid rank score tag`, whitespace separated.

Ranking. As trec_eval does, the rank column is ignored: each query's documents
are ordered by score descending, ties by docid descending (string order). A
docid listed twice for a query keeps its first line.

Which queries count. Every query of the qrels with at least one relevant
document is averaged over; a query missing from the run scores 0 on every
metric (trec_eval -c). Run queries absent from the qrels are ignored.

Per query, with R the set of relevant documents, rel(d) its qrels score (0 if
unjudged), d_1, d_2, ... the ranked run:
  nDCG@10  = DCG@10 / IDCG@10, DCG@10 = sum_{i=1..10} rel(d_i) / log2(i + 1),
             IDCG@10 = the same sum over the qrels scores sorted descending
             (linear gain as trec_eval's ndcg_cut; with binary qrels gain 1).
  Recall@100 = |R intersect {d_1..d_100}| / |R|.
  MRR@10   = 1 / i for the smallest i <= 10 with d_i in R, else 0.
  MAP      = mean average precision over the whole run (as deep as the run
             file goes): AP = (1/|R|) * sum over i with d_i in R of P@i,
             P@i = |R intersect {d_1..d_i}| / i.
The reported value of each metric is its mean over the counted queries.

Command line:
  ir_metrics.py QRELS RUN [RUN ...] [--json OUT] [--per-query]
  ir_metrics.py --self-test
Importable: read_qrels, read_run, evaluate, format_table.
"""
import argparse
import json
import math
import sys

METRICS = ("ndcg@10", "recall@100", "mrr@10", "map")


def read_qrels(path):
    """{qid: {docid: int score}}, only the lines' values as given (zeros kept)."""
    qrels = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 4:  # TREC qrels: qid iter docid rel
                qid, docid, score = parts[0], parts[2], parts[3]
            elif len(parts) == 3:
                qid, docid, score = parts
            else:
                raise ValueError(f"{path}:{n + 1}: expected 3 or 4 fields")
            try:
                s = int(score)
            except ValueError:
                if n == 0:
                    continue  # header line
                raise ValueError(f"{path}:{n + 1}: score {score!r} is not an integer")
            qrels.setdefault(qid, {})[docid] = s
    return qrels


def read_run(path):
    """{qid: {docid: float score}} from a TREC run (first line wins for a docid)."""
    run = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{n + 1}: expected `qid Q0 docid rank score tag`")
            qid, _, docid, _, score, _ = parts
            run.setdefault(qid, {}).setdefault(docid, float(score))
    return run


def ranked(docs):
    """Docids by score descending, ties by docid descending (trec_eval's order)."""
    return [d for d, _ in sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


def query_metrics(judged, ranking):
    rel = {d: s for d, s in judged.items() if s > 0}
    if not rel:
        return None
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    recall = sum(1 for d in ranking[:100] if d in rel) / len(rel)
    mrr = 0.0
    for i, d in enumerate(ranking[:10]):
        if d in rel:
            mrr = 1.0 / (i + 1)
            break
    hits, ap = 0, 0.0
    for i, d in enumerate(ranking):
        if d in rel:
            hits += 1
            ap += hits / (i + 1)
    return {"ndcg@10": dcg / idcg, "recall@100": recall, "mrr@10": mrr, "map": ap / len(rel)}


def evaluate(qrels, run, per_query=False):
    """Mean metrics over the qrels' queries with a relevant document."""
    per, missing = {}, 0
    for qid, judged in qrels.items():
        docs = run.get(qid)
        if docs is None:
            m = query_metrics(judged, [])
            if m is not None:
                missing += 1
        else:
            m = query_metrics(judged, ranked(docs))
        if m is not None:
            per[qid] = m
    n = len(per)
    out = {k: (sum(m[k] for m in per.values()) / n if n else 0.0) for k in METRICS}
    out["queries"] = n
    out["queries_missing_from_run"] = missing
    if per_query:
        out["per_query"] = per
    return out


def format_table(rows):
    """rows: [(name, metrics dict)] -> a small aligned text table."""
    w = max([len("run")] + [len(n) for n, _ in rows])
    lines = [f"{'run':<{w}}  " + "  ".join(f"{k:>10}" for k in METRICS) + "  queries"]
    for name, m in rows:
        lines.append(f"{name:<{w}}  " + "  ".join(f"{m[k]:>10.4f}" for k in METRICS)
                     + f"  {m['queries']}" + (f" ({m['queries_missing_from_run']} missing)"
                                              if m["queries_missing_from_run"] else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------ self-test

def self_test():
    def close(a, b):
        assert abs(a - b) < 1e-12, (a, b)

    # q1: relevant {a, b}; run a(1st) x(2nd) b(3rd).
    #   DCG = 1/log2(2) + 1/log2(4) = 1 + 0.5 = 1.5; IDCG = 1 + 1/log2(3)
    #   recall = 1; MRR = 1; AP = (1/1 + 2/3) / 2 = 5/6
    # q2: relevant {c}; run x y z c -> c at rank 4.
    #   nDCG = (1/log2(5)) / 1; recall = 1; MRR = 1/4; AP = 1/4
    # q3: relevant {d}; not in the run at all -> every metric 0
    # q4: relevant {e} (grade 2) and {f} (grade 1), run f e:
    #   DCG = 1/1 + 2/log2(3); IDCG = 2/1 + 1/log2(3); MRR = 1; AP = (1 + 1)/2 = 1
    # q5: only a zero-graded judgment -> not counted
    qrels = {"q1": {"a": 1, "b": 1, "z": 0}, "q2": {"c": 1}, "q3": {"d": 1},
             "q4": {"e": 2, "f": 1}, "q5": {"a": 0}}
    run = {"q1": {"a": 3.0, "x": 2.0, "b": 1.0}, "q2": {"x": 4, "y": 3, "z": 2, "c": 1},
           "q4": {"f": 2.0, "e": 1.0}, "q5": {"a": 1.0}, "q9": {"a": 1.0}}
    r = evaluate(qrels, run, per_query=True)
    p = r["per_query"]
    assert r["queries"] == 4 and r["queries_missing_from_run"] == 1
    close(p["q1"]["ndcg@10"], 1.5 / (1 + 1 / math.log2(3)))
    close(p["q1"]["recall@100"], 1.0)
    close(p["q1"]["mrr@10"], 1.0)
    close(p["q1"]["map"], 5 / 6)
    close(p["q2"]["ndcg@10"], 1 / math.log2(5))
    close(p["q2"]["mrr@10"], 0.25)
    close(p["q2"]["map"], 0.25)
    for k in METRICS:
        close(p["q3"][k], 0.0)
    close(p["q4"]["ndcg@10"], (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    close(p["q4"]["map"], 1.0)
    close(r["mrr@10"], (1 + 0.25 + 0 + 1) / 4)
    close(r["map"], (5 / 6 + 0.25 + 0 + 1) / 4)

    # cut-offs: relevant at rank 11 counts for recall@100 and MAP, not nDCG@10/MRR@10;
    # relevant at rank 101 counts for MAP only (the run is 101 deep).
    docs = {f"n{i:03d}": 1000.0 - i for i in range(1, 102)}  # n001 best ... n101 worst
    m = query_metrics({"n011": 1, "n101": 1}, ranked(docs))
    close(m["ndcg@10"], 0.0)
    close(m["mrr@10"], 0.0)
    close(m["recall@100"], 0.5)
    close(m["map"], (1 / 11 + 2 / 101) / 2)

    # ties: equal scores are ordered by docid descending, whatever the rank column says
    assert ranked({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]

    # file round trip, with a BEIR header and a TREC run
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        qp, rp = os.path.join(d, "q.tsv"), os.path.join(d, "r.trec")
        with open(qp, "w") as f:
            f.write("query-id\tcorpus-id\tscore\nq1\ta\t1\nq1\tb\t1\nq2\tc\t1\n")
        with open(rp, "w") as f:
            f.write("q1 Q0 b 1 0.9 t\nq1 Q0 a 2 0.5 t\nq2 Q0 x 1 3 t\nq2 Q0 c 2 2 t\n")
        r = evaluate(read_qrels(qp), read_run(rp))
        close(r["ndcg@10"], (1.0 + 1 / math.log2(3)) / 2)
        close(r["mrr@10"], (1 + 0.5) / 2)
    print("ir_metrics self-test: 1 passed, 0 failed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("qrels", nargs="?")
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--json", help="write {run path: metrics} here")
    ap.add_argument("--per-query", action="store_true", help="include per-query values in --json")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    if not args.qrels or not args.runs:
        ap.error("QRELS and at least one RUN are required")
    qrels = read_qrels(args.qrels)
    results = {r: evaluate(qrels, read_run(r), per_query=args.per_query) for r in args.runs}
    print(format_table(list(results.items())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
