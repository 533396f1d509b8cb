#!/usr/bin/env python3
"""Builds a file of real English sentences for the embedding benchmarks.

Source: the Python 3.11 documentation as Debian ships it (package `python3.11-doc`, HTML under
/usr/share/doc/python3.11/html). Paragraph text (<p>, <li>, <dd>; inline code kept) is extracted,
code blocks, signatures and tables skipped, split into sentences, filtered (4 to 120 words,
mostly letters), deduplicated and sampled with a fixed seed, so the file is the same on every
machine with the same package version. Prose from many documents gives varied lengths (from a
few tokens to over 100).

Writes data/text/sentences.txt (one sentence per line; data/ is gitignored) and
data/text/sentences.meta.json (source, package version, counts, length statistics).
Idempotent: an existing file with the requested count is kept unless --force is given.

Usage: scripts/fetch-text-corpus.py [--count 10000] [--seed 20260601] [--force]
"""

from __future__ import annotations

import argparse
import html.parser
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "data" / "text"
OUT = OUT_DIR / "sentences.txt"
META = OUT_DIR / "sentences.meta.json"
DOC_PACKAGE = "python3.11-doc"
DOC_ROOT = Path("/usr/share/doc/python3.11/html")

TEXT_TAGS = {"p", "li", "dd"}
SKIP_TAGS = {"pre", "table", "script", "style", "dt", "head", "nav", "footer"}
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
MIN_WORDS, MAX_WORDS = 4, 120


class ProseExtractor(html.parser.HTMLParser):
    """Collects the text of paragraph-like elements outside code, tables and navigation."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip_tag: str | None = None  # the element being skipped, and its nesting depth
        self.skip_depth = 0
        self.text_depth = 0
        self.current: list[str] = []
        self.blocks: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if self.skip_tag is not None:
            self.skip_depth += tag == self.skip_tag
            return
        classes = dict(attrs).get("class") or ""
        if tag in SKIP_TAGS or "sphinxsidebar" in classes or "related" in classes:
            self.skip_tag, self.skip_depth = tag, 1
        elif tag in TEXT_TAGS:
            if self.text_depth == 0:
                self.current = []
            self.text_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skip_tag = None
        elif tag in TEXT_TAGS and self.text_depth > 0:
            self.text_depth -= 1
            if self.text_depth == 0:
                self.blocks.append(" ".join(self.current))

    def handle_data(self, data: str) -> None:
        if self.text_depth > 0 and self.skip_tag is None:
            self.current.append(data)


def ensure_docs() -> str:
    """Installs python3.11-doc when missing; returns its version."""
    if not DOC_ROOT.is_dir():
        if shutil.which("apt-get") is None:
            sys.exit(f"{DOC_ROOT} is missing and apt-get is not available; install {DOC_PACKAGE}")
        print(f"installing {DOC_PACKAGE} with apt-get", file=sys.stderr)
        subprocess.check_call(
            ["apt-get", "install", "-y", DOC_PACKAGE],
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
    try:
        return subprocess.check_output(
            ["dpkg-query", "-W", "-f=${Version}", DOC_PACKAGE], text=True
        ).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def good(sentence: str) -> bool:
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    letters = sum(c.isalpha() or c.isspace() for c in sentence)
    return letters >= 0.8 * len(sentence) and sentence[0].isupper()


def sentences() -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for path in sorted(DOC_ROOT.rglob("*.html")):
        if any(part.startswith("_") for part in path.relative_to(DOC_ROOT).parts):
            continue
        parser = ProseExtractor()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        for block in parser.blocks:
            block = " ".join(block.replace("¶", " ").split())
            for s in SENTENCE_SPLIT.split(block):
                s = s.strip()
                if good(s) and s not in seen:
                    seen.add(s)
                    out.append(s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20260601)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    if OUT.is_file() and not args.force:
        n = sum(1 for _ in OUT.open(encoding="utf-8"))
        if n == args.count:
            print(f"{OUT} is up to date ({n} sentences)")
            return
    version = ensure_docs()
    pool = sentences()
    if len(pool) < args.count:
        sys.exit(f"only {len(pool)} distinct sentences found, {args.count} requested")
    picked = random.Random(args.seed).sample(pool, args.count)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".partial")
    tmp.write_text("".join(s + "\n" for s in picked), encoding="utf-8")
    tmp.replace(OUT)
    words = sorted(len(s.split()) for s in picked)
    meta = {
        "source": f"Debian {DOC_PACKAGE} {version} ({DOC_ROOT})",
        "distinct_sentences_found": len(pool),
        "count": args.count,
        "seed": args.seed,
        "words": {
            "min": words[0],
            "median": words[len(words) // 2],
            "p95": words[int(0.95 * (len(words) - 1))],
            "max": words[-1],
            "mean": round(sum(words) / len(words), 2),
        },
    }
    META.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {args.count} of {len(pool)} sentences; words {meta['words']}")


if __name__ == "__main__":
    main()
