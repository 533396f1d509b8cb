#!/usr/bin/env python3
"""Builds language-identification samples and per-language judged sets from Debian man pages.

Input: data/text/manpages-src/ as scripts/fetch-lang-data.sh leaves it: packages.tsv (package,
version, sha256 of the .deb, language code, man directory) and extracted/<package>/usr/share/man/
(the .deb files unpacked with dpkg-deb; nothing installed). Python standard library + groff.

Rendering. Every regular page file (symlinks skipped; a file that is only a `.so` request is an
alias and skipped) of a package's language directory (usr/share/man/<mandir>/man*/, English:
usr/share/man/man*/) is rendered by groff to plain UTF-8 text:
    groff -Kutf-8 -t -man -Tutf8 -rLL=3000n -rHY=0 -dAD=l -P-c -P-b -P-u -P-o
(input decoded as UTF-8 by preconv; tbl for tables; -man handles mdoc pages too; a 3000-en line,
no hyphenation and left adjustment, so a filled paragraph comes out as one line; grotty in its
legacy mode with bold, underline and overstrike off, so no escape sequences are left), with
LC_ALL=C.UTF-8. The output per package is cached in rendered/<package>_<version>.jsonl.gz
(keyed by the .deb's sha256, the groff version and the command). A page name present in two
packages of one language is taken from the first in packages.tsv.

Parsing. The header line (first line, at column 0, with a wide gap or NAME(SEC)) and footer line
(last line, column 0, with a wide gap) are dropped; other lines at column 0 are section headings;
rule lines (only _ - = ~ * .) are dropped; indented lines are content, a tag and its description
on one line (text, >= 2 spaces, text, the tag <= 30 characters and not ending in . ! ? :) are
split in two; whitespace is collapsed, and for ja/zh removed between two CJK characters (it comes
from line breaks in the source). The section whose heading is the translators' credits (e.g.
ÜBERSETZUNG, TRADUCTION; ja この文書について; zh 跋 and the CMPP credits; CREDIT_HEADINGS) is
boilerplate shared by all pages of a language and is left out everywhere.

Outputs (OUT = data/text):
  OUT/langid/samples.jsonl  {"id", "lang", "kind": "sentence"|"paragraph", "text", "source"}:
                            per language up to --per-kind (300) of each kind, see SAMPLE_RULES
                            (and the functions sentence_ok, paragraph_ok, english_leftover)
  OUT/langid/meta.json      sources (versions, sha256), renderer, rules, per-language counts of
                            candidates and of what each rule dropped, the label-noise caveats
  OUT/man-XX/               BEIR set per language: corpus.jsonl, queries.jsonl, qrels/test.tsv,
                            meta.json, pages.tsv (ids -> package, page, names removed); built
                            for de, fr, es and every other language with >= --min-pages (300)
                            queries, plus man-en from the English originals of the pages that
                            have a query in any of them; rules in cmd_build's beir_rules
  SRC/meta.json             every package with version and sha256, rendering statistics

Deterministic: pages are visited in sorted order and every random choice uses
random.Random(<string seed>). Idempotent: the build is skipped when OUT/langid/.stamp matches
the hash of packages.tsv, this script, the parameters and the groff version (--force rebuilds and
re-renders).

Command line:
  lang_data.py build --src data/text/manpages-src --out data/text [--seed 42] [--per-kind 300]
                     [--min-pages 300] [--jobs 1] [--force]
  lang_data.py summary --out data/text
"""
import argparse
import collections
import concurrent.futures
import gzip
import hashlib
import json
import os
import random
import re
import subprocess

# ------------------------------------------------------------------ rendering

GROFF_CMD = ["groff", "-Kutf-8", "-t", "-man", "-Tutf8", "-rLL=3000n", "-rHY=0", "-dAD=l",
             "-P-c", "-P-b", "-P-u", "-P-o"]
GROFF_ENV = {"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin", "GROFF_NO_SGR": "1"}
RENDER_FORMAT = 1  # bump when the cache layout changes


def groff_version():
    out = subprocess.run(["groff", "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


def read_packages(src):
    rows = []
    with open(os.path.join(src, "packages.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            if line.strip():
                rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    return rows


def page_files(src, pkg):
    """(page, path) of every regular man page file of the package in its language's directory:
    page is "man1/ls.1"; symlinks (aliases) are skipped."""
    base = os.path.join(src, "extracted", pkg["package"], "usr", "share", "man")
    if pkg["mandir"] not in ("-", ""):
        base = os.path.join(base, pkg["mandir"])
    out = []
    if not os.path.isdir(base):
        return out
    for sec in sorted(os.listdir(base)):
        d = os.path.join(base, sec)
        if not (sec.startswith("man") and os.path.isdir(d)) or os.path.islink(d):
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            page = name[:-3] if name.endswith(".gz") else name
            out.append((f"{sec}/{page}", p))
    return out


def render_one(path):
    raw = open(path, "rb").read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        src = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"error": "not UTF-8"}
    body = [l for l in src.splitlines()
            if l.strip() and not l.startswith(('.\\"', "'\\\"", '.\\#')) and l.strip() != "."]
    if body and all(l.startswith(".so ") for l in body):
        return {"alias": body[0][4:].strip()}
    p = subprocess.run(GROFF_CMD, input=raw, capture_output=True, env=GROFF_ENV, timeout=60)
    if p.returncode != 0:
        return {"error": f"groff exit {p.returncode}: {p.stderr.decode('utf-8', 'replace')[:200]}"}
    return {"text": p.stdout.decode("utf-8", "replace"),
            "warnings": len([l for l in p.stderr.splitlines() if l.strip()])}


def render_package(src, pkg, gv, jobs, force):
    """Renders every page of the package (cached in rendered/<package>_<version>.jsonl.gz);
    returns {page: record}."""
    cache_dir = os.path.join(src, "rendered")
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"{pkg['package']}_{pkg['version'].replace(':', '%3a')}.jsonl.gz")
    header = {"package": pkg["package"], "version": pkg["version"], "sha256": pkg["sha256"],
              "mandir": pkg["mandir"], "groff": gv, "cmd": GROFF_CMD, "format": RENDER_FORMAT}
    if not force and os.path.exists(path):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            if json.loads(f.readline()) == header:
                return {r["page"]: r for r in map(json.loads, f)}
    files = page_files(src, pkg)
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as ex:
        results = list(ex.map(render_one, [p for _, p in files]))
    recs = {}
    tmp = path + ".tmp"
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for (page, _), r in zip(files, results):
            r = {"page": page, **r}
            recs[page] = r
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    for old in os.listdir(cache_dir):
        if old.startswith(pkg["package"] + "_") and os.path.join(cache_dir, old) != path:
            os.remove(os.path.join(cache_dir, old))
    print(f"  rendered {pkg['package']} {pkg['version']}: {len(recs)} files", flush=True)
    return recs


# ------------------------------------------------------------------ parsing the rendered text

CJK_LANGS = {"ja", "zh"}
NON_LATIN = {"el": "greek", "ru": "cyrillic", "uk": "cyrillic", "sr": "cyrillic", "mk": "cyrillic",
             "ja": "cjk", "zh": "cjk"}
CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
CJK_GAP = re.compile(f"(?<=[{CJK_CLASS}])\\s+(?=[{CJK_CLASS}])")
RULE_LINE = re.compile(r"^[_\-=~*.\s]+$")
WIDE_GAP = re.compile(r"\S {3,}\S")
TAG_SPLIT = re.compile(r"^(\S.{0,29}?) {2,}(\S.*)$")
WRAP_AT = 2500  # a filled line this long was wrapped by groff at LL=3000n: join the next line

# Headings of the sections that translators add to every page (credits, licence of the
# translation, where to report translation bugs): identical boilerplate across pages, so they
# are left out of samples and documents. Found as the most frequent last heading per language.
CREDIT_HEADINGS = {
    "cs": {"PŘEKLAD"}, "da": {"OVERSÆTTELSE"}, "de": {"ÜBERSETZUNG"}, "el": {"ΜΕΤΑΦΡΑΣΗ"},
    "es": {"TRADUCCIÓN"}, "fi": {"KÄÄNNÖS"}, "fr": {"TRADUCTION"}, "hu": {"FORDÍTÁS"},
    "id": {"TERJEMAHAN"}, "it": {"TRADUZIONE"}, "mk": {"ПРЕВОД"}, "nb": {"OVERSETTELSE"},
    "nl": {"VERTALING"}, "pl": {"TŁUMACZENIE"}, "pt": {"TRADUÇÃO"}, "ro": {"TRADUCERE"},
    "ru": {"ПЕРЕВОД"}, "sr": {"ПРЕВОД"}, "sv": {"ÖVERSÄTTNING"}, "tr": {"ÇEVİREN"},
    "uk": {"ПЕРЕКЛАД"}, "vi": {"DỊCH"}, "ja": {"この文書について"}, "zh": {"跋"}, "en": set(),
}
ZH_CREDIT = re.compile(r"中文版|翻译计划|译者|校对")


def is_credit_heading(lang, heading):
    h = heading.strip()
    if h in CREDIT_HEADINGS.get(lang, ()):
        return True
    return lang == "zh" and bool(ZH_CREDIT.search(h))


def norm_space(text, lang):
    text = re.sub(r"\s+", " ", text).strip()
    if lang in CJK_LANGS:
        text = CJK_GAP.sub("", text)
    return text


def parse_page(text, lang):
    """Rendered page -> list of sections {"heading", "lines": [(indent, text), ...]}, header and
    footer dropped; each line is one output line of groff (at LL=3000n a filled paragraph is
    one line), a tag and its description on one line are split into two lines, a blank line in
    the output is kept as (None, "")."""
    lines = [l.rstrip() for l in text.split("\n")]
    nonempty = [i for i, l in enumerate(lines) if l.strip()]
    if not nonempty:
        return []
    first, last = nonempty[0], nonempty[-1]
    drop = set()
    l0 = lines[first]
    if not l0.startswith(" ") and (WIDE_GAP.search(l0) or re.fullmatch(r"\S+\(\w*\)", l0)):
        drop.add(first)
    if last != first and not lines[last].startswith(" ") and WIDE_GAP.search(lines[last]):
        drop.add(last)
    sections = []
    cur = None
    for i, line in enumerate(lines):
        if i in drop:
            continue
        if not line.strip():
            if cur is not None:
                cur["lines"].append((None, ""))
            continue
        if RULE_LINE.match(line):
            continue
        indent = len(line) - len(line.lstrip(" "))
        content = line.strip()
        if indent == 0:
            cur = {"heading": content, "lines": []}
            sections.append(cur)
            continue
        if cur is None:
            cur = {"heading": "", "lines": []}
            sections.append(cur)
        prev = cur["lines"][-1] if cur["lines"] else None
        if prev and prev[0] == indent and len(prev[1]) >= WRAP_AT:
            cur["lines"][-1] = (indent, prev[1] + " " + content)
            continue
        m = TAG_SPLIT.match(content)
        if m and not re.search(r"[.!?:。！？]$", m.group(1)):
            cur["lines"].append((indent, m.group(1)))
            cur["lines"].append((indent + len(m.group(1)) + 1, m.group(2)))
        else:
            cur["lines"].append((indent, content))
    for s in sections:
        s["lines"] = [(ind, norm_space(t, lang) if ind is not None else "") for ind, t in s["lines"]]
    return sections


NAME_SEPARATORS = (" - ", " — ", " – ", " − ", " -- ", " \u2010 ", " \u2011 ")


def split_name_line(section, lang):
    """NAME section -> (names, description) or None when no separator is found."""
    text = norm_space(" ".join(t for ind, t in section["lines"] if ind is not None), lang)
    best = None
    for sep in NAME_SEPARATORS:
        k = text.find(sep)
        if k > 0 and (best is None or k < best[0]):
            best = (k, sep)
    if best is None:
        return None
    k, sep = best
    names = [n for n in re.split(r"[,\s]+", text[:k]) if n]
    return names, text[k + len(sep):].strip()


def page_units(sections, lang):
    """Prose candidates: every line of every section but the first (NAME) and the translators'
    credit sections, with the index of its section."""
    out = []
    for si, s in enumerate(sections):
        if si == 0 or is_credit_heading(lang, s["heading"]):
            continue
        for ind, t in s["lines"]:
            if ind is not None and t:
                out.append(t)
    return out


# ------------------------------------------------------------------ text filters

CODE_TOKEN = re.compile(
    r"^[-+][\w-]"                      # option flag: -a, --all, +x
    r"|[/\\=_{}\[\]<>$|&*#@~^`%]"      # paths, assignments, identifiers, globs, markup, shell
    r"|\(\)|::|->"                     # function calls, scopes
    r"|[A-Za-z0-9]{2,}\.[A-Za-z0-9]{2,}"  # file names, domains, versions with letters
)
EDGE_PUNCT = "\"'“”‘’«»„‚()[]{}.,;:!?¿¡…–—"


def code_ratio(text):
    chars = sum(1 for c in text if not c.isspace())
    if not chars:
        return 1.0
    code = 0
    for tok in text.split():
        t = tok.strip(EDGE_PUNCT) if not tok.startswith(("-", "+")) else tok.rstrip(".,;:")
        if t and CODE_TOKEN.search(t):
            code += len(tok)
    return code / chars


def letter_ratio(text):
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def script_of(c):
    o = ord(c)
    if 0x0370 <= o <= 0x03FF or 0x1F00 <= o <= 0x1FFF:
        return "greek"
    if 0x0400 <= o <= 0x052F:
        return "cyrillic"
    if 0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF \
            or 0xFF66 <= o <= 0xFF9F:
        return "cjk"
    if o < 0x250 or 0x1E00 <= o <= 0x1EFF:
        return "latin"
    return "other"


def native_share(text, lang):
    """Share of the letters that are in the language's script (1.0 for Latin-script languages)."""
    want = NON_LATIN.get(lang)
    if want is None:
        return 1.0
    letters = [c for c in text if c.isalpha()]
    return sum(script_of(c) == want for c in letters) / len(letters) if letters else 0.0


# English function words; those that are also common words of a language are not counted for
# it (EN_MARKER_CLASH). A Latin-script text is taken for untranslated English when >= 3
# different markers make up >= 8% of its words, or >= 2 markers >= 15% (short sentences).
EN_MARKERS = {"the", "and", "of", "with", "which", "this", "that", "from", "when", "should",
              "your", "you", "have", "has", "been", "these", "those", "there", "their", "would",
              "can", "it", "its", "not", "if", "or", "will", "is", "are", "to", "be", "by", "for",
              "on", "in", "an", "as", "at"}
EN_MARKER_CLASH = {  # markers that are also frequent words of the language
    "de": {"in", "an", "will"}, "nl": {"is", "in", "an", "of", "been"},
    "da": {"for", "at", "by", "to"}, "nb": {"for", "at", "by", "to"},
    "sv": {"for", "at", "by", "in"}, "it": {"in"}, "es": {"as"},
    "pt": {"as", "for"}, "fr": {"on", "as", "or"}, "pl": {"to", "on", "by"},
    "cs": {"to", "on", "by"}, "ro": {"are", "in"}, "hu": {"is", "be"},
    "fi": {"on"}, "tr": {"on", "can"}, "id": set(), "vi": {"in"},
}


def english_leftover(text, lang):
    if lang == "en" or lang in NON_LATIN:
        return False
    words = re.findall(r"[^\W\d_]+", text.lower())
    if not words:
        return False
    markers = EN_MARKERS - EN_MARKER_CLASH.get(lang, set())
    hits = [w for w in words if w in markers]
    share = len(hits) / len(words)
    return (len(set(hits)) >= 3 and share >= 0.08) or (len(hits) >= 2 and share >= 0.15)


ABBREVIATIONS = {
    "bzw", "ggf", "usw", "vgl", "etc", "inkl", "evtl", "sog", "ca", "nr", "abs", "bspw", "resp",
    "cf", "ex", "ej", "pp", "vs", "approx", "ecc", "vol", "no", "mr", "dr", "prof", "sr", "sra",
    "st", "jr", "aprox", "tj", "dvs", "osv", "fx", "bl", "jf", "vrt", "esim", "ks", "mm", "ld",
    "np", "tzn", "itd", "itp", "tzv", "atd", "apod", "např", "zvl", "kb", "stb", "ill", "ún",
    "tel", "sz", "вкл", "см", "др", "напр", "ін", "тощо", "див", "ст", "бл", "гл", "bijv", "bv",
    "enz", "zgn", "vb", "mv", "incl", "max", "min", "fig", "sec", "ver", "pág", "pag", "núm",
    "art", "cap", "op", "cit", "ibid", "al", "eg", "ie", "viz", "pl", "kap", "ggfs", "evt",
    "bzgl", "einschl", "zzgl", "ursprüngl", "allg", "insb", "ebd", "u", "z", "d", "h", "a",
    "t", "e", "o", "v", "i", "s", "p", "c", "n", "k", "m", "b", "f", "g", "l", "r", "w", "y",
}
SENT_BOUNDARY = re.compile(r"[.!?…]+[\"'”’»«)\]]*\s+")
SENT_BOUNDARY_EL = re.compile(r"[.!?…;;]+[\"'”’»«)\]]*\s+")
CJK_BOUNDARY = re.compile(r"[。！？!?]+[」』）)”’\"]*\s*")
OPEN_QUOTES = "\"'“‘«»„‚(¿¡"


def split_sentences(text, lang):
    if lang in CJK_LANGS:
        out, start = [], 0
        for m in CJK_BOUNDARY.finditer(text):
            out.append(text[start:m.end()].strip())
            start = m.end()
        if text[start:].strip():
            out.append(text[start:].strip())
        return [s for s in out if s]
    rx = SENT_BOUNDARY_EL if lang == "el" else SENT_BOUNDARY
    out, start = [], 0
    for m in rx.finditer(text):
        nxt = text[m.end():m.end() + 2].lstrip(OPEN_QUOTES)[:1]
        if not nxt or not nxt.isupper():
            continue
        if m.group(0)[0] == ".":
            before = re.search(r"(\S+)$", text[:m.start()])
            tok = before.group(1).lstrip(OPEN_QUOTES) if before else ""
            if (not tok or tok.isdigit() or "." in tok or len(tok) == 1
                    or tok.lower() in ABBREVIATIONS):
                continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


SENT_END_CHARS = ".!?。！？…;;"
CLOSERS = "\"'”’»«)]」』）"


def starts_ok(text, lang):
    t = text.lstrip(OPEN_QUOTES + "「『（")
    if not t:
        return False
    c = t[0]
    if lang in CJK_LANGS:
        return c.isalpha()
    return c.isalpha() and c.isupper()


def ends_ok(text, lang, chars=SENT_END_CHARS):
    t = text.rstrip(CLOSERS)
    if not t:
        return False
    if lang != "el" and t[-1] in ";;":
        return False
    return t[-1] in chars


def prose_ok(text, lang, max_code):
    return (letter_ratio(text) >= 0.7 and code_ratio(text) <= max_code
            and native_share(text, lang) >= 0.7 and "\ufffd" not in text)


def words(text, lang):
    if lang in CJK_LANGS:
        return len(re.findall(f"[{CJK_CLASS}]", text)) // 2 + len(re.findall(r"[A-Za-z0-9]+", text))
    return len(re.findall(r"\w+", text))


def name_dominated(text, lang):
    """Mostly proper names ("Written by Paul Rubin and David MacKenzie."): of the words after
    the first, >= 50% (German, which capitalises nouns: >= 75%) are capitalised words with a
    lower-case letter after the first (so all-caps placeholders such as FILE do not count)."""
    if lang in CJK_LANGS:
        return False
    rest = re.findall(r"[^\W\d_][^\W\d_'’]*", text)[1:]
    if len(rest) < 2:
        return False
    caps = sum(t[0].isupper() and any(c.islower() for c in t[1:]) for t in rest)
    return caps / len(rest) >= (0.75 if lang == "de" else 0.5)


def sentence_ok(s, lang):
    return (20 <= len(s) <= 200 and starts_ok(s, lang) and ends_ok(s, lang)
            and words(s, lang) >= 4 and prose_ok(s, lang, 0.10) and not name_dominated(s, lang))


def paragraph_ok(p, lang):
    return (200 <= len(p) <= 1500 and starts_ok(p, lang) and ends_ok(p, lang, SENT_END_CHARS + ":")
            and prose_ok(p, lang, 0.15))


def norm_key(text):
    return re.sub(r"\s+", " ", text).strip().casefold()


# ------------------------------------------------------------------ loading

def load_pages(src, jobs, force):
    """{lang: {page: {"package", "sections"}}}: for each language the rendered, parsed pages; a
    page name ("man1/ls.1") shipped by two packages of a language is taken from the first in
    packages.tsv. Also returns per-package statistics."""
    gv = groff_version()
    langs = collections.defaultdict(dict)
    stats = {}
    for pkg in read_packages(src):
        recs = render_package(src, pkg, gv, jobs, force)
        st = collections.Counter()
        for page, r in recs.items():
            if "alias" in r:
                st["alias"] += 1
                continue
            if "error" in r:
                st["error"] += 1
                continue
            st["rendered"] += 1
            st["groff_warnings"] += r.get("warnings", 0)
            if page in langs[pkg["lang"]]:
                st["duplicate"] += 1
                continue
            langs[pkg["lang"]][page] = {"package": pkg["package"],
                                        "sections": parse_page(r["text"], pkg["lang"])}
        stats[pkg["package"]] = dict(st)
    return langs, stats, gv


def english_keys(en_pages):
    """{page: set of normalised lines and sentences of the English page}."""
    out = {}
    for page, p in en_pages.items():
        keys = set()
        for u in page_units(p["sections"], "en"):
            keys.add(norm_key(u))
            keys.update(norm_key(s) for s in split_sentences(u, "en"))
        out[page] = keys
    return out


# ------------------------------------------------------------------ language-id samples

def round_robin(cands, n, rng):
    """Up to n candidates, spread over as many pages as possible: pages in a shuffled order,
    one candidate of each page per round (each page's candidates shuffled)."""
    by_page = {}
    for c in cands:
        by_page.setdefault(c["page"], []).append(c)
    pages = sorted(by_page)
    rng.shuffle(pages)
    for p in pages:
        rng.shuffle(by_page[p])
    out = []
    while len(out) < n and any(by_page.values()):
        for p in pages:
            if by_page[p]:
                out.append(by_page[p].pop())
                if len(out) == n:
                    break
    return out


def build_samples(langs, en_keys, out_dir, seed, per_kind):
    os.makedirs(out_dir, exist_ok=True)
    rows, stats = [], {}
    for lang in sorted(langs):
        pages = langs[lang]
        st = collections.Counter()
        seen = set()
        paras, sents_by_unit = [], []
        for page in sorted(pages):
            p = pages[page]
            eng = en_keys.get(page, set()) if lang != "en" else set()
            for u in page_units(p["sections"], lang):
                k = norm_key(u)
                if k in seen:
                    st["duplicate_lines"] += 1
                    continue
                seen.add(k)
                st["lines"] += 1
                if k in eng:
                    st["dropped_identical_to_english_page"] += 1
                    continue
                if english_leftover(u, lang) and len(u) >= 200:
                    st["dropped_english_words_paragraph"] += 1
                    # its sentences are checked one by one below
                src = f"{p['package']}/{page}"
                if paragraph_ok(u, lang) and not english_leftover(u, lang):
                    paras.append({"page": page, "text": u, "source": src})
                elif 200 <= len(u) <= 1500 and native_share(u, lang) < 0.7:
                    st["dropped_paragraph_foreign_script"] += 1
                sents_by_unit.append((page, src, u))
        rng = random.Random(f"{seed}-{lang}-paragraph")
        chosen_p = round_robin(paras, per_kind, rng)
        used = {norm_key(c["text"]) for c in chosen_p}
        sents, sseen = [], set()
        for page, src, u in sents_by_unit:
            if norm_key(u) in used:
                continue
            eng = en_keys.get(page, set()) if lang != "en" else set()
            for s in split_sentences(u, lang):
                k = norm_key(s)
                if k in sseen:
                    continue
                sseen.add(k)
                if not sentence_ok(s, lang):
                    continue
                if k in eng:
                    st["dropped_sentence_identical_to_english_page"] += 1
                    continue
                if english_leftover(s, lang):
                    st["dropped_sentence_english_words"] += 1
                    continue
                sents.append({"page": page, "text": s, "source": src})
        rng = random.Random(f"{seed}-{lang}-sentence")
        chosen_s = round_robin(sents, per_kind, rng)
        for kind, chosen in (("sentence", chosen_s), ("paragraph", chosen_p)):
            for i, c in enumerate(chosen):
                rows.append({"id": f"{lang}-{kind[0]}{i:04d}", "lang": lang, "kind": kind,
                             "text": c["text"], "source": c["source"]})
        st["paragraph_candidates"] = len(paras)
        st["sentence_candidates"] = len(sents)
        st["sentences"] = len(chosen_s)
        st["paragraphs"] = len(chosen_p)
        st["pages"] = len(pages)
        st["pages_with_samples"] = len({c["page"] for c in chosen_s + chosen_p})
        stats[lang] = dict(sorted(st.items()))
    tmp = os.path.join(out_dir, "samples.jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, os.path.join(out_dir, "samples.jsonl"))
    return stats


# ------------------------------------------------------------------ judged retrieval sets

def name_pattern(names):
    """Regex removing the page's names from its body: each name of >= 2 characters with at
    least one letter or digit, case-insensitively, where it is not part of a longer run of
    ASCII letters, digits and underscores."""
    alts = sorted({n for n in names if len(n) >= 2 and re.search(r"\w", n)}, key=len, reverse=True)
    if not alts:
        return None
    return re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(map(re.escape, alts)) + r")(?![A-Za-z0-9_])",
                      re.IGNORECASE)


def page_record(page, p, lang):
    """-> (record, None) or (None, reason)."""
    secs = p["sections"]
    if not secs:
        return None, "empty"
    nm = split_name_line(secs[0], lang)
    if nm is None:
        return None, "no_name_line"
    names, desc = nm
    base = page.split("/", 1)[1]
    base = base[:base.rfind(".")] if "." in base else base
    names = list(dict.fromkeys(names + [base]))
    lines = []
    for s in secs[1:]:
        if is_credit_heading(lang, s["heading"]):
            continue
        for ind, t in s["lines"]:
            if ind is not None and t:
                lines.append(t)
    rx = name_pattern(names)
    removed = 0
    if rx:
        new = []
        for t in lines:
            t, n = rx.subn("", t)
            removed += n
            t = norm_space(t, lang)
            if t:
                new.append(t)
        lines = new
    body = "\n".join(lines)
    if lang in CJK_LANGS:
        short = len(re.findall(f"[{CJK_CLASS}]", desc)) < 5
    else:
        short = len(re.findall(r"\w+", desc)) < 3
    if short:
        return None, "short_description"
    if len(body) < 200:
        return None, "short_body"
    return {"page": page, "package": p["package"], "names": names, "query": desc, "body": body,
            "removed": removed}, None


def write_beir(out, lang, recs, meta):
    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
    prefix = f"man-{lang}"
    with open(os.path.join(out, "corpus.jsonl.tmp"), "w", encoding="utf-8") as fc, \
            open(os.path.join(out, "queries.jsonl.tmp"), "w", encoding="utf-8") as fq, \
            open(os.path.join(out, "qrels", "test.tsv.tmp"), "w", encoding="utf-8") as fr, \
            open(os.path.join(out, "pages.tsv.tmp"), "w", encoding="utf-8") as fp:
        fr.write("query-id\tcorpus-id\tscore\n")
        fp.write("corpus-id\tquery-id\tpackage\tpage\tnames_removed\n")
        for i, r in enumerate(recs):
            did = f"{prefix}-d{i:04d}"
            qid = f"{prefix}-q{i:04d}" if r["has_query"] else ""
            fc.write(json.dumps({"_id": did, "title": "", "text": r["body"]}, ensure_ascii=False) + "\n")
            if qid:
                fq.write(json.dumps({"_id": qid, "text": r["query"]}, ensure_ascii=False) + "\n")
                fr.write(f"{qid}\t{did}\t1\n")
            fp.write(f"{did}\t{qid}\t{r['package']}\t{r['page']}\t{' '.join(r['names'])}\n")
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "pages.tsv"):
        os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")


def select_pages(pages, lang, only=None):
    """Eligible records of a language (sorted by page), duplicate descriptions marked."""
    recs, dropped = [], collections.Counter()
    for page in sorted(pages):
        if only is not None and page not in only:
            continue
        r, why = page_record(page, pages[page], lang)
        if r is None:
            dropped[why] += 1
        else:
            recs.append(r)
    groups = collections.Counter(norm_key(r["query"]) for r in recs)
    for r in recs:
        r["has_query"] = groups[norm_key(r["query"])] == 1
    dup = sum(1 for r in recs if not r["has_query"])
    return recs, dropped, dup


def set_stats(recs):
    qs = [r for r in recs if r["has_query"]]
    return {
        "documents": len(recs), "queries": len(qs), "judgements": len(qs),
        "mean_chars_query": round(sum(len(r["query"]) for r in qs) / max(1, len(qs)), 1),
        "mean_chars_document": round(sum(len(r["body"]) for r in recs) / max(1, len(recs)), 1),
        "max_chars_document": max((len(r["body"]) for r in recs), default=0),
        "name_occurrences_removed": sum(r["removed"] for r in recs),
        # leaks and ambiguities left in on purpose, measured
        "queries_verbatim_in_document": sum(
            1 for r in qs if r["query"].casefold().rstrip(".") in r["body"].casefold()),
        "documents_with_identical_body": sum(c for c in collections.Counter(
            norm_key(r["body"]) for r in recs).values() if c > 1),
        "sections": dict(sorted(collections.Counter(r["page"].split("/")[0] for r in recs).items())),
    }


# ------------------------------------------------------------------ command line

LANG_NAMES = {
    "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "fi": "Finnish", "fr": "French", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "mk": "Macedonian",
    "nb": "Norwegian Bokmål", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese (Brazil)",
    "ro": "Romanian", "ru": "Russian", "sr": "Serbian (Cyrillic)", "sv": "Swedish",
    "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese (Simplified)",
}
ALWAYS_BUILD = ("de", "fr", "es")

SAMPLE_RULES = {
    "units": "groff output lines of every section but the first (NAME) and the translators' "
             "credit section (CREDIT_HEADINGS); at LL=3000n a filled paragraph is one line; a tag "
             "and its description on one line are split; whitespace collapsed; for ja/zh the "
             "whitespace between two CJK characters is removed (source line breaks)",
    "dedupe": "a unit whose case-folded, whitespace-collapsed text was seen before in the same "
              "language is skipped (page order: sorted page names)",
    "paragraph": "a unit of 200-1500 characters starting with an upper-case letter (ja/zh: any "
                 "letter, after opening quotes) and ending in . ! ? : 。 ！ ？ … (Greek also ;), "
                 "letters >= 70% of non-space characters, code-like tokens <= 15% of "
                 "non-space characters, >= 70% of letters in the language's script (el: Greek; "
                 "ru/uk/sr/mk: Cyrillic; ja/zh: CJK)",
    "sentence": "units (not those sampled as paragraphs) split at . ! ? … followed by white space "
                "and an upper-case letter (not after a single letter, a number, a token with an "
                "inner dot such as z.B., or an abbreviation of ABBREVIATIONS), ja/zh after 。！？; "
                "kept when 20-200 characters, >= 4 words (ja/zh: CJK characters / 2 + Latin "
                "words), starting upper-case and ending in sentence punctuation, code-like tokens "
                "<= 10%, the letter and script rules of paragraphs, and not name-dominated (of "
                "the words after the first, < 50% capitalised words such as 'MacKenzie'; German "
                "< 75%): drops the 'Written by ...' lines of GNU pages",
    "code_like_token": "a white-space token (edge punctuation stripped) that is an option flag "
                       "(-x, --xx, +x) or contains one of / \\ = _ { } [ ] < > $ | & * # @ ~ ^ ` %, "
                       "'()', '::', '->', or a dot between two runs of >= 2 letters/digits "
                       "(file names, domains)",
    "english_leftovers": "non-English Latin-script languages only: (1) a unit or sentence whose "
                         "normalised text occurs in the English original of the same page "
                         "(same section and page name, from the English packages) is dropped; "
                         "(2) a unit or sentence in which English marker words (EN_MARKERS, "
                         "less the ones that are words of the language, EN_MARKER_CLASH) make "
                         ">= 8% of the words with >= 3 different markers, or >= 15% with >= 2 "
                         "markers, is dropped. Non-Latin-script languages: the script "
                         "rule (>= 70% of letters native) drops English text",
    "sampling": "round robin over pages in a seeded random order (random.Random('SEED-LANG-KIND')"
                "), one candidate per page per round, so samples spread over as many pages as "
                "there are; paragraphs are drawn first, sentences then from the other units",
}
LABEL_NOISE = (
    "Labels are the package's language, not checked by a person. Translated pages keep "
    "untranslated English where translators had not finished (po4a, which manpages-l10n "
    "generates the pages with, leaves a message it has no translation for in English) and quote "
    "English program output, identifiers and messages; the rules in 'rules.english_leftovers' drop verbatim English paragraphs of the "
    "same page and English-dominated text, but a Latin-script sample can still hold English "
    "words or an English sentence the rules miss (e.g. when the English original changed since "
    "translation). Text of one language inside another's page (e.g. German examples in a "
    "Danish page) is not detected. Short sentences may be mostly technical vocabulary shared "
    "across languages. Norwegian is Bokmål (nb); Portuguese is Brazilian (pt_BR pages, labelled "
    "pt); Chinese is the zh_CN pages (labelled zh); Serbian pages are in Cyrillic.")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sources_for(packages, langs):
    return {p["package"]: {"version": p["version"], "sha256": p["sha256"], "deb": p["deb"],
                           "lang": p["lang"], "man_dir": p["mandir"]}
            for p in packages if p["lang"] in langs}


def cmd_build(args):
    src, out = args.src, args.out
    packages = read_packages(src)
    langid_dir = os.path.join(out, "langid")
    stamp = hashlib.sha256(json.dumps({
        "packages": open(os.path.join(src, "packages.tsv"), encoding="utf-8").read(),
        "script": sha256_file(os.path.abspath(__file__)), "seed": args.seed,
        "per_kind": args.per_kind, "min_pages": args.min_pages, "groff": groff_version(),
    }, sort_keys=True).encode()).hexdigest()
    stamp_path = os.path.join(langid_dir, ".stamp")
    if not args.force and os.path.exists(stamp_path) and open(stamp_path).read().strip() == stamp \
            and os.path.exists(os.path.join(langid_dir, "samples.jsonl")):
        print(f"langid and man-* sets already built (stamp {stamp[:12]}); --force rebuilds")
        cmd_summary(args)
        return
    skipped = []
    sk = os.path.join(src, "skipped.txt")
    if os.path.exists(sk):
        skipped = [l.strip() for l in open(sk) if l.strip()]
    print("rendering and parsing pages", flush=True)
    langs, pkg_stats, gv = load_pages(src, args.jobs, args.force)
    renderer = {"groff": gv, "cmd": GROFF_CMD, "env": GROFF_ENV,
                "input": "the page's bytes (gzip-decompressed; UTF-8 checked); a page that is only "
                         "a .so request is an alias and skipped; symlinks are skipped"}
    en_keys = english_keys(langs.get("en", {}))
    with open(os.path.join(src, "meta.json"), "w", encoding="utf-8") as f:
        json.dump({"packages": sources_for(packages, set(langs) | {"en"}),
                   "not_available": skipped, "renderer": renderer, "pages": pkg_stats},
                  f, indent=2, ensure_ascii=False)
        f.write("\n")

    print("sampling language-id texts", flush=True)
    sample_stats = build_samples(langs, en_keys, langid_dir, args.seed, args.per_kind)
    meta = {
        "task": "language identification: sentences and paragraphs of Debian's manual pages, "
                "labelled with the language of the package they come from",
        "file": "samples.jsonl: {id, lang (ISO 639-1), kind (sentence|paragraph), text, "
                "source (package/man<section>/<page>)}",
        "seed": args.seed, "per_kind": args.per_kind,
        "languages": {l: LANG_NAMES.get(l, l) for l in sorted(langs)},
        "not_available": {p: "not in this apt source" for p in skipped},
        "sources": sources_for(packages, set(langs)),
        "renderer": renderer,
        "rules": SAMPLE_RULES,
        "label_noise": LABEL_NOISE,
        "counts": sample_stats,
        "package_pages": pkg_stats,
    }
    with open(os.path.join(langid_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")

    print("building judged sets", flush=True)
    built, union = {}, set()
    beir_rules = {
        "query": "the NAME section's description: the NAME line (first section, lines joined, "
                 "whitespace collapsed; ja/zh: no white space between CJK characters) after the "
                 "first of ' - ', ' — ', ' – ', ' − ', ' -- ' (groff renders \\- as '-', mdoc's "
                 "Nd as '—')",
        "document": "the rest of the page: every output line of every section after NAME, "
                    "section headings and the translators' credit section (e.g. ÜBERSETZUNG, "
                    "TRADUCTION; ja: この文書について; zh: 跋 and the CMPP credits) left out, "
                    "joined by newlines; title empty",
        "names_removed": "the names before the separator in the NAME line (split at commas and "
                         "white space) and the page's file name without its section (ls.1 -> ls): "
                         "every occurrence in the document text, case-insensitively, that is not "
                         "part of a longer run of ASCII letters, digits and '_' (so 'ls' goes in "
                         "'ls -l', '/bin/ls', 'ls(1)', 'ls-Befehl' but not in 'lsblk'); names "
                         "shorter than 2 characters or without a letter or digit are kept; white "
                         "space collapsed afterwards, emptied lines dropped",
        "dropped_pages": "description < 3 words (\\w+ runs; ja/zh: < 5 CJK characters), document "
                         "< 200 characters after name removal, no NAME separator",
        "duplicate_descriptions": "when several kept pages share a description (case-folded, "
                                  "whitespace collapsed), none of them gets a query; their "
                                  "documents stay in the corpus, unjudged",
        "relevance": "one relevant document per query (its own page), grade 1",
        "ids": "man-LANG-dNNNN / man-LANG-qNNNN, numbered in page-name order; query qN's "
               "relevant document is dN; pages.tsv maps ids to package and page",
    }
    for lang in sorted(langs):
        if lang == "en":
            continue
        recs, dropped, dup = select_pages(langs[lang], lang)
        nq = sum(r["has_query"] for r in recs)
        if lang not in ALWAYS_BUILD and nq < args.min_pages:
            print(f"  man-{lang}: {nq} queries < {args.min_pages}, not built")
            continue
        union.update(r["page"] for r in recs if r["has_query"])
        built[lang] = (recs, dropped, dup)
    if "en" in langs:
        recs, dropped, dup = select_pages(langs["en"], "en", only=union)
        dropped["no_english_page"] = len(union - set(langs["en"]))
        built["en"] = (recs, dropped, dup)
    summary = {}
    for lang, (recs, dropped, dup) in built.items():
        out_dir = os.path.join(out, f"man-{lang}")
        st = set_stats(recs)
        st["pages"] = len(langs[lang]) if lang != "en" else len(union)
        st["dropped_pages"] = dict(sorted(dropped.items()))
        st["duplicate_description_pages"] = dup
        meta = {
            "task": f"{LANG_NAMES.get(lang, lang)} manual pages: NAME description -> the rest of "
                    "the same page (known-item search)",
            "lang": lang,
            "sources": sources_for(packages, {lang}),
            "renderer": renderer,
            "rules": beir_rules,
            "stats": st,
        }
        if lang == "en":
            meta["task"] += (" — the English control: the English originals of the pages that "
                             "have a query in any of the translated sets " +
                             ", ".join(f"man-{l}" for l in sorted(built) if l != "en"))
            meta["sources"] = sources_for(packages, {"en"})
            meta["stats"]["pages_wanted"] = len(union)
            meta["stats"]["queries_per_language_with_english_query"] = {
                l: len({r["page"] for r in built[l][0] if r["has_query"]}
                       & {r["page"] for r in recs if r["has_query"]})
                for l in sorted(built) if l != "en"}
        write_beir(out_dir, lang, recs, meta)
        summary[lang] = st
        print(f"  man-{lang}: {st['queries']} queries, {st['documents']} documents "
              f"(dropped {st['dropped_pages']}, {dup} with duplicate descriptions)")
    with open(stamp_path, "w") as f:
        f.write(stamp + "\n")
    cmd_summary(args)


def cmd_summary(args):
    path = os.path.join(args.out, "langid", "samples.jsonl")
    c = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            c[(r["lang"], r["kind"])] += 1
    langs = sorted({l for l, _ in c})
    print(f"{path}: {sum(c.values())} samples, {len(langs)} languages")
    print("  " + " ".join(f"{l}:{c[(l, 'sentence')]}/{c[(l, 'paragraph')]}" for l in langs)
          + "  (sentences/paragraphs)")
    for d in sorted(os.listdir(args.out)):
        m = os.path.join(args.out, d, "meta.json")
        if d.startswith("man-") and os.path.exists(m):
            st = json.load(open(m, encoding="utf-8"))["stats"]
            print(f"  {d}: {st['queries']} queries, {st['documents']} documents")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--src", required=True, help="data/text/manpages-src (with packages.tsv)")
    b.add_argument("--out", required=True, help="data/text")
    b.add_argument("--seed", type=int, default=42)
    b.add_argument("--per-kind", type=int, default=300)
    b.add_argument("--min-pages", type=int, default=300,
                   help="build man-LANG for languages beyond de/fr/es with at least this many queries")
    b.add_argument("--jobs", type=int, default=1, help="parallel groff processes")
    b.add_argument("--force", action="store_true")
    s = sub.add_parser("summary")
    s.add_argument("--out", required=True)
    args = ap.parse_args()
    {"build": cmd_build, "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    main()
