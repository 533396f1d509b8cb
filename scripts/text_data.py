#!/usr/bin/env python3
"""Builds Sextant's text-retrieval data sets and their training splits (Python standard library only).

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

Training split (train-split), for fine-tuning: a BEIR directory with qrels/train.tsv instead of
qrels/test.tsv, disjoint from the evaluation sets given with --exclude (their qrels/*.tsv and
queries.jsonl are read; their corpus must have this build's ids, which is checked):
  * queries: the eligible synsets (eligible_synsets, the rules above) less (1) every query of an
    excluded set and (2) every synset with a relevant document that is judged relevant in an
    excluded set (a shared headword); a seeded sample (random.Random(seed).sample over the
    remaining synsets in file order) of --queries of them (0 = all);
  * corpus: the full corpus less every document judged relevant in an excluded set, so those
    can be neither positives nor mined negatives (the excluded sets' other documents stay);
  * meta.json counts eligible, excluded by query id, excluded by shared headword, candidates,
    written (and the written glosses whose text is that of an excluded query: WordNet repeats a
    few glosses under other synsets, with other answers); the disjointness is asserted.

Split by query (split), for any judged BEIR set (used on the man-XX sets of lang_data.py): the
judged queries are joined into groups that must stay on one side (queries sharing a relevant
document; queries whose relevant documents have the same text, title + text case-folded with
white space collapsed; with --near-dup J (default 0.5, 0 = off), queries whose relevant
documents are near duplicates: Jaccard similarity >= J of their sets of word 5-shingles, exact,
see near_duplicate_pairs), the groups are shuffled with random.Random(seed) and drawn into the eval
half until it holds round(n * --eval-fraction) queries; the rest is the train half. OUT_TRAIN gets
qrels/train.tsv, OUT_EVAL qrels/test.tsv, both the full corpus (and pages.tsv when the source
has one): the eval queries' documents are never training positives, the training queries'
documents stay in the eval corpus as unjudged distractors (and the eval documents in the train
corpus, where a negative miner may pick them). meta.json says so; the disjointness is asserted.

Command line:
  text_data.py gcide --out data/text/gcide [--queries 2000] [--seed 42]
                     [--keep-wordnet-senses] [--gcide-dir D] [--wordnet-dir D]
  text_data.py train-split --out data/text/gcide-train --exclude data/text/gcide
                     --exclude data/text/gcide-s7 [--queries 10000] [--seed 11]
                     [--keep-wordnet-senses] [--gcide-dir D] [--wordnet-dir D]
  text_data.py split SRC --out-train SRC-train --out-eval SRC-eval [--seed 11]
                     [--eval-fraction 0.5] [--near-dup 0.5] [--qrels test]
  text_data.py subset SRC --out DIR [--docs 5000] [--queries 0] [--skip 0] [--seed 5]
                     [--qrels test]
  text_data.py summary DIR        statistics of an existing BEIR directory
"""
import argparse
import collections
import gzip
import json
import math
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


def load_corpus(gcide_dir, keep_wordnet_senses):
    """The GCIDE corpus (list of {"_id", "title", "text", "_key"}) and its statistics."""
    return build_corpus(os.path.join(gcide_dir, "gcide.index"),
                        os.path.join(gcide_dir, "gcide.dict.dz"), keep_wordnet_senses)


def eligible_synsets(corpus, wordnet_dir):
    """The eligible WordNet synsets, in file order: [(qid, definition, [relevant doc ids])],
    and the counts of what was dropped (the rules are in the module docstring). Shared by the
    evaluation sets (gcide) and the training set (train-split)."""
    by_key = {d["_key"]: d for d in corpus}
    by_loose = {}
    for d in corpus:
        by_loose.setdefault(loose_key(d["title"]), d)

    qstats = collections.Counter()
    eligible = []
    for qid, lemmas, definition in read_wordnet(wordnet_dir):
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
    return eligible, qstats


def seeded_sample(items, n, seed):
    """random.Random(seed).sample of n items (0 = all), sorted by query id."""
    n = min(n, len(items)) if n > 0 else len(items)
    sample = random.Random(seed).sample(items, n)
    sample.sort(key=lambda q: q[0])
    return sample


def write_lines(path, lines):
    """Writes through a temporary file, so a reader never sees half a file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line)
    os.replace(tmp, path)


def write_beir(out, corpus, queries, qrels_split, meta):
    """corpus: [{"_id", "title", "text", ...}]; queries: [(qid, text, [relevant doc ids])];
    qrels_split: "test" or "train" (qrels/<split>.tsv, score 1)."""
    write_lines(os.path.join(out, "corpus.jsonl"),
                (json.dumps({"_id": d["_id"], "title": d["title"], "text": d["text"]},
                            ensure_ascii=False) + "\n" for d in corpus))
    write_lines(os.path.join(out, "queries.jsonl"),
                (json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n" for q, t, _ in queries))
    write_lines(os.path.join(out, "qrels", f"{qrels_split}.tsv"),
                ["query-id\tcorpus-id\tscore\n"] +
                [f"{q}\t{d}\t1\n" for q, _, rel in queries for d in rel])
    write_lines(os.path.join(out, "meta.json"), [json.dumps(meta, indent=2) + "\n"])


def build_gcide(args):
    gdir, wdir, out = args.gcide_dir, args.wordnet_dir, args.out
    corpus, cstats = load_corpus(gdir, args.keep_wordnet_senses)
    eligible, qstats = eligible_synsets(corpus, wdir)
    sample = seeded_sample(eligible, args.queries, args.seed)

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
    write_beir(out, corpus, sample, "test", meta)
    print_stats(meta)


def print_stats(meta):
    if meta.get("split") == "train":
        print_train_stats(meta)
        return
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


# ------------------------------------------------------------------ training splits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shown(path):
    """A path as meta.json records it: relative to the repository when inside it, so a build is
    the same wherever the checkout is."""
    rel = os.path.relpath(os.path.abspath(path), REPO)
    return path if rel.startswith("..") else rel


def read_judged(d):
    """Query ids (queries.jsonl and every qrels/*.tsv) and relevant document ids (score >= 1 in
    any qrels/*.tsv) of a BEIR directory."""
    qids, rel = set(), set()
    with open(os.path.join(d, "queries.jsonl"), encoding="utf-8") as f:
        qids.update(json.loads(l)["_id"] for l in f if l.strip())
    qdir = os.path.join(d, "qrels")
    names = sorted(n for n in os.listdir(qdir) if n.endswith(".tsv"))
    if not names:
        sys.exit(f"{qdir}: no qrels file")
    for name in names:
        with open(os.path.join(qdir, name), encoding="utf-8") as f:
            next(f)  # header
            for line in f:
                q, doc, score = line.rstrip("\n").split("\t")
                qids.add(q)
                if float(score) >= 1:
                    rel.add(doc)
    return qids, rel


def train_split(args):
    """The GCIDE training set: eligible synsets that are not queries of the excluded evaluation
    sets and share no relevant document (headword) with them, over the corpus less every
    document judged relevant there."""
    gdir, wdir, out = args.gcide_dir, args.wordnet_dir, args.out
    if not args.exclude:
        sys.exit("train-split: give the evaluation sets to keep out with --exclude DIR")
    corpus, cstats = load_corpus(gdir, args.keep_wordnet_senses)
    eligible, qstats = eligible_synsets(corpus, wdir)
    titles = {d["_id"]: d["title"] for d in corpus}

    ex_q, ex_rel, ex_sets = set(), set(), {}
    for d in args.exclude:
        q, rel = read_judged(d)
        # the excluded set must use this corpus's ids: same build parameters, same dict-gcide
        mp = os.path.join(d, "meta.json")
        if os.path.exists(mp):
            with open(mp) as f:
                kws = json.load(f).get("params", {}).get("keep_wordnet_senses")
            if kws is not None and kws != args.keep_wordnet_senses:
                sys.exit(f"{d}: built with keep_wordnet_senses={kws}, this split with "
                         f"{args.keep_wordnet_senses}")
        with open(os.path.join(d, "corpus.jsonl"), encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                if doc["_id"] in rel and titles.get(doc["_id"]) != doc["title"]:
                    sys.exit(f"{d}: document {doc['_id']} is {doc['title']!r} there, "
                             f"{titles.get(doc['_id'])!r} here (another dict-gcide version?)")
        ex_sets[shown(d)] = {"queries": len(q), "relevant_documents": len(rel)}
        ex_q |= q
        ex_rel |= rel

    by_qid, by_headword, candidates = 0, 0, []
    for item in eligible:
        qid, _, rel = item
        if qid in ex_q:
            by_qid += 1
        elif any(doc in ex_rel for doc in rel):
            by_headword += 1
        else:
            candidates.append(item)
    eligible_ids = {q for q, _, _ in eligible}
    sample = seeded_sample(candidates, args.queries, args.seed)
    train_corpus = [d for d in corpus if d["_id"] not in ex_rel]

    # the guarantees, checked on what is written
    kept_ids = {d["_id"] for d in train_corpus}
    train_q = {q for q, _, _ in sample}
    train_rel = {doc for _, _, rel in sample for doc in rel}
    assert not train_q & ex_q, "a training query is a query of an excluded set"
    assert not train_rel & ex_rel, "a training positive is judged relevant in an excluded set"
    assert not kept_ids & ex_rel, "a document judged relevant in an excluded set is in the corpus"
    assert train_rel <= kept_ids, "a training positive is missing from the corpus"
    ex_texts = set()
    for d in args.exclude:
        with open(os.path.join(d, "queries.jsonl"), encoding="utf-8") as f:
            ex_texts.update(norm_key(json.loads(l)["text"]) for l in f if l.strip())

    n_rel = sum(len(r) for _, _, r in sample)
    meta = {
        "task": "WordNet 3.0 gloss -> GCIDE headword, training split",
        "split": "train",
        "sources": {"gcide_dir": gdir, "wordnet_dir": wdir},
        "params": {"queries": args.queries, "seed": args.seed,
                   "keep_wordnet_senses": args.keep_wordnet_senses,
                   "exclude": [shown(d) for d in args.exclude]},
        "excluded_sets": ex_sets,
        "disjointness": (
            "No training query is a query of an excluded set, and no training query has a "
            "relevant document (= headword) that is relevant to any query of an excluded set; "
            "every document judged relevant in an excluded set is removed from this corpus, so "
            "it cannot be a positive or a mined negative either. Other excluded-set documents "
            "(their distractors) stay. Checked with assertions when built."),
        "corpus": dict(cstats, docs_full=len(corpus), removed_relevant_in_excluded=len(corpus) - len(train_corpus),
                       docs=len(train_corpus)),
        "queries": dict(qstats, excluded_query_id=by_qid, excluded_shared_headword=by_headword,
                        candidates=len(candidates), written=len(sample),
                        excluded_queries_not_eligible_here=len(ex_q - eligible_ids),
                        same_gloss_text_as_an_excluded_query=sum(
                            1 for _, t, _ in sample if norm_key(t) in ex_texts)),
        "qrels": {"file": "qrels/train.tsv", "pairs": n_rel,
                  "mean_relevant_per_query": n_rel / max(1, len(sample))},
    }
    write_beir(out, train_corpus, sample, "train", meta)
    print_stats(meta)


def print_train_stats(meta):
    c, q, r = meta["corpus"], meta["queries"], meta["qrels"]
    print(f"train corpus: {c['docs']} documents ({c['docs_full']} less "
          f"{c['removed_relevant_in_excluded']} judged relevant in the excluded sets)")
    print(f"train queries: {q['written']} written, sampled from {q['candidates']} candidates: "
          f"{q['eligible']} eligible of {q['synsets']} synsets, less {q['excluded_query_id']} "
          f"queries of the excluded sets and {q['excluded_shared_headword']} sharing a relevant "
          f"headword with them ({q['same_gloss_text_as_an_excluded_query']} written queries have "
          f"the gloss text of an excluded query, with other answers)")
    print(f"qrels/train.tsv: {r['pairs']} pairs, {r['mean_relevant_per_query']:.3f} relevant "
          f"documents per query")


def shingles(text, n=5):
    """The set of word n-grams (words: case-folded \\w+ runs) of a text."""
    w = re.findall(r"\w+", text.casefold())
    return {" ".join(w[i:i + n]) for i in range(max(1, len(w) - n + 1))}


def near_duplicate_pairs(texts, threshold):
    """(a, b, jaccard) for every pair of ids whose texts' word 5-shingle sets have a Jaccard
    similarity >= threshold. Exact: candidates by prefix filtering (shingles ordered rarest
    first; two sets with Jaccard >= t share a shingle among the first |S| - ceil(t |S|) + 1 of
    each), then the similarity of each candidate computed."""
    sets = {i: shingles(t) for i, t in texts.items()}
    df = collections.Counter(x for st in sets.values() for x in st)
    index, cands = collections.defaultdict(list), set()
    for i in sorted(sets):
        order = sorted(sets[i], key=lambda x: (df[x], x))
        for x in order[:len(order) - math.ceil(threshold * len(order)) + 1]:
            cands.update((j, i) for j in index[x])
            index[x].append(i)
    out = []
    for a, b in sorted(cands):
        inter = len(sets[a] & sets[b])
        j = inter / (len(sets[a]) + len(sets[b]) - inter)
        if j >= threshold:
            out.append((a, b, j))
    return out


def split_by_query(args):
    """Splits a judged BEIR set by query into OUT_TRAIN (qrels/train.tsv) and OUT_EVAL
    (qrels/test.tsv), both over the full corpus. Queries are first joined into groups that must
    stay on one side: queries sharing a relevant document, and queries whose relevant documents
    are the same text (title + text, case-folded, white space collapsed). The groups are
    shuffled (random.Random(seed)) and drawn into eval until it holds round(n * eval_fraction)
    queries; the rest is train."""
    src = args.src
    with open(os.path.join(src, "queries.jsonl"), encoding="utf-8") as f:
        qlines = [l.rstrip("\n") for l in f if l.strip()]
    qorder = [json.loads(l)["_id"] for l in qlines]
    with open(os.path.join(src, "qrels", f"{args.qrels}.tsv"), encoding="utf-8") as f:
        qrels = [l.rstrip("\n") for l in f if l.strip()]
    header, qrels = qrels[0], qrels[1:]
    rel = collections.defaultdict(set)
    for l in qrels:
        q, d, score = l.split("\t")
        if float(score) >= 1:
            rel[q].add(d)
    qset = set(qorder)
    judged = [q for q in qorder if rel.get(q)]
    unknown = set(rel) - qset
    if unknown:
        sys.exit(f"{src}: {len(unknown)} judged query ids are not in queries.jsonl")

    with open(os.path.join(src, "corpus.jsonl"), "rb") as f:
        corpus_bytes = f.read()
    text_key = {}
    for line in corpus_bytes.decode("utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            text_key[d["_id"]] = " ".join((d.get("title", "") + " " + d["text"]).casefold().split())
    missing = {d for ds in rel.values() for d in ds} - set(text_key)
    if missing:
        sys.exit(f"{src}: {len(missing)} judged documents are not in corpus.jsonl")

    pos = {q: i for i, q in enumerate(qorder)}
    parent = {q: q for q in judged}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb, key=pos.get)] = min(ra, rb, key=pos.get)

    owner = {}  # relevant doc id / doc text -> first query
    shared_doc = same_text = 0
    for q in judged:
        for d in sorted(rel[q]):
            for key, kind in ((("id", d), "doc"), (("text", text_key[d]), "text")):
                if key in owner and find(owner[key]) != find(q):
                    union(owner[key], q)
                    if kind == "doc":
                        shared_doc += 1
                    else:
                        same_text += 1
                owner.setdefault(key, q)
    near_dup, near_examples = 0, []
    if args.near_dup > 0:
        first = {}  # relevant doc -> its first query
        for q in judged:
            for d in rel[q]:
                first.setdefault(d, q)
        for a, b, j in near_duplicate_pairs({d: text_key[d] for d in first}, args.near_dup):
            if find(first[a]) != find(first[b]):
                union(first[a], first[b])
                near_dup += 1
                near_examples.append((round(j, 3), a, b))
    groups = collections.OrderedDict()
    for q in judged:
        groups.setdefault(find(q), []).append(q)
    groups = list(groups.values())
    random.Random(args.seed).shuffle(groups)
    target = round(len(judged) * args.eval_fraction)
    eval_q, train_q = set(), set()
    for g in groups:
        (eval_q if len(eval_q) < target else train_q).update(g)

    # the guarantees, checked
    eval_rel = {d for q in eval_q for d in rel[q]}
    train_rel = {d for q in train_q for d in rel[q]}
    assert not eval_q & train_q
    assert not eval_rel & train_rel, "a document is relevant on both sides"
    assert not {text_key[d] for d in eval_rel} & {text_key[d] for d in train_rel}, \
        "the same document text is relevant on both sides"
    if args.near_dup > 0:
        cross = [(a, b) for a, b, _ in near_duplicate_pairs(
            {d: text_key[d] for d in eval_rel | train_rel}, args.near_dup)
            if (a in eval_rel) != (b in eval_rel)]
        assert not cross, f"near-duplicate relevant documents on both sides: {cross[:5]}"

    multi = [g for g in groups if len(g) > 1]
    src_meta = {}
    if os.path.exists(os.path.join(src, "meta.json")):
        with open(os.path.join(src, "meta.json"), encoding="utf-8") as f:
            src_meta = json.load(f)
    n_docs = len(text_key)
    common = {
        "source": shown(src),
        "source_task": src_meta.get("task", ""),
        "params": {"seed": args.seed, "eval_fraction": args.eval_fraction,
                   "near_dup": args.near_dup, "source_qrels": f"qrels/{args.qrels}.tsv"},
        "split_rule": (
            "split by query: queries that share a relevant document, whose relevant documents "
            "have the same text (title + text, case-folded, white space collapsed), or whose "
            "relevant documents are near duplicates (Jaccard similarity of their sets of word "
            "5-shingles, words = case-folded \\w+ runs, >= near_dup; 0 = not checked) form one "
            "group and go to the same side; groups shuffled with random.Random(seed) and drawn "
            "into eval until it holds round(judged queries * eval_fraction), the rest is train"),
        "disjointness": (
            "The two sides share no query and no relevant document (nor two relevant documents "
            "of the same text or near duplicates): the eval queries' documents are never training positives. Both "
            "sides keep the full corpus of the source set: in the eval set the training "
            "queries' documents are unjudged distractors; in the train set the eval queries' "
            "documents are present unjudged, so a negative miner can draw them as negatives of "
            "training queries (their text is seen in training, never as a positive). Checked "
            "with assertions when built."),
        "groups": {"groups": len(groups), "multi_query_groups": len(multi),
                   "queries_in_multi_query_groups": sum(map(len, multi)),
                   "joined_by_shared_document": shared_doc, "joined_by_same_text": same_text,
                   "joined_by_near_duplicate": near_dup,
                   "near_duplicate_joins": sorted(near_examples, reverse=True),
                   "examples": [sorted(g, key=pos.get) for g in multi[:10]]},
        "unjudged_queries_dropped": len(qorder) - len(judged),
    }
    for side, out, qs, split in (("train", args.out_train, train_q, "train"),
                                 ("eval", args.out_eval, eval_q, "test")):
        lines = [l for l, q in zip(qlines, qorder) if q in qs]
        kept = [l for l in qrels if l.split("\t")[0] in qs]
        tmp = os.path.join(out, "corpus.jsonl.tmp")
        os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(corpus_bytes)
        os.replace(tmp, os.path.join(out, "corpus.jsonl"))
        write_lines(os.path.join(out, "queries.jsonl"), (l + "\n" for l in lines))
        write_lines(os.path.join(out, "qrels", f"{split}.tsv"), [header + "\n"] + [l + "\n" for l in kept])
        for extra in ("pages.tsv",):  # id mapping of the man-XX sets, kept for paired comparisons
            if os.path.exists(os.path.join(src, extra)):
                with open(os.path.join(src, extra), encoding="utf-8") as f:
                    write_lines(os.path.join(out, extra), f.readlines())
        meta = dict(common, split=side,
                    other_half=shown(args.out_eval if side == "train" else args.out_train),
                    counts={"queries": len(lines), "corpus_docs": n_docs,
                            "qrels_file": f"qrels/{split}.tsv", "qrels_pairs": len(kept),
                            "relevant_documents": len({l.split("\t")[1] for l in kept})})
        write_lines(os.path.join(out, "meta.json"), [json.dumps(meta, indent=2, ensure_ascii=False) + "\n"])
        print_split_stats(out, meta)


def print_split_stats(out, meta):
    c, g = meta["counts"], meta["groups"]
    print(f"{out} ({meta['split']}): {c['queries']} queries, {c['corpus_docs']} documents, "
          f"{c['qrels_file']}: {c['qrels_pairs']} pairs ({c['relevant_documents']} relevant "
          f"documents); {g['queries_in_multi_query_groups']} queries of the source in "
          f"{g['multi_query_groups']} groups kept on one side "
          f"(joins: {g['joined_by_shared_document']} shared document, {g['joined_by_same_text']} "
          f"same document text, {g.get('joined_by_near_duplicate', 0)} near-duplicate documents)")


def summary(d):
    mp = os.path.join(d, "meta.json")
    if os.path.exists(mp):
        with open(mp, encoding="utf-8") as f:
            meta = json.load(f)
        if "counts" in meta:  # split-by-query
            print_split_stats(d, meta)
        else:
            print_stats(meta)
        return
    n_docs = sum(1 for _ in open(os.path.join(d, "corpus.jsonl"), encoding="utf-8"))
    n_q = sum(1 for _ in open(os.path.join(d, "queries.jsonl"), encoding="utf-8"))
    qrels = [n for n in ("test.tsv", "train.tsv") if os.path.exists(os.path.join(d, "qrels", n))]
    n_rel = sum(1 for _ in open(os.path.join(d, "qrels", qrels[0]), encoding="utf-8")) - 1
    print(f"corpus: {n_docs} documents; queries: {n_q}; qrels: {n_rel} pairs, "
          f"{n_rel / max(1, n_q):.3f} per query")


def subset(args):
    """A smaller corpus for end-to-end runs: every judged-relevant document of the first
    `--queries` queries after the first `--skip` (those a model was trained on, say), plus a
    seeded random sample of the other documents up to `--docs`, in corpus order; those
    queries and their qrels (read from `qrels/<--qrels>.tsv`, written as `qrels/test.tsv`)."""
    src = args.src
    queries = open(os.path.join(src, "queries.jsonl"), encoding="utf-8").read().splitlines()
    queries = queries[args.skip:]
    if args.queries:
        queries = queries[: args.queries]
    qids = {json.loads(q)["_id"] for q in queries}
    qrels = open(os.path.join(src, "qrels", args.qrels + ".tsv"), encoding="utf-8").read().splitlines()
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


def union(args):
    """A corpus for an adapter evaluated on one set and trained on another: every document of
    the evaluation set's corpus, then the documents the training set's qrels judge (from the
    training set's corpus) that it lacks. Asserts that no query or relevant document of the
    evaluation set is judged in the training set."""
    def qrels(d, split):
        rows = [l.split("\t") for l in open(os.path.join(d, "qrels", split + ".tsv"),
                                             encoding="utf-8").read().splitlines()[1:] if l]
        return {(q, doc) for q, doc, s in rows if int(s) > 0}
    ev, tr = qrels(args.eval, "test"), qrels(args.train, "train")
    assert not {q for q, _ in ev} & {q for q, _ in tr}, "a query is judged in both sets"
    assert not {d for _, d in ev} & {d for _, d in tr}, "a relevant document is in both sets"
    need = {d for _, d in tr}
    seen, added = set(), 0
    with open(args.out, "w", encoding="utf-8") as out:
        for l in open(os.path.join(args.eval, "corpus.jsonl"), encoding="utf-8"):
            seen.add(json.loads(l)["_id"])
            out.write(l)
        for l in open(os.path.join(args.train, "corpus.jsonl"), encoding="utf-8"):
            d = json.loads(l)["_id"]
            if d in need and d not in seen:
                seen.add(d)
                out.write(l)
                added += 1
    print(f"{args.out}: {len(seen) - added} documents of {args.eval}, {added} judged documents "
          f"of {args.train} ({len(need)} judged there)")


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
    t.add_argument("--skip", type=int, default=0, help="leave out the first N queries")
    t.add_argument("--qrels", default="test", help="the split to read: qrels/NAME.tsv")
    t.add_argument("--seed", type=int, default=5)
    r = sub.add_parser("train-split", help="a GCIDE training set disjoint from evaluation sets")
    r.add_argument("--out", required=True)
    r.add_argument("--exclude", action="append", default=[], metavar="DIR",
                   help="an evaluation set (BEIR directory) to keep out; repeatable")
    r.add_argument("--queries", type=int, default=10000, help="sample size; 0 = all candidates")
    r.add_argument("--seed", type=int, default=11)
    r.add_argument("--keep-wordnet-senses", action="store_true")
    r.add_argument("--gcide-dir", default="/usr/share/dictd")
    r.add_argument("--wordnet-dir", default="/usr/share/wordnet")
    p = sub.add_parser("split", help="split a judged set by query into train and eval halves")
    p.add_argument("src")
    p.add_argument("--out-train", required=True)
    p.add_argument("--out-eval", required=True)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--eval-fraction", type=float, default=0.5)
    p.add_argument("--near-dup", type=float, default=0.5,
                   help="keep queries whose relevant documents have a word-5-shingle Jaccard "
                        "similarity >= this on one side; 0 = only identical texts")
    p.add_argument("--qrels", default="test", help="the source's qrels/<NAME>.tsv")
    u = sub.add_parser("union", help="an evaluation corpus plus a training set's judged documents")
    u.add_argument("--eval", required=True, help="BEIR directory with qrels/test.tsv")
    u.add_argument("--train", required=True, help="BEIR directory with qrels/train.tsv")
    u.add_argument("--out", required=True, help="the corpus.jsonl to write")
    s = sub.add_parser("summary", help="print the statistics of a built directory")
    s.add_argument("dir")
    args = ap.parse_args()
    if args.cmd == "gcide":
        build_gcide(args)
    elif args.cmd == "train-split":
        train_split(args)
    elif args.cmd == "split":
        split_by_query(args)
    elif args.cmd == "subset":
        subset(args)
    elif args.cmd == "union":
        union(args)
    else:
        summary(args.dir)


if __name__ == "__main__":
    main()
