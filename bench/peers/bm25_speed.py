#!/usr/bin/env python3
"""Single-thread BM25 query speed of tantivy and bm25s on the judged GCIDE set, top-k, queries
issued one at a time (the same loop as bench/peers/bm25.py, timed). Sextant's side is
`sextant bench bm25 --k 10 --split alphanumeric`.

  .venv-peers/bin/python bench/peers/bm25_speed.py [--data data/text/gcide] [--k 10] [--runs 3]
      [--json bench/out/bm25-speed-peers.json]

tantivy is timed twice: `searcher.search` alone (hits as doc addresses), and with the stored
id of each hit fetched (what a caller needs to use the result).

bm25s is timed on both its retrieval backends (one thread each):
  bm25s                  backend "numpy" (the default): `get_scores` + `np.argpartition`, one
                         query per call;
  bm25s-numba            backend "numba" (needs numba): `retrieve(..., n_threads=1)` one query
                         per call (JIT compiled by a warm-up call before timing);
  bm25s-numba-batch      backend "numba", all queries in one `retrieve(..., n_threads=1)` call
                         (bm25s's fastest single-thread path: no Python per query).
`fastest_bm25s` in the JSON names the fastest of the three.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("RAYON_NUM_THREADS", "1")
import bm25 as peers  # noqa: E402


def timed(fn, runs):
    out = []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0, time.process_time() - c0))
    walls = [w for w, _ in out]
    med = statistics.median(walls)
    return med, out[walls.index(med)][1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/text/gcide")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", default="bench/out/bm25-speed-peers.json")
    a = ap.parse_args()
    import bm25s
    import numpy as np
    import tantivy
    ids, texts, queries, _ = peers.load_beir(a.data)
    tok = peers.Tokenizer(stem=False)
    q_terms = [peers.dedupe(tok(t)) for _, t in queries]
    report = {"k": a.k, "queries": len(queries), "docs": len(ids), "runs": a.runs, "systems": {}}

    # tantivy, its own analyzer (simple + remove_long(40) + lowercase), one field, one thread
    with tempfile.TemporaryDirectory() as tmp:
        name, analyzer = "sx", (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
                                .filter(tantivy.Filter.remove_long(40))
                                .filter(tantivy.Filter.lowercase()).build())
        sb = tantivy.SchemaBuilder()
        sb.add_unsigned_field("n", stored=True)
        sb.add_text_field("body", stored=False, index_option="freq", tokenizer_name=name)
        schema = sb.build()
        index = tantivy.Index(schema, path=tmp)
        index.register_tokenizer(name, analyzer)
        writer = index.writer(heap_size=256_000_000, num_threads=1)
        t0 = time.perf_counter()
        for n, body in enumerate(texts):
            writer.add_document(tantivy.Document(n=n, body=body))
        writer.commit()
        writer.wait_merging_threads()
        index_s = time.perf_counter() - t0
        index.reload()
        searcher = index.searcher()
        qs = [tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", t)) for t in terms])
            for terms in q_terms if terms]

        def search_only():
            for q in qs:
                searcher.search(q, limit=a.k)

        def search_and_ids():
            for q in qs:
                [searcher.doc(addr)["n"][0] for _, addr in searcher.search(q, limit=a.k).hits]

        for label, fn in (("tantivy", search_only), ("tantivy+ids", search_and_ids)):
            wall, cpu = timed(fn, a.runs)
            report["systems"][label] = {"version": tantivy.__version__ if hasattr(tantivy, "__version__") else "0.27.0",
                                        "qps": len(qs) / wall, "wall_s": wall, "cpu_s": cpu,
                                        "index_s": index_s}
            print(f"{label}: {len(qs) / wall:.0f} QPS ({wall:.2f} s wall, {cpu:.2f} s CPU)")

    # bm25s, method lucene, per query get_scores + top-k
    retriever = bm25s.BM25(method="lucene", k1=peers.K1, b=peers.B)
    t0 = time.perf_counter()
    retriever.index([tok(t) for t in texts], show_progress=False)
    index_s = time.perf_counter() - t0
    vocab = retriever.vocab_dict
    tids = [[vocab[t] for t in terms if t in vocab] for terms in q_terms]
    tids = [t for t in tids if t]

    def bm25s_loop():
        for t in tids:
            s = retriever.get_scores(t)
            np.argpartition(-s, a.k - 1)[:a.k]

    wall, cpu = timed(bm25s_loop, a.runs)
    report["systems"]["bm25s"] = {"version": bm25s.__version__, "backend": "numpy",
                                  "qps": len(tids) / wall, "wall_s": wall, "cpu_s": cpu,
                                  "index_s": index_s}
    print(f"bm25s (numpy): {len(tids) / wall:.0f} QPS ({wall:.2f} s wall, {cpu:.2f} s CPU)")
    del retriever

    # bm25s, backend numba (jitted scoring and top-k), one thread
    import numba
    numba.set_num_threads(1)
    retriever = bm25s.BM25(method="lucene", k1=peers.K1, b=peers.B, backend="numba")
    t0 = time.perf_counter()
    retriever.index([tok(t) for t in texts], show_progress=False)
    index_s = time.perf_counter() - t0
    vocab = retriever.vocab_dict
    tids = [[vocab[t] for t in terms if t in vocab] for terms in q_terms]
    tids = [t for t in tids if t]
    retriever.retrieve(tids[:2], k=a.k, n_threads=1, show_progress=False)  # JIT warm-up

    def numba_loop():
        for t in tids:
            retriever.retrieve([t], k=a.k, n_threads=1, show_progress=False)

    def numba_batch():
        retriever.retrieve(tids, k=a.k, n_threads=1, show_progress=False)

    for label, fn in (("bm25s-numba", numba_loop), ("bm25s-numba-batch", numba_batch)):
        wall, cpu = timed(fn, a.runs)
        report["systems"][label] = {"version": bm25s.__version__, "backend": "numba",
                                    "numba": numba.__version__, "qps": len(tids) / wall,
                                    "wall_s": wall, "cpu_s": cpu, "index_s": index_s}
        print(f"{label}: {len(tids) / wall:.0f} QPS ({wall:.2f} s wall, {cpu:.2f} s CPU)")
    report["fastest_bm25s"] = max(
        (n for n in report["systems"] if n.startswith("bm25s")),
        key=lambda n: report["systems"][n]["qps"])
    os.makedirs(os.path.dirname(a.json) or ".", exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
