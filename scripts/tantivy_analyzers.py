#!/usr/bin/env python3
"""Writes the tantivy analyzer agreement fixture: tantivy's own tokens for real text in every
language its stemmer supports (crates/sextant-text/tests/fixtures/tantivy_analyzers.json).

For each stemmer language of tantivy (tantivy-py's Filter.stemmer, i.e. tantivy's
tokenizer::Language: Snowball stemmers via rust-stemmers) that has texts in
data/text/langid/samples.jsonl (built by scripts/fetch-lang-data.sh), the fixture holds 40
texts of that language (TEXTS_PER_LANGUAGE: SENTENCES sentences and the rest paragraphs of at
most MAX_PARAGRAPH characters, drawn with random.Random("tantivy-analyzers-<code>-<kind>")
from the samples, then ordered by id; a language with fewer samples gets all it has) and for
each text the token lists of two analyzers:

  stem       TextAnalyzerBuilder(Tokenizer.simple())
               .filter(Filter.remove_long(40)).filter(Filter.lowercase())
               .filter(Filter.stemmer(L)).build()
  stop_stem  the same with .filter(Filter.stopword(L)) between lowercase and stemmer
             (only for the languages with a builtin stop-word list; null otherwise)

L is tantivy's language name ("german", ...). The header also gives the tantivy crate version
found in tantivy-py's extension module (the crate the bindings are built with). Tokenizer.simple() splits at every character that
is not alphanumeric (Rust char::is_alphanumeric); remove_long(40) drops tokens of 40 or more
bytes (tantivy's RemoveLongFilter keeps a token only while its UTF-8 length is < the limit);
lowercase is Rust's str::to_lowercase. The header records the tantivy-py version, the
pipelines, the stemmer and stop-word language lists, and the stemmer languages skipped for
lack of samples.

The script runs itself in .venv-lang/ (repo root), which it creates with tantivy pinned as in
bench/peers/setup-lang.sh when missing (bash bench/peers/setup-lang.sh tantivy).

Usage: python3 scripts/tantivy_analyzers.py [--samples data/text/langid/samples.jsonl]
                                            [--out crates/sextant-text/tests/fixtures/tantivy_analyzers.json]
"""
import argparse
import json
import os
import random
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
VENV = os.path.join(ROOT, ".venv-lang")

# tantivy's tokenizer::Language, as tantivy-py 0.27 names them, with ISO 639-1 codes
STEMMER_LANGUAGES = {
    "arabic": "ar", "danish": "da", "dutch": "nl", "english": "en", "finnish": "fi",
    "french": "fr", "german": "de", "greek": "el", "hungarian": "hu", "italian": "it",
    "norwegian": "nb", "portuguese": "pt", "romanian": "ro", "russian": "ru", "spanish": "es",
    "swedish": "sv", "tamil": "ta", "turkish": "tr",
}
TEXTS_PER_LANGUAGE = 40
SENTENCES = 28
MAX_PARAGRAPH = 450
MAX_BYTES = 400_000


def ensure_venv():
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    py = os.path.join(VENV, "bin", "python")
    subprocess.run(["bash", os.path.join(ROOT, "bench", "peers", "setup-lang.sh"), "tantivy"],
                   check=True)
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def crate_version(tantivy):
    """The tantivy crate version the extension module was built from: the most frequent
    'tantivy-X.Y.Z/' (a cargo registry source path) in its binary; None when not found."""
    import collections
    import re
    ext = getattr(tantivy, "tantivy", None)
    path = getattr(ext, "__file__", None)
    if not path:
        return None
    found = collections.Counter(re.findall(rb"tantivy-(\d+\.\d+\.\d+)/", open(path, "rb").read()))
    return found.most_common(1)[0][0].decode() if found else None


def analyzer(tantivy, lang, stop):
    b = (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
         .filter(tantivy.Filter.remove_long(40)).filter(tantivy.Filter.lowercase()))
    if stop:
        b = b.filter(tantivy.Filter.stopword(lang))
    return b.filter(tantivy.Filter.stemmer(lang)).build()


def has_stopwords(tantivy, lang):
    try:
        analyzer(tantivy, lang, True)
        return True
    except ValueError:
        return False


def pick(rows, code):
    sents = sorted((r for r in rows if r["kind"] == "sentence"), key=lambda r: r["id"])
    paras = sorted((r for r in rows if r["kind"] == "paragraph" and len(r["text"]) <= MAX_PARAGRAPH),
                   key=lambda r: r["id"])
    n_p = min(len(paras), TEXTS_PER_LANGUAGE - min(SENTENCES, len(sents)))
    n_s = min(len(sents), TEXTS_PER_LANGUAGE - n_p)
    chosen = (random.Random(f"tantivy-analyzers-{code}-sentence").sample(sents, n_s)
              + random.Random(f"tantivy-analyzers-{code}-paragraph").sample(paras, n_p))
    return sorted(chosen, key=lambda r: r["id"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", default=os.path.join(ROOT, "data", "text", "langid", "samples.jsonl"))
    ap.add_argument("--out", default=os.path.join(ROOT, "crates", "sextant-text", "tests", "fixtures",
                                                  "tantivy_analyzers.json"))
    args = ap.parse_args()
    ensure_venv()
    import tantivy
    from importlib.metadata import version

    by_lang = {}
    with open(args.samples, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            by_lang.setdefault(r["lang"], []).append(r)
    # check the list above against the installed tantivy: every name builds, others do not
    for name in STEMMER_LANGUAGES:
        analyzer(tantivy, name, False)
    stop_langs = [n for n in STEMMER_LANGUAGES if has_stopwords(tantivy, n)]
    languages, skipped = {}, {}
    for name, code in STEMMER_LANGUAGES.items():
        rows = by_lang.get(code, [])
        if not rows:
            skipped[name] = f"no '{code}' samples (Debian ships no {name} man pages)"
            continue
        stem = analyzer(tantivy, name, False)
        stop = analyzer(tantivy, name, True) if name in stop_langs else None
        texts = []
        for r in pick(rows, code):
            texts.append({"id": r["id"], "kind": r["kind"], "text": r["text"],
                          "stem": stem.analyze(r["text"]),
                          "stop_stem": stop.analyze(r["text"]) if stop else None})
        languages[name] = {"code": code, "stopwords": stop is not None, "texts": texts}
    fixture = {
        "generator": "scripts/tantivy_analyzers.py",
        "tantivy_py_version": version("tantivy"),
        "tantivy_crate": crate_version(tantivy),
        "source": "texts from data/text/langid/samples.jsonl (Debian manual pages, "
                  "scripts/fetch-lang-data.sh); ids are its ids",
        "licence": "the texts are excerpts of Debian manual pages and keep their packages' "
                   "licences (translations of manpages-l10n: GPL-3+; English originals: the "
                   "licences of manpages/manpages-dev and of the programs' packages; see "
                   "docs/datasets.md), not this repository's",
        "pipelines": {
            "stem": "TextAnalyzerBuilder(Tokenizer.simple()).filter(Filter.remove_long(40))"
                    ".filter(Filter.lowercase()).filter(Filter.stemmer(L)).build()",
            "stop_stem": "TextAnalyzerBuilder(Tokenizer.simple()).filter(Filter.remove_long(40))"
                         ".filter(Filter.lowercase()).filter(Filter.stopword(L))"
                         ".filter(Filter.stemmer(L)).build(); null where tantivy has no "
                         "builtin stop words for L",
            "output": "TextAnalyzer.analyze(text): the token texts in order",
        },
        "stemmer_languages": STEMMER_LANGUAGES,
        "stopword_languages": stop_langs,
        "skipped": skipped,
        "selection": f"{TEXTS_PER_LANGUAGE} texts per language: up to {SENTENCES} sentences, the "
                     f"rest paragraphs of <= {MAX_PARAGRAPH} characters, seeded random "
                     "('tantivy-analyzers-<code>-<kind>'), ordered by id; fewer where the "
                     "samples have fewer",
        "languages": languages,
    }
    # one text per line keeps the file reviewable and small
    parts = []
    for k, v in fixture.items():
        if k != "languages":
            parts.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}")
    lang_parts = []
    for name, L in languages.items():
        head = json.dumps({k: v for k, v in L.items() if k != "texts"}, ensure_ascii=False)[:-1]
        texts = ",\n".join("      " + json.dumps(t, ensure_ascii=False) for t in L["texts"])
        lang_parts.append(f"    {json.dumps(name)}: {head}, \"texts\": [\n{texts}\n    ]}}")
    parts.append('  "languages": {\n' + ",\n".join(lang_parts) + "\n  }")
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    json.loads(text)  # well-formed
    size = len(text.encode("utf-8"))
    if size > MAX_BYTES:
        sys.exit(f"fixture would be {size} bytes > {MAX_BYTES}; lower SENTENCES or MAX_PARAGRAPH")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(args.out, ROOT)}: {size} bytes, "
          f"{sum(len(L['texts']) for L in languages.values())} texts in {len(languages)} languages "
          f"(skipped: {', '.join(skipped) or 'none'})")
    for name, L in languages.items():
        n_s = sum(t["kind"] == "sentence" for t in L["texts"])
        print(f"  {name} ({L['code']}): {n_s} sentences, {len(L['texts']) - n_s} paragraphs, "
              f"stop words {'yes' if L['stopwords'] else 'no'}")


if __name__ == "__main__":
    main()
