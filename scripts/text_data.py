#!/usr/bin/env python3
"""Builds Sextant's text-retrieval data sets (Python standard library only).

gcide: the WordNet-gloss -> GCIDE-headword task, in BEIR format:

  OUT/corpus.jsonl      {"_id", "title", "text"}: one document per GCIDE headword
  OUT/queries.jsonl     {"_id", "text"}: WordNet 3.0 glosses (definition part only)
  OUT/qrels/test.tsv    query-id<TAB>corpus-id<TAB>score, header line, score 1
  OUT/meta.json         how it was built and the statistics printed at the end

Corpus (from Debian's dict-gcide: gcide.index + gcide.dict.dz, dictd format).
  * Each gcide.index line is `headword<TAB>offset<TAB>length`, the numbers in
    dictd's base64 (digits A-Z a-z 0-9 + /, most significant first). Many index
    lines (inflections, run-in phrases like "Cockling sea") point to the same
    block of gcide.dict.dz (a dictzip file, which is plain gzip to a reader), so
    blocks are de-duplicated by (offset, length). The `00-...` lines are the
    database's own info entries and are skipped.
  * A block's primary headword is the text before the first `\\pronunciation\\`
    on its first line ("Bell \\Bell\\, n. [AS. belle ...]" -> "Bell"). The few
    blocks with no such first line (continuation fragments) are skipped.
  * One document per headword: every block whose primary headword is the same
    after normalisation (NFKD, accents dropped, lower-cased, spaces collapsed)
    is merged, in file order, into one document. The title is the headword as
    first seen; documents are numbered g000000... in order of normalised
    headword, so ids are stable for a given dict-gcide version.
  * Senses taken from WordNet 1.5 are dropped by default: GCIDE 0.48 carries
    ~9k paragraphs whose source tag mentions WordNet ("[WordNet 1.5]",
    "[WordNet 1.5 +PJC]", "[1913 Webster + WordNet 1.5]", ...). They are near
    copies of the WordNet glosses we query with, so keeping them would leak the
    answers (--keep-wordnet-senses keeps them). A paragraph is the text up to
    and including a line that is only a bracketed tag; it is dropped when that
    tag contains "WordNet". Headwords left with no text are not in the corpus.
  * Cleaning: pronunciations `\\...\\` removed; source-tag lines (and inline source tags) removed;
    `{...}` (GCIDE's cross-reference/italic braces) unwrapped, with the
    syllable marks * " ` inside them removed; dictd's ASCII letter codes
    ([=a] [i^] ['e] [aum] [add] [ae] [eth] ...) replaced by plain letters
    (diacritics dropped); whitespace collapsed. Titles are left as GCIDE has
    them ('Ecart'e). Etymologies,
    usage labels, quotations and their citations (--Milton.) are kept.

Queries (from Debian's wordnet-base: /usr/share/wordnet/data.{noun,verb,adj,adv}).
  * A data line is `offset lex_filenum ss_type w_cnt(hex) word lex_id ... | gloss`.
    The lemma words have `_` turned into spaces and adjective markers (a) (p)
    (ip) removed. The gloss's definition part is the text before the first
    double quote (the examples), with trailing ";" and spaces removed.
  * Query id = pos letter (n, v, a, r) + the 8-digit offset, e.g. n02084071.
  * The relevant documents are the corpus documents whose normalised headword
    equals a normalised lemma of the synset (relevance 1).
  * A synset is eligible when it has at least one relevant document and its
    definition does not contain any of its relevant headwords as a word (as a
    contiguous run of tokens, tokens = lower-cased [a-z0-9]+ runs; otherwise
    the task is trivial). A seeded sample (random.Random(seed).sample over the
    eligible synsets in file order) of --queries of them is written.

Command line:
  text_data.py gcide --out data/text/gcide [--queries 2000] [--seed 42]
                     [--keep-wordnet-senses] [--gcide-dir D] [--wordnet-dir D]
  text_data.py summary DIR        statistics of an existing BEIR directory
"""
import argparse
import collections
import gzip
import json
import os
import random
import re
import sys
import unicodedata

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
B64_VAL = {c: i for i, c in enumerate(B64)}
TOKEN_RE = re.compile(r"[a-z0-9]+")


def dictd_b64(s):
    """dictd's base64 number: digits A-Z a-z 0-9 + /, most significant first."""
    v = 0
    for c in s:
        v = v * 64 + B64_VAL[c]
    return v


def norm_key(s):
    """Headword/lemma matching key: NFKD, accents dropped, lower, spaces collapsed."""
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c))
    return " ".join(s.lower().split())


def loose_key(s):
    """Second-chance matching key: norm_key without ' ` " (GCIDE writes 'E for E-acute)."""
    return " ".join(re.sub(r"['`\"]", "", norm_key(s)).split())


def simple_tokens(s):
    """Lower-cased runs of ASCII letters/digits (accents folded first)."""
    return TOKEN_RE.findall(norm_key(s))


# ------------------------------------------------------------------ GCIDE

FIRST_LINE_RE = re.compile(r"^\s*([^\\\n]+?)\s*\\")
TAG_LINE_RE = re.compile(r"^\s*\[[^\[\]\n]*\]\s*$")
PRON_RE = re.compile(r"\\[^\\\n]*\\")
BRACE_RE = re.compile(r"\{([^{}]*)\}")
# dictd GCIDE's ASCII codes for special letters: [=a] a-macron, ['e] e-acute,
# [i^] i-breve, [aum] a-umlaut, [add] a-double-dot, [imac], [asl], [oo^], ...
ACCENT_RE = re.compile(r"\[[=\-~^'\"`.,*]?([A-Za-z]{1,2}?)(?:\^|`|~|dd|um|mac|sl)?\]")
NAMED_CODES = {"[ae]": "ae", "[AE]": "AE", "[oe]": "oe", "[OE]": "OE", "[eth]": "th",
               "[thorn]": "th", "[th]": "th", "[ng]": "ng", "[yogh]": "y", "[root]": "",
               "[deg]": "\u00b0", "[sect]": "\u00a7"}
NAMED_RE = re.compile("|".join(re.escape(k) for k in NAMED_CODES))


def read_gcide_blocks(index_path, dict_path):
    """Yields (offset, text) for each distinct block, in file order."""
    with open(index_path, encoding="utf-8") as f:
        spans = set()
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0].startswith("00-"):
                continue
            spans.add((dictd_b64(parts[1]), dictd_b64(parts[2])))
    with gzip.open(dict_path) as f:  # dictzip is gzip with a random-access table
        data = f.read()
    n_bad = 0
    for off, length in sorted(spans):
        raw = data[off:off + length]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # a handful of blocks carry cp1252 bytes
            n_bad += 1
            text = raw.decode("cp1252", errors="replace")
        yield off, text
    if n_bad:
        print(f"gcide: {n_bad} blocks were not UTF-8 (decoded as cp1252)", file=sys.stderr)


def split_paragraphs(text):
    """Splits a block at lines that are only a bracketed tag; returns [(body, tag)]."""
    out, cur = [], []
    for line in text.split("\n"):
        if TAG_LINE_RE.match(line):
            out.append(("\n".join(cur), line.strip()))
            cur = []
        else:
            cur.append(line)
    if any(l.strip() for l in cur):
        out.append(("\n".join(cur), ""))
    return out


SOURCE_TAG_RE = re.compile(r"\[[^\[\]\n]*(?:Webster|WordNet|PJC|Century|Chambers)[^\[\]\n]*\]")


def clean(text):
    text = PRON_RE.sub("", text)
    text = SOURCE_TAG_RE.sub("", text)  # the odd source tag not on a line of its own
    text = BRACE_RE.sub(lambda m: re.sub(r'[*"`]', "", m.group(1)), text)
    text = text.replace("{", "").replace("}", "")
    text = NAMED_RE.sub(lambda m: NAMED_CODES[m.group(0)], text)
    text = ACCENT_RE.sub(lambda m: m.group(1) if _is_code(m.group(0)) else m.group(0), text)
    text = re.sub(r"\s+([,;.])", r"\1", text)  # "Bell , n." -> "Bell, n."
    return " ".join(text.split())


def _is_code(tok):
    """True for a letter code like [=a] or [aum], not for a plain tag like [R.] or [e]."""
    inner = tok[1:-1]
    return inner[:1] in "=-~^'\"`.,*" or inner.endswith(("^", "`", "~", "dd", "um", "mac", "sl"))


def build_corpus(index_path, dict_path, keep_wordnet):
    docs = collections.OrderedDict()  # key -> {"title", "parts"}
    stats = collections.Counter()
    for _, block in read_gcide_blocks(index_path, dict_path):
        stats["blocks"] += 1
        m = FIRST_LINE_RE.match(block.split("\n", 1)[0])
        if not m:
            stats["blocks_without_headword"] += 1
            continue
        head = " ".join(m.group(1).split())
        key = norm_key(head)
        if not key:
            stats["blocks_without_headword"] += 1
            continue
        kept = []
        for body, tag in split_paragraphs(block):
            if "wordnet" in tag.lower() and not keep_wordnet:
                stats["wordnet_paragraphs_dropped"] += 1
                continue
            c = clean(body)
            if c:
                kept.append(c)
        if not kept:
            stats["blocks_empty_after_cleaning"] += 1
            continue
        d = docs.setdefault(key, {"title": head, "parts": []})
        d["parts"].append(" ".join(kept))
    corpus = []
    for i, key in enumerate(sorted(docs)):
        d = docs[key]
        corpus.append({"_id": f"g{i:06d}", "title": d["title"], "text": " ".join(d["parts"]),
                       "_key": key})
    stats["headwords_merged_blocks"] = sum(1 for d in docs.values() if len(d["parts"]) > 1)
    return corpus, stats


# ------------------------------------------------------------------ WordNet

WN_FILES = (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r"))


def read_wordnet(wn_dir):
    """Yields (qid, [lemmas], definition) for every synset."""
    for name, pos in WN_FILES:
        with open(os.path.join(wn_dir, f"data.{name}"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):  # licence header
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                offset, w_cnt = fields[0], int(fields[3], 16)
                lemmas = []
                for j in range(w_cnt):
                    w = fields[4 + 2 * j]
                    w = re.sub(r"\((a|p|ip)\)$", "", w).replace("_", " ")
                    lemmas.append(w)
                definition = gloss.split('"', 1)[0].strip().rstrip(";").strip()
                yield f"{pos}{offset}", lemmas, definition


def contains_run(tokens, run):
    n = len(run)
    if n == 0:
        return False
    return any(tokens[i:i + n] == run for i in range(len(tokens) - n + 1))


def build_gcide(args):
    gdir, wdir, out = args.gcide_dir, args.wordnet_dir, args.out
    corpus, cstats = build_corpus(os.path.join(gdir, "gcide.index"),
                                  os.path.join(gdir, "gcide.dict.dz"), args.keep_wordnet_senses)
    by_key = {d["_key"]: d for d in corpus}
    by_loose = {}
    for d in corpus:
        by_loose.setdefault(loose_key(d["title"]), d)

    qstats = collections.Counter()
    eligible = []
    for qid, lemmas, definition in read_wordnet(wdir):
        qstats["synsets"] += 1
        if not definition:
            qstats["no_definition"] += 1
            continue
        rel = []
        for lem in lemmas:
            d = by_key.get(norm_key(lem)) or by_loose.get(loose_key(lem))
            if d is not None and d["_id"] not in {r["_id"] for r in rel}:
                rel.append(d)
        if not rel:
            qstats["no_lemma_in_corpus"] += 1
            continue
        gtoks = simple_tokens(definition)
        if any(contains_run(gtoks, simple_tokens(d["title"])) for d in rel):
            qstats["gloss_contains_answer"] += 1
            continue
        eligible.append((qid, definition, [d["_id"] for d in rel]))
    qstats["eligible"] = len(eligible)
    n = min(args.queries, len(eligible)) if args.queries > 0 else len(eligible)
    sample = random.Random(args.seed).sample(eligible, n)
    sample.sort(key=lambda q: q[0])

    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)

    def write(path, lines):
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line)
        os.replace(tmp, path)

    write(os.path.join(out, "corpus.jsonl"),
          (json.dumps({"_id": d["_id"], "title": d["title"], "text": d["text"]},
                      ensure_ascii=False) + "\n" for d in corpus))
    write(os.path.join(out, "queries.jsonl"),
          (json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n" for q, t, _ in sample))
    write(os.path.join(out, "qrels", "test.tsv"),
          ["query-id\tcorpus-id\tscore\n"] + [f"{q}\t{d}\t1\n" for q, _, rel in sample for d in rel])

    n_rel = sum(len(r) for _, _, r in sample)
    meta = {
        "task": "WordNet 3.0 gloss -> GCIDE headword",
        "sources": {"gcide_dir": gdir, "wordnet_dir": wdir},
        "params": {"queries": args.queries, "seed": args.seed,
                   "keep_wordnet_senses": args.keep_wordnet_senses},
        "corpus": dict(cstats, docs=len(corpus)),
        "queries": dict(qstats, written=len(sample)),
        "qrels": {"pairs": n_rel, "mean_relevant_per_query": n_rel / max(1, len(sample))},
    }
    write(os.path.join(out, "meta.json"), [json.dumps(meta, indent=2) + "\n"])
    print_stats(meta)


def print_stats(meta):
    c, q, r = meta["corpus"], meta["queries"], meta["qrels"]
    print(f"corpus: {c['docs']} documents (one per headword) from {c.get('blocks', '?')} blocks; "
          f"{c.get('wordnet_paragraphs_dropped', 0)} WordNet-sourced paragraphs dropped, "
          f"{c.get('blocks_empty_after_cleaning', 0)} blocks left empty, "
          f"{c.get('blocks_without_headword', 0)} blocks without a headword line")
    print(f"queries: {q['written']} written, sampled from {q.get('eligible', '?')} eligible of "
          f"{q.get('synsets', '?')} synsets (dropped: {q.get('no_lemma_in_corpus', 0)} no lemma "
          f"in corpus, {q.get('gloss_contains_answer', 0)} gloss contains an answer headword, "
          f"{q.get('no_definition', 0)} no definition)")
    print(f"qrels: {r['pairs']} pairs, {r['mean_relevant_per_query']:.3f} relevant documents per query")


def summary(d):
    mp = os.path.join(d, "meta.json")
    if os.path.exists(mp):
        with open(mp) as f:
            print_stats(json.load(f))
        return
    n_docs = sum(1 for _ in open(os.path.join(d, "corpus.jsonl"), encoding="utf-8"))
    n_q = sum(1 for _ in open(os.path.join(d, "queries.jsonl"), encoding="utf-8"))
    n_rel = sum(1 for _ in open(os.path.join(d, "qrels", "test.tsv"), encoding="utf-8")) - 1
    print(f"corpus: {n_docs} documents; queries: {n_q}; qrels: {n_rel} pairs, "
          f"{n_rel / max(1, n_q):.3f} per query")


def subset(args):
    """A smaller corpus for end-to-end runs: every judged-relevant document of the first
    `--queries` queries, plus a seeded random sample of the other documents up to `--docs`,
    in corpus order; those queries and their qrels."""
    src = args.src
    queries = open(os.path.join(src, "queries.jsonl"), encoding="utf-8").read().splitlines()
    if args.queries:
        queries = queries[: args.queries]
    qids = {json.loads(q)["_id"] for q in queries}
    qrels = open(os.path.join(src, "qrels", "test.tsv"), encoding="utf-8").read().splitlines()
    kept_qrels = [qrels[0]] + [l for l in qrels[1:] if l.split("\t")[0] in qids]
    rel = {l.split("\t")[1] for l in kept_qrels[1:]}
    corpus = open(os.path.join(src, "corpus.jsonl"), encoding="utf-8").read().splitlines()
    ids = [json.loads(l)["_id"] for l in corpus]
    others = [d for d in ids if d not in rel]
    extra = max(0, args.docs - len(rel))
    keep = rel | set(random.Random(args.seed).sample(others, min(extra, len(others))))
    os.makedirs(os.path.join(args.out, "qrels"), exist_ok=True)
    with open(os.path.join(args.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(json.loads(l)) + "\n" for l, d in zip(corpus, ids) if d in keep)
    with open(os.path.join(args.out, "queries.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(q + "\n" for q in queries)
    with open(os.path.join(args.out, "qrels", "test.tsv"), "w", encoding="utf-8") as f:
        f.writelines(l + "\n" for l in kept_qrels)
    print(f"{args.out}: {len(keep)} documents ({len(rel)} relevant), {len(queries)} queries, "
          f"{len(kept_qrels) - 1} qrels")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gcide", help="build the WordNet-gloss -> GCIDE-headword task")
    g.add_argument("--out", required=True)
    g.add_argument("--queries", type=int, default=2000, help="sample size; 0 = all eligible")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--keep-wordnet-senses", action="store_true")
    g.add_argument("--gcide-dir", default="/usr/share/dictd")
    g.add_argument("--wordnet-dir", default="/usr/share/wordnet")
    t = sub.add_parser("subset", help="a smaller corpus: the relevant documents plus random others")
    t.add_argument("src")
    t.add_argument("--out", required=True)
    t.add_argument("--docs", type=int, default=5000)
    t.add_argument("--queries", type=int, default=0, help="first N queries only; 0 = all")
    t.add_argument("--seed", type=int, default=5)
    s = sub.add_parser("summary", help="print the statistics of a built directory")
    s.add_argument("dir")
    args = ap.parse_args()
    if args.cmd == "gcide":
        build_gcide(args)
    elif args.cmd == "subset":
        subset(args)
    else:
        summary(args.dir)


if __name__ == "__main__":
    main()
