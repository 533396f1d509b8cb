#!/usr/bin/env python3
"""Builds the Lee news-similarity retrieval task in BEIR format (Python standard library only).

Source: the Lee et al. (2005) document-similarity data as shipped in gensim's test data
(gensim/test/test_data/ in the PyPI wheel; scripts/fetch-lee-data.sh extracts it):

  lee.cor              50 short news documents (Australian Broadcasting Corporation news mail
                       service), one per line, Latin-1 (gensim reads it as latin1; one byte
                       0xA3 = the pound sign)
  lee_background.cor   300 other ABC news documents, one per line, the background corpus
                       that the paper trained its LSA models on
  similarities0-1.txt  50x50 whitespace-separated matrix of averaged human similarity
                       ratings; row/column i is line i of lee.cor. Only the upper triangle
                       (i < j) holds data, the diagonal is 1 and the lower triangle 0
                       (gensim's test_lee.py reads exactly `triu_indices(50, 1)`: 1,225
                       pairs). The values run from 0.2 to 1.0: the mean of a pair's ratings
                       on the paper's 1-5 scale, divided by 5 (0.2 = every rater said 1);
                       their denominators show about 10 ratings per pair.

Task (OUT/, the BEIR layout of scripts/text_data.py):

  OUT/queries.jsonl   {"_id": "lee-qNN", "text"}: the lead of document NN (its first sentence)
  OUT/corpus.jsonl    {"_id", "title": "", "text"}: "lee-dNN", the rest of document NN (its
                      body); with --background also "lee-bgNNN", the 300 background
                      documents whole, as unjudged distractors
  OUT/qrels/test.tsv  query-id<TAB>corpus-id<TAB>score, header line, graded 1-3
  OUT/meta.json       sources (with sha256), parameters, statistics

  * Why lead -> body: BEIR has no per-query exclusion, so the query cannot be a whole
    document that also sits in the corpus (it would find itself first). Splitting each
    document into its lead sentence (the query) and the rest (the document) removes the
    verbatim self-match while keeping the humans' judgements meaningful: the relevance of
    body j to lead i is the judged similarity of documents i and j. Without the background
    every (query, document) pair is judged; with it, the 300 background documents are
    unjudged and count as not relevant, though some are on the same topics (2001 news on
    Afghanistan, terrorism, asylum seekers, Australian politics, storms).
  * Relevance: the mean rating m = 5 * similarity, rounded half up to a point of the 1-5
    scale; 5 -> grade 3, 4 -> grade 2, 3 -> grade 1, 1 and 2 -> not relevant (not written).
    So similarity >= 0.9 is grade 3, >= 0.7 grade 2, >= 0.5 grade 1. A query's own body
    takes the matrix diagonal (1.0 -> grade 3): the rest of the same article is the most
    relevant document there is (a known bias, see docs/datasets.md). Background documents
    were never judged and count as not relevant.
  * Lead splitting: the first sentence end (. ! ? and closing quotes, followed by a space
    and an upper-case letter, digit or quote), skipping common abbreviations (Mr. Sen. U.S.
    Sept. ...) and initials. A document that is a single sentence (2 of the 50) is split at
    the clause mark (: ; -- or " - ") nearest its middle that leaves at least 8 words on
    each side, else at its middle word; meta.json lists which.

Command line:
  lee_data.py build --src DIR --out data/text/lee [--background]
  lee_data.py summary DIR
"""
import argparse
import collections
import hashlib
import json
import os
import re
import sys

ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "sen", "gen", "lt", "col", "capt", "prof", "jr", "sr", "no",
    "vs", "inc", "corp", "co", "ltd", "jan", "feb", "aug", "sept", "sep", "oct", "nov", "dec",
    "rev", "gov", "sgt", "maj", "mt", "ft", "u.s", "u.n", "u.k", "e.g", "i.e",
}
SENTENCE_END = re.compile(r"([.!?])([\"')\]]*)\s+(?=[\"'(]?[A-Z0-9])")
CLAUSE_MARK = re.compile(r"(:|;|--| - )\s*")
GRADES = ((4.5, 3), (3.5, 2), (2.5, 1))  # rounded mean rating 5, 4, 3
EPS = 1e-6


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_lines(path):
    """One document per line, Latin-1; the files have no trailing newline."""
    with open(path, encoding="latin-1") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [l.strip() for l in lines]


def read_matrix(path, n):
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append([float(x) for x in line.split()])
    if len(rows) != n or any(len(r) != n for r in rows):
        sys.exit(f"{path}: expected a {n}x{n} matrix, got {len(rows)} rows of "
                 f"{sorted({len(r) for r in rows})} values")
    for i in range(n):
        if abs(rows[i][i] - 1.0) > EPS:
            sys.exit(f"{path}: diagonal [{i}][{i}] is {rows[i][i]}, expected 1")
        for j in range(i):
            if rows[i][j] != 0.0:
                sys.exit(f"{path}: lower triangle [{i}][{j}] is {rows[i][j]}, expected 0 "
                         "(the layout changed: check the orientation)")
        for j in range(i + 1, n):
            if not 0.2 - EPS <= rows[i][j] <= 1.0 + EPS:
                sys.exit(f"{path}: [{i}][{j}] = {rows[i][j]} is outside 0.2..1")
    return rows


def grade(similarity):
    rating = 5.0 * similarity
    for threshold, g in GRADES:
        if rating + EPS >= threshold:
            return g
    return 0


def split_lead(text):
    """(lead, body, how): the first sentence and the rest."""
    for m in SENTENCE_END.finditer(text):
        before = text[: m.start() + 1]
        word = re.search(r"(\S+)$", before).group(1).lower().lstrip("\"'(").rstrip(".")
        if word in ABBREVIATIONS or re.fullmatch(r"[a-z]", word) \
                or re.fullmatch(r"([a-z]\.)+[a-z]", word):
            continue
        lead, body = text[: m.end(2)].strip(), text[m.end():].strip()
        if body:
            return lead, body, "sentence"
    words = text.split()
    middle = len(words) / 2
    best = None
    for m in CLAUSE_MARK.finditer(text):
        left = len(text[: m.start()].split())
        right = len(text[m.end():].split())
        if left >= 8 and right >= 8:
            d = abs(left - middle)
            if best is None or d < best[0]:
                best = (d, m)
    if best is not None:
        m = best[1]
        return text[: m.start() + len(m.group(1).rstrip())].strip(), text[m.end():].strip(), \
            "clause"
    k = len(words) // 2
    return " ".join(words[:k]), " ".join(words[k:]), "middle"


def build(args):
    src = args.src
    paths = {name: os.path.join(src, name)
             for name in ("lee.cor", "lee_background.cor", "similarities0-1.txt")}
    for p in paths.values():
        if not os.path.isfile(p):
            sys.exit(f"missing {p}")
    docs = read_lines(paths["lee.cor"])
    background = read_lines(paths["lee_background.cor"])
    if len(docs) != 50 or len(background) != 300:
        sys.exit(f"expected 50 documents and 300 background documents, got {len(docs)} and "
                 f"{len(background)}")
    sim = read_matrix(paths["similarities0-1.txt"], len(docs))
    n = len(docs)

    queries, bodies, how = [], [], {}
    for i, d in enumerate(docs):
        lead, body, kind = split_lead(d)
        queries.append(lead)
        bodies.append(body)
        if kind != "sentence":
            how[f"lee-q{i:02d}"] = kind

    qrels = []
    per_query = collections.Counter()
    grades = collections.Counter()
    for i in range(n):
        for j in range(n):
            s = 1.0 if i == j else sim[min(i, j)][max(i, j)]
            g = grade(s)
            if g:
                qrels.append((f"lee-q{i:02d}", f"lee-d{j:02d}", g))
                grades[("self" if i == j else "other", g)] += 1
                per_query[i] += 1 if i != j else 0

    out = args.out
    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
    with open(os.path.join(out, "queries.jsonl"), "w", encoding="utf-8") as f:
        for i, q in enumerate(queries):
            f.write(json.dumps({"_id": f"lee-q{i:02d}", "text": q}, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for j, b in enumerate(bodies):
            f.write(json.dumps({"_id": f"lee-d{j:02d}", "title": "", "text": b},
                               ensure_ascii=False) + "\n")
        if args.background:
            for k, b in enumerate(background):
                f.write(json.dumps({"_id": f"lee-bg{k:03d}", "title": "", "text": b},
                                   ensure_ascii=False) + "\n")
    with open(os.path.join(out, "qrels", "test.tsv"), "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d, g in qrels:
            f.write(f"{q}\t{d}\t{g}\n")

    upper = [sim[i][j] for i in range(n) for j in range(i + 1, n)]
    others = [per_query[i] for i in range(n)]
    words = lambda texts: round(sum(len(t.split()) for t in texts) / max(1, len(texts)), 1)
    meta = {
        "task": "Lee et al. (2005) news lead sentence -> bodies of humanly similar news "
                "documents",
        "sources": {
            name: {"file": os.path.abspath(p), "sha256": sha256(p)} for name, p in paths.items()
        },
        "package": args.package,
        "params": {"background": args.background,
                   "grades": "round-half-up(5 * similarity): 5 -> 3, 4 -> 2, 3 -> 1",
                   "own_body": "diagonal 1.0 -> grade 3"},
        "similarities": {
            "pairs": len(upper), "min": min(upper), "max": max(upper),
            "mean": round(sum(upper) / len(upper), 4),
            "pairs_grade_3": sum(1 for s in upper if grade(s) == 3),
            "pairs_grade_2": sum(1 for s in upper if grade(s) == 2),
            "pairs_grade_1": sum(1 for s in upper if grade(s) == 1),
        },
        "corpus": {
            "docs": n + (len(background) if args.background else 0),
            "bodies": n, "background": len(background) if args.background else 0,
            "mean_words_body": words(bodies), "mean_words_background": words(background),
        },
        "queries": {"written": n, "mean_words": words(queries), "split_not_at_sentence": how},
        "qrels": {
            "pairs": len(qrels),
            "own_body": sum(v for (k, _), v in grades.items() if k == "self"),
            "other_documents": {f"grade_{g}": grades[("other", g)] for g in (3, 2, 1)},
            "mean_relevant_per_query": round(len(qrels) / n, 3),
            "queries_with_no_other_relevant": others.count(0),
        },
    }
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print_stats(meta)


def print_stats(meta):
    c, q, r = meta["corpus"], meta["queries"], meta["qrels"]
    print(f"corpus: {c['docs']} documents ({c['bodies']} bodies, {c['background']} background); "
          f"queries: {q['written']} (mean {q['mean_words']} words); qrels: {r['pairs']} pairs "
          f"({r['own_body']} own body, others {r['other_documents']}), "
          f"{r['mean_relevant_per_query']} per query, "
          f"{r['queries_with_no_other_relevant']} queries with only their own body")


def summary(d):
    with open(os.path.join(d, "meta.json"), encoding="utf-8") as f:
        print_stats(json.load(f))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--src", required=True, help="folder with lee.cor, lee_background.cor, "
                   "similarities0-1.txt")
    b.add_argument("--out", required=True)
    b.add_argument("--background", action="store_true",
                   help="add the 300 background documents to the corpus as unjudged distractors")
    b.add_argument("--package", default="", help="the package the files came from (recorded)")
    s = sub.add_parser("summary")
    s.add_argument("dir")
    args = ap.parse_args()
    if args.cmd == "build":
        build(args)
    else:
        summary(args.dir)


if __name__ == "__main__":
    main()
