#!/usr/bin/env python3
"""Ingest a folder (text, Markdown, HTML, PDF) into an embedded Sextant database and ask it a
question; prints the answer's cited passages.

    python examples/python/ask_folder.py DOCS_DIR "your question" [--data ./sextant-data]
        [--model models/all-MiniLM-L6-v2] [--llm http://localhost:11434]

Re-running is cheap: unchanged documents are skipped. Run from the repository root after
``./scripts/setup-models.sh`` (or pass ``--model`` any Hugging Face model directory).
"""

import argparse
import sys

import sextant


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("docs", help="folder or file to ingest")
    ap.add_argument("question")
    ap.add_argument("--data", default="./sextant-data", help="data directory (default: %(default)s)")
    ap.add_argument("--collection", default="docs")
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2", help="embedding model directory")
    ap.add_argument("--budget", type=int, default=1024, help="context budget in model tokens")
    ap.add_argument("--llm", help="OpenAI-compatible endpoint that writes the answer from the context")
    a = ap.parse_args()

    with sextant.open(a.data) as db:
        kb = db.collection(a.collection, model=a.model)
        report = kb.ingest(a.docs, progress=True)
        print(f"{report['documents']} documents written, {report['unchanged']} unchanged, {report['chunks']} chunks")
        out = kb.ask(a.question, budget=a.budget, llm=a.llm)
        if out["answer"]:
            print(f"\n{out['answer']}\n")
        for p in out["context"]["passages"]:
            where = p.get("source") or p["doc_id"]
            text = " ".join(p["text"].split())
            print(f"[{p['citation']}] {where}: {text[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
