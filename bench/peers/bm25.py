#!/usr/bin/env python3
"""BM25 reference runs with bm25s and tantivy on a BEIR data set (correctness, not speed).

Both systems index one field per document, `title + " " + text`, and get the
same tokens, made here in Python so that only the scoring differs:

  plain: tokens = re.findall(r"[^\\W_]+", text.lower())
         i.e. lower-case (str.lower), then maximal runs of Unicode letters and
         digits (\\w without "_"); no stop words, no length limit, no stemming.
  stem:  the plain tokens, each through Snowball English (Porter2) as
         PyStemmer's Stemmer("english").stemWord gives it.

bm25s gets the token lists (BM25(method="lucene", k1=1.2, b=0.75).index);
tantivy gets the tokens joined by single spaces in a text field whose
tokenizer is "whitespace" (so its terms are exactly these tokens), with
index_option "freq". A query is its set of distinct tokens (a token repeated
in the query counts once), each an OR'ed term: bm25s sums the precomputed
per-term scores of the distinct query token ids; tantivy runs a BooleanQuery
of SHOULD TermQuerys. Query tokens absent from the corpus are dropped; a query
left with none returns nothing.

Scoring, with N documents, df(t) documents containing t, tf(t,d) occurrences
of t in d, dl(d) tokens in d, avgdl = total tokens / N, k1 = 1.2, b = 0.75:
  idf(t)   = ln(1 + (N - df + 0.5) / (df + 0.5))        (both: Lucene's idf, never negative)
  bm25s    = sum_t idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
  tantivy  = sum_t idf(t) * (k1 + 1) * tf / (tf + k1 * (1 - b + b * dl' / avgdl))
The (k1 + 1) factor only scales scores. The real difference: tantivy stores dl
as a one-byte "fieldnorm" (exact up to 40 tokens, then a logarithmic bucket,
like Lucene's SmallFloat), dl' being the bucket's value, while bm25s uses the
exact dl; avgdl is exact in both. bm25s scores in float32, tantivy in f32.

Optionally (--tantivy-native) a third run lets tantivy tokenise by itself with
the analyzer closest to the above: Tokenizer.simple() (split on
!char::is_alphanumeric) + remove_long(40) + lowercase (+ stemmer("english")),
querying with the terms that the same analyzer makes of the query text. It
shows what tantivy's own analysis changes, nothing more.

Writes, per variant V and system S:
  OUT/bm25-S.trec (plain) or OUT/bm25-S-V.trec (others): TREC run, top --k
  OUT/bm25-peers.json: metrics per run (bench/ir_metrics.py) and the top-10
  overlap between the systems: mean over queries of |top10(a) & top10(b)| /
  min(10, max(|top10(a)|, |top10(b)|)) (queries where both return nothing
  are skipped), plus the share of queries with the same top-10 set and the
  same top-1.

Run with the venv from bench/peers/setup.sh:
  .venv-peers/bin/python bench/peers/bm25.py --data data/text/gcide
"""
import argparse
import json
import os
import re
import sys
import tempfile
from importlib.metadata import version

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import ir_metrics  # noqa: E402

K1, B = 1.2, 0.75
TOKEN_RE = re.compile(r"[^\W_]+")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "text", "gcide"),
                    help="BEIR directory: corpus.jsonl, queries.jsonl, qrels/test.tsv")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--variants", default="plain,stem")
    ap.add_argument("--systems", default="bm25s,tantivy")
    ap.add_argument("--tantivy-native", action="store_true",
                    help="also run tantivy with its own analyzer (see the docstring)")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--check", type=int, default=200, metavar="N",
                    help="recompute the top-10 scores of the first N queries with the "
                         "documented formulas (0: skip)")
    ap.add_argument("--json", help="summary path (default OUT/bm25-peers.json)")
    return ap.parse_args()


# ------------------------------------------------------------------ data

def load_beir(d):
    ids, texts = [], []
    with open(os.path.join(d, "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            ids.append(doc["_id"])
            texts.append((doc.get("title") or "") + " " + (doc.get("text") or ""))
    queries = []
    with open(os.path.join(d, "queries.jsonl"), encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            queries.append((q["_id"], q["text"]))
    qrels = ir_metrics.read_qrels(os.path.join(d, "qrels", "test.tsv"))
    return ids, texts, queries, qrels


class Tokenizer:
    def __init__(self, stem):
        self.stemmer = None
        self.cache = {}
        if stem:
            import Stemmer
            self.stemmer = Stemmer.Stemmer("english")

    def __call__(self, text):
        toks = TOKEN_RE.findall(text.lower())
        if self.stemmer is None:
            return toks
        out = []
        for t in toks:
            s = self.cache.get(t)
            if s is None:
                s = self.cache[t] = self.stemmer.stemWord(t)
            out.append(s)
        return out


def dedupe(tokens):
    return list(dict.fromkeys(tokens))


# ------------------------------------------------------------------ systems

def run_bm25s(ids, doc_tokens, query_tokens, k):
    import bm25s
    import numpy as np
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
    retriever.index(doc_tokens, show_progress=False)
    vocab = retriever.vocab_dict
    results = []
    for toks in query_tokens:
        tids = [vocab[t] for t in dedupe(toks) if t in vocab]
        if not tids:
            results.append([])
            continue
        scores = retriever.get_scores(tids)
        nz = np.flatnonzero(scores > 0)
        if len(nz) > k:
            nz = nz[np.argpartition(-scores[nz], k - 1)[:k]]
        order = sorted(nz.tolist(), key=lambda i: (-float(scores[i]), ids[i]))
        results.append([(ids[i], float(scores[i])) for i in order[:k]])
    return results


def run_tantivy(ids, body_texts, query_terms, k, tmp, analyzer=None):
    """body_texts: whitespace-joined tokens (analyzer None) or raw text (analyzer
    given: a (name, TextAnalyzer) registered on the index and set on the field).
    query_terms: per query, the distinct terms to OR."""
    import tantivy
    sb = tantivy.SchemaBuilder()
    sb.add_unsigned_field("n", stored=True)
    sb.add_text_field("body", stored=False, index_option="freq",
                      tokenizer_name=analyzer[0] if analyzer else "whitespace")
    schema = sb.build()
    index = tantivy.Index(schema, path=tmp)
    if analyzer:
        index.register_tokenizer(analyzer[0], analyzer[1])
    writer = index.writer(heap_size=256_000_000, num_threads=1)
    for n, body in enumerate(body_texts):
        writer.add_document(tantivy.Document(n=n, body=body))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()
    assert searcher.num_docs == len(ids), (searcher.num_docs, len(ids))
    results = []
    for terms in query_terms:
        if not terms:
            results.append([])
            continue
        q = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", t)) for t in terms])
        hits = searcher.search(q, limit=k).hits
        res = [(ids[searcher.doc(addr)["n"][0]], float(score)) for score, addr in hits]
        res.sort(key=lambda r: (-r[1], r[0]))
        results.append(res)
    return results


def native_analyzer(stem):
    import tantivy
    b = (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
         .filter(tantivy.Filter.remove_long(40)).filter(tantivy.Filter.lowercase()))
    if stem:
        b = b.filter(tantivy.Filter.stemmer("english"))
    return b.build()


# ------------------------------------------------------------------ formula check

def _byte4_to_int(b):
    """Lucene SmallFloat.byte4ToInt, which tantivy's fieldnorm table follows."""
    if b < 24:
        return b
    i = b - 24
    bits, shift = i & 0x07, (i >> 3) - 1
    return (bits if shift == -1 else (bits | 0x08) << shift) + 24


FIELDNORM_TABLE = sorted({_byte4_to_int(b) for b in range(256)})


def quantise_fieldnorm(dl):
    """The largest fieldnorm table value <= dl (tantivy's fieldnorm_to_id, then back)."""
    import bisect
    return FIELDNORM_TABLE[bisect.bisect_right(FIELDNORM_TABLE, dl) - 1]


def check_formulas(results, doc_tokens, q_terms, id_pos, n_queries):
    """Recomputes, in float64 with the formulas of the docstring, the scores each
    system returned for its top 10 on the first n_queries queries; returns the
    largest relative error per system."""
    import collections
    need = {t for q in q_terms[:n_queries] for t in q}
    df = collections.Counter()
    total = 0
    for d in doc_tokens:
        total += len(d)
        df.update(need.intersection(d))
    n, avgdl = len(doc_tokens), total / len(doc_tokens)
    idf = {t: __import__("math").log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in need}
    worst = {}
    for system, res in results.items():
        quant = system.startswith("tantivy")
        err = 0.0
        for terms, hits in zip(q_terms[:n_queries], res[:n_queries]):
            for docid, got in hits[:10]:
                toks = doc_tokens[id_pos[docid]]
                tf = collections.Counter(toks)
                dl = quantise_fieldnorm(len(toks)) if quant else len(toks)
                want = sum(idf[t] * tf[t] / (tf[t] + K1 * (1 - B + B * dl / avgdl))
                           for t in terms if tf[t])
                if quant:
                    want *= 1 + K1
                err = max(err, abs(got - want) / max(abs(want), 1e-9))
        worst[system] = err
    return worst


# ------------------------------------------------------------------ output

def write_trec(path, queries, results, tag):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for (qid, _), res in zip(queries, results):
            for rank, (docid, score) in enumerate(res, 1):
                f.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
    os.replace(tmp, path)


def overlap(res_a, res_b, depth=10):
    fr, same_set, same_top1, n = 0.0, 0, 0, 0
    for a, b in zip(res_a, res_b):
        sa, sb = [d for d, _ in a[:depth]], [d for d, _ in b[:depth]]
        if not sa and not sb:
            continue
        n += 1
        fr += len(set(sa) & set(sb)) / min(depth, max(len(sa), len(sb)))
        same_set += set(sa) == set(sb)
        same_top1 += bool(sa and sb and sa[0] == sb[0])
    return {"mean_top10_overlap": fr / n if n else 0.0, "same_top10_set": same_set / n if n else 0.0,
            "same_top1": same_top1 / n if n else 0.0, "queries": n}


def main():
    args = parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    ids, texts, queries, qrels = load_beir(args.data)
    systems = [s for s in args.systems.split(",") if s]
    summary = {
        "data": os.path.relpath(args.data, ROOT), "docs": len(ids), "queries": len(queries),
        "k1": K1, "b": B, "k": args.k,
        "versions": {p: version(p) for p in ("bm25s", "tantivy", "PyStemmer", "numpy")},
        "runs": {}, "overlap": {},
    }
    for variant in [v for v in args.variants.split(",") if v]:
        if variant not in ("plain", "stem"):
            sys.exit(f"unknown variant {variant} (plain, stem)")
        tok = Tokenizer(stem=variant == "stem")
        doc_tokens = [tok(t) for t in texts]
        q_tokens = [tok(t) for _, t in queries]
        n_tok = sum(map(len, doc_tokens))
        print(f"[{variant}] {len(ids)} docs, {n_tok} tokens (avgdl {n_tok / len(ids):.2f}), "
              f"{len({t for d in doc_tokens for t in d})} distinct terms", flush=True)
        results = {}
        if "bm25s" in systems:
            results["bm25s"] = run_bm25s(ids, doc_tokens, q_tokens, args.k)
        if "tantivy" in systems:
            vocab = {t for d in doc_tokens for t in d}
            q_terms = [[t for t in dedupe(q) if t in vocab] for q in q_tokens]
            with tempfile.TemporaryDirectory() as tmp:
                results["tantivy"] = run_tantivy(
                    ids, [" ".join(d) for d in doc_tokens], q_terms, args.k, tmp)
        if args.check:
            vocab = {t for d in doc_tokens for t in d}
            q_terms = [[t for t in dedupe(q) if t in vocab] for q in q_tokens]
            errs = check_formulas({k: v for k, v in results.items() if k != "tantivy_native"},
                                  doc_tokens, q_terms, {d: i for i, d in enumerate(ids)}, args.check)
            summary.setdefault("formula_check", {})[variant] = {
                "queries": min(args.check, len(queries)), "max_relative_error": errs}
            print(f"  formula check, first {min(args.check, len(queries))} queries, top-10 scores, "
                  "max relative error: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()),
                  flush=True)
        del doc_tokens
        if args.tantivy_native:
            an = native_analyzer(stem=variant == "stem")
            q_terms = [dedupe(an.analyze(t)) for _, t in queries]
            with tempfile.TemporaryDirectory() as tmp:
                results["tantivy_native"] = run_tantivy(
                    ids, texts, q_terms, args.k, tmp, analyzer=("sextant_ref", an))
        names_here = []
        for system, res in results.items():
            name = f"bm25-{system}" + ("" if variant == "plain" else f"-{variant}")
            path = os.path.join(args.out_dir, name + ".trec")
            write_trec(path, queries, res, name)
            m = ir_metrics.evaluate(qrels, ir_metrics.read_run(path))
            m["run_file"] = os.path.relpath(path, ROOT)
            summary["runs"][name] = m
            names_here.append(name)
        names = list(results)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                key = f"{variant}: {names[i]} vs {names[j]}"
                summary["overlap"][key] = overlap(results[names[i]], results[names[j]])
        print(ir_metrics.format_table([(n, summary["runs"][n]) for n in names_here]))
        for key, o in summary["overlap"].items():
            if key.startswith(variant + ":"):
                print(f"  {key}: top-10 overlap {o['mean_top10_overlap']:.4f}, same top-10 set "
                      f"{o['same_top10_set']:.4f}, same top-1 {o['same_top1']:.4f} ({o['queries']} queries)")
    out = args.json or os.path.join(args.out_dir, "bm25-peers.json")
    with open(out, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wrote {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
