#!/usr/bin/env python3
"""Per-language BM25 reference runs with tantivy and bm25s on the man-XX judged sets.

The sets are data/text/man-XX (scripts/fetch-lang-data.sh): the query is a translated man
page's NAME description, the one relevant document (grade 1) the rest of that page with the
page's names removed; man-en is the English control. Each system indexes one field per
document, `title + " " + text` (titles are empty), k1 = 1.2, b = 0.75.

Systems (per set; L is the set's language):
  tantivy-stem   tantivy's own analyzer: Tokenizer.simple() (split at every character that is
                 not alphanumeric) + Filter.remove_long(40) + Filter.lowercase() +
                 Filter.stemmer(L) (tantivy's Snowball stemmers, rust-stemmers); only for the
                 languages tantivy stems (not pl, ja, zh).
  tantivy-plain  the same without the stemmer.
  tantivy-ngram2 ja and zh only: Tokenizer.ngram(2, 2) + lowercase, i.e. every pair of
                 adjacent characters of the whole text (spaces included): the usual
                 dictionary-free baseline for text without spaces.
  bm25s-stem     bm25s (method "lucene") on tokens made here: maximal runs of Unicode letters
                 and digits of the lower-cased text (re [^\\W_]+ after str.lower, as
                 bench/peers/bm25.py), each through PyStemmer's Snowball stemmer for L
                 (PyStemmer has Polish; it has no Japanese or Chinese, where the run is
                 bm25s-plain, unstemmed).
The query is the analyzer's (or tokenizer's) distinct terms, OR'ed (tantivy: BooleanQuery of
SHOULD TermQuerys; bm25s: the sum of the terms' scores), as in bench/peers/bm25.py, whose
run_tantivy / run_bm25s this script reuses: see its docstring for the scoring formulas and
where tantivy and bm25s differ (tantivy's one-byte fieldnorms).

Metrics: nDCG@10, Recall@100 and MRR@10 from ranx (ranx.evaluate, binary qrels so nDCG's gain
is 1), checked against bench/ir_metrics.py (the largest absolute difference is reported). With
one relevant document per query every metric is a function of that document's rank, which is
saved per query. Significance: paired randomisation test (two-sided, 10,000 permutations,
numpy seed 0) on per-query nDCG@10 for stem vs plain and bm25s vs tantivy.

Writes bench/results/lang/bm25-peers.json and, per set, bench/results/lang/runs/man-XX/:
SYSTEM.trec.gz (TREC run, gzip, cut to the top --run-depth = 10 so that the files stay small:
enough to recompute nDCG@10 and MRR@10) and rel-rank.tsv (query id, then per system the rank
of the relevant document in the top --k = 100 in the run's order (score descending, ties by
docid ascending, as in the run files), 0 when it is not there: with one relevant
document per query this gives every metric above, Recall@100 included, per query, for later
significance tests). ranx and ir_metrics can order tied scores differently (ir_metrics: docid
descending, as trec_eval); the reported difference between them comes from such ties.

Run with the venv of bench/peers/setup-lang.sh:
  bash bench/peers/setup-lang.sh
  .venv-lang/bin/python bench/peers/bm25_lang.py [--sets de,fr,es,...] [--k 100]
"""
import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from importlib.metadata import version

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
import bm25 as bm25ref  # noqa: E402
import ir_metrics  # noqa: E402

METRICS = ("ndcg@10", "recall@100", "mrr@10")
# ISO 639-1 -> (tantivy stemmer language, PyStemmer algorithm); None where there is none
STEMMERS = {
    "da": ("danish", "danish"), "de": ("german", "german"), "el": ("greek", "greek"),
    "en": ("english", "english"), "es": ("spanish", "spanish"), "fi": ("finnish", "finnish"),
    "fr": ("french", "french"), "hu": ("hungarian", "hungarian"), "it": ("italian", "italian"),
    "nb": ("norwegian", "norwegian"), "nl": ("dutch", "dutch"), "pt": ("portuguese", "portuguese"),
    "ro": ("romanian", "romanian"), "ru": ("russian", "russian"), "sv": ("swedish", "swedish"),
    "tr": ("turkish", "turkish"), "pl": (None, "polish"), "cs": (None, "czech"),
    "id": (None, "indonesian"), "sr": (None, "serbian"), "uk": (None, None), "ja": (None, None),
    "zh": (None, None), "vi": (None, None), "mk": (None, None),
}
NGRAM_LANGS = {"ja", "zh"}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=os.path.join(ROOT, "data", "text"))
    ap.add_argument("--sets", default="", help="language codes (default: every data/text/man-XX)")
    ap.add_argument("--k", type=int, default=100, help="retrieval depth (metrics, rel-rank.tsv)")
    ap.add_argument("--run-depth", type=int, default=10,
                    help="depth of the saved TREC runs (default 10 keeps them small; "
                         "rel-rank.tsv has the relevant document's rank to --k)")
    ap.add_argument("--permutations", type=int, default=10000)
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results", "lang"))
    return ap.parse_args()


# ------------------------------------------------------------------ systems

def tantivy_analyzer(stem_lang=None, ngram=False):
    import tantivy
    if ngram:
        return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.ngram(2, 2, False))
                .filter(tantivy.Filter.lowercase()).build())
    b = (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
         .filter(tantivy.Filter.remove_long(40)).filter(tantivy.Filter.lowercase()))
    if stem_lang:
        b = b.filter(tantivy.Filter.stemmer(stem_lang))
    return b.build()


def run_tantivy_native(ids, texts, queries, k, analyzer):
    q_terms = [bm25ref.dedupe(analyzer.analyze(t)) for _, t in queries]
    with tempfile.TemporaryDirectory() as tmp:
        return bm25ref.run_tantivy(ids, texts, q_terms, k, tmp, analyzer=("lang_ref", analyzer))


class PyStemTokenizer(bm25ref.Tokenizer):
    """bench/peers/bm25.py's tokenizer with the stemmer of another language."""

    def __init__(self, algorithm):
        super().__init__(stem=False)
        if algorithm:
            import Stemmer
            self.stemmer = Stemmer.Stemmer(algorithm)


def run_bm25s(ids, texts, queries, k, algorithm):
    tok = PyStemTokenizer(algorithm)
    doc_tokens = [tok(t) for t in texts]
    q_tokens = [tok(t) for _, t in queries]
    return bm25ref.run_bm25s(ids, doc_tokens, q_tokens, k)


# ------------------------------------------------------------------ evaluation

def to_run(queries, results):
    return {qid: {d: s for d, s in res} for (qid, _), res in zip(queries, results) if res}


def ranx_metrics(qrels, run):
    from ranx import Qrels, Run, evaluate
    q = Qrels(qrels)
    r = Run(run) if run else Run({})
    per = evaluate(q, r, list(METRICS), return_mean=False, make_comparable=True)
    qids = list(q.keys())
    return {m: float(per[m].mean()) for m in METRICS}, {m: dict(zip(qids, per[m].tolist())) for m in METRICS}


def randomisation_test(a, b, n, seed=0):
    """Two-sided paired randomisation test of mean(a - b); returns (delta, p)."""
    import numpy as np
    d = np.asarray(a) - np.asarray(b)
    obs = abs(d.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n, len(d)))
    count = int((np.abs((signs * d).mean(axis=1)) >= obs - 1e-12).sum())
    return float(d.mean()), (count + 1) / (n + 1)


def rel_rank(qrels, res, qid):
    rel = {d for d, s in qrels.get(qid, {}).items() if s > 0}
    ranking = sorted(res, key=lambda r: (-r[1], r[0]))
    for i, (d, _) in enumerate(ranking, 1):
        if d in rel:
            return i
    return 0


def write_trec_gz(path, queries, results, tag):
    tmp = path + ".tmp"
    with gzip.GzipFile(tmp, "wb", mtime=0) as f:
        for (qid, _), res in zip(queries, results):
            for rank, (docid, score) in enumerate(res, 1):
                f.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n".encode())
    os.replace(tmp, path)


def main():
    args = parse_args()
    if args.sets:
        codes = [c for c in args.sets.split(",") if c]
    else:
        codes = sorted(d[4:] for d in os.listdir(args.data_root)
                       if d.startswith("man-") and os.path.exists(os.path.join(args.data_root, d, "meta.json")))
    summary = {
        "k1": bm25ref.K1, "b": bm25ref.B, "k": args.k,
        "versions": {p: version(p) for p in ("tantivy", "bm25s", "PyStemmer", "ranx", "numpy")},
        "significance": f"paired randomisation test on per-query nDCG@10, two-sided, "
                        f"{args.permutations} permutations, numpy seed 0",
        "sets": {},
    }
    for code in codes:
        d = os.path.join(args.data_root, f"man-{code}")
        ids, texts, queries, qrels = bm25ref.load_beir(d)
        tan_lang, py_alg = STEMMERS.get(code, (None, None))
        print(f"man-{code}: {len(ids)} documents, {len(queries)} queries", flush=True)
        systems = {}
        if tan_lang:
            systems["tantivy-stem"] = (f"simple + remove_long(40) + lowercase + stemmer('{tan_lang}')",
                                       lambda: run_tantivy_native(ids, texts, queries, args.k,
                                                                  tantivy_analyzer(tan_lang)))
        systems["tantivy-plain"] = ("simple + remove_long(40) + lowercase",
                                    lambda: run_tantivy_native(ids, texts, queries, args.k, tantivy_analyzer()))
        if code in NGRAM_LANGS:
            systems["tantivy-ngram2"] = ("ngram(2, 2) + lowercase",
                                         lambda: run_tantivy_native(ids, texts, queries, args.k,
                                                                    tantivy_analyzer(ngram=True)))
        bname = "bm25s-stem" if py_alg else "bm25s-plain"
        systems[bname] = ("[^\\W_]+ runs of str.lower() text" + (f" + PyStemmer('{py_alg}')" if py_alg else ""),
                          lambda: run_bm25s(ids, texts, queries, args.k, py_alg))
        run_dir = os.path.join(args.out_dir, "runs", f"man-{code}")
        os.makedirs(run_dir, exist_ok=True)
        entry = {"documents": len(ids), "queries": len(queries), "runs": {}, "tests": {}}
        per_query, ranks = {}, {}
        for name, (desc, fn) in systems.items():
            t0 = time.perf_counter()
            res = fn()
            secs = time.perf_counter() - t0
            run = to_run(queries, res)
            means, pq = ranx_metrics(qrels, run)
            check = ir_metrics.evaluate(qrels, run)
            diff = max(abs(means[m] - check[m]) for m in METRICS)
            path = os.path.join(run_dir, f"{name}.trec.gz")
            write_trec_gz(path, queries, [r[:args.run_depth] for r in res], f"man-{code}-{name}")
            ranks[name] = [rel_rank(qrels, r, qid) for (qid, _), r in zip(queries, res)]
            per_query[name] = pq
            entry["runs"][name] = {
                "analyzer": desc, **{m: round(means[m], 4) for m in METRICS},
                "queries_with_no_result": sum(1 for r in res if not r),
                "ir_metrics_max_abs_diff": diff, "seconds": round(secs, 2),
                "run_file": os.path.relpath(path, ROOT),
            }
            print(f"  {name:15} nDCG@10 {means['ndcg@10']:.4f}  R@100 {means['recall@100']:.4f}  "
                  f"MRR@10 {means['mrr@10']:.4f}  ({secs:.1f} s; ir_metrics diff {diff:.1e})", flush=True)
        with open(os.path.join(run_dir, "rel-rank.tsv"), "w", encoding="utf-8") as f:
            names = list(systems)
            f.write("query-id\t" + "\t".join(names) + "\n")
            for i, (qid, _) in enumerate(queries):
                f.write(qid + "\t" + "\t".join(str(ranks[n][i]) for n in names) + "\n")
        pairs = []
        if "tantivy-stem" in systems:
            pairs.append(("tantivy-stem", "tantivy-plain"))
            if bname == "bm25s-stem":
                pairs.append(("bm25s-stem", "tantivy-stem"))
        else:
            pairs.append((bname, "tantivy-plain"))
        if "tantivy-ngram2" in systems:
            pairs.append(("tantivy-ngram2", "tantivy-plain"))
        qids = sorted(qrels)
        for a, b in pairs:
            va = [per_query[a]["ndcg@10"].get(q, 0.0) for q in qids]
            vb = [per_query[b]["ndcg@10"].get(q, 0.0) for q in qids]
            delta, p = randomisation_test(va, vb, args.permutations)
            entry["tests"][f"{a} vs {b}"] = {"delta_ndcg@10": round(delta, 4), "p": round(p, 4)}
            print(f"  {a} vs {b}: nDCG@10 {delta:+.4f}, p {p:.4f}")
        summary["sets"][f"man-{code}"] = entry
    out = os.path.join(args.out_dir, "bm25-peers.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(f"\n{'set':8} " + " ".join(f"{n:>14}" for n in ("tantivy-stem", "tantivy-plain", "tantivy-ngram2",
                                                         "bm25s-stem", "bm25s-plain")) + "   (nDCG@10)")
    for s, e in summary["sets"].items():
        cells = [f"{e['runs'][n]['ndcg@10']:.4f}" if n in e["runs"] else "-"
                 for n in ("tantivy-stem", "tantivy-plain", "tantivy-ngram2", "bm25s-stem", "bm25s-plain")]
        print(f"{s:8} " + " ".join(f"{c:>14}" for c in cells))
    print(f"wrote {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
