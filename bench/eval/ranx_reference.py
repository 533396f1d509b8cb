"""Writes the ranx reference values that `crates/sextant-eval/tests/integration/ranx_parity.rs` checks our
metrics against (to 1e-6).

    python3 -m venv .venv-ranx && .venv-ranx/bin/pip install ranx==0.3.20
    .venv-ranx/bin/python bench/eval/ranx_reference.py crates/sextant-eval/tests/fixtures/ranx

The fixture (qrels.json, run_a.json, run_b.json) is made here too, from a fixed seed, when it is
missing: graded (0-3) and binary judgements, ties in scores, a query whose judgements are all 0,
a query the runs do not answer, documents the qrels do not judge, and rankings shorter than the
cut-offs. expected.json holds, per run and metric, ranx's mean and per-query scores.

Ties: ranx orders tied scores as numba's quicksort leaves them (no defined rule), so the runs
given to ranx are first re-scored by rank under our documented rule — score descending, ties by
document id descending, as trec_eval — and our metrics read the original, tied runs. Both then
rank every query the same way, and what is compared is the measures themselves.
"""

import json
import random
import sys
from pathlib import Path

from ranx import Qrels, Run, evaluate

METRICS = [
    "precision@1", "precision@5", "precision@10",
    "recall@5", "recall@10", "recall@100",
    "hit_rate@1", "hit_rate@10",
    "mrr@10", "mrr@100",
    "map", "map@10", "map@100",
    "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@100",
]


def make_fixture(out: Path) -> None:
    rng = random.Random(20261204)
    docs = [f"d{i:03d}" for i in range(120)]
    qrels = {}
    for q in range(30):
        qid = f"q{q:02d}"
        judged = rng.sample(docs, rng.randint(1, 12))
        graded = q % 2 == 0
        qrels[qid] = {d: (rng.randint(0, 3) if graded else rng.randint(0, 1)) for d in judged}
        if all(g == 0 for g in qrels[qid].values()):
            qrels[qid][judged[0]] = 1
    qrels["q_none"] = {"d000": 0, "d001": 0}  # judged, none relevant
    qrels["q_unanswered"] = {"d002": 1}  # no run answers it

    def run(seed: int) -> dict:
        r = random.Random(seed)
        out = {}
        for qid in qrels:
            if qid == "q_unanswered":
                continue
            n = r.randint(3, 40)
            ranked = r.sample(docs, n)
            # Coarse scores make ties; some relevant documents pushed up to make it interesting.
            out[qid] = {d: float(r.randint(0, 8)) / 2.0 for d in ranked}
            for d, g in qrels[qid].items():
                if g > 0 and r.random() < 0.5:
                    out[qid][d] = 5.0 + r.randint(0, 2)
        return out

    (out / "qrels.json").write_text(json.dumps(qrels, indent=1, sort_keys=True))
    (out / "run_a.json").write_text(json.dumps(run(1), indent=1, sort_keys=True))
    (out / "run_b.json").write_text(json.dumps(run(2), indent=1, sort_keys=True))


def untie(run: dict) -> dict:
    """Each query's documents re-scored n, n-1, … in our order (score desc, id desc)."""
    out = {}
    for q, docs in run.items():
        order = sorted(docs.items(), key=lambda x: x[0], reverse=True)
        order.sort(key=lambda x: -x[1])  # stable: ties keep id-descending order
        out[q] = {d: float(len(order) - i) for i, (d, _) in enumerate(order)}
    return out


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "qrels.json").exists():
        make_fixture(out)
    qrels_d = json.loads((out / "qrels.json").read_text())
    qrels = Qrels(qrels_d)
    expected = {}
    for name in ["run_a", "run_b"]:
        run_d = json.loads((out / f"{name}.json").read_text())
        run = Run(untie(run_d))
        means = evaluate(qrels, run, METRICS, make_comparable=True)
        per_query = {}
        for m in METRICS:
            scores = evaluate(qrels, run, m, make_comparable=True, return_mean=False)
            per_query[m] = {q: float(s) for q, s in zip(qrels.get_query_ids(), scores)}
        expected[name] = {"mean": {m: float(means[m]) for m in METRICS}, "per_query": per_query}
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True))
    print(f"wrote {out / 'expected.json'}: {len(METRICS)} metrics × 2 runs × {len(qrels_d)} queries")


if __name__ == "__main__":
    main()
