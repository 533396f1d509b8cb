#!/usr/bin/env python3
"""Language-identification accuracy of well-known detectors from PyPI on data/text/langid/samples.jsonl.

Detectors (versions pinned in bench/peers/setup-lang.sh):
  lingua        lingua-language-detector (lingua-py, Rust core): LanguageDetectorBuilder
                .from_all_languages().with_preloaded_language_models().build(), default
                (high) accuracy mode, no minimum relative distance; detect_language_of(text).
                All its 75 languages are candidates ("restricted to nothing").
  lingua-known  the same restricted to the languages that occur in the samples
                (from_languages(...)): what it scores when the candidate set is known.
  langdetect    langdetect (port of Google's language-detection, 55 languages), with
                DetectorFactory.seed = 0 so that its sampling is deterministic; detect(text).
A detector's answer is mapped to ISO 639-1 as the samples are labelled: lingua's
iso_code_639_1 (Norwegian Bokmål is "nb"); langdetect's "no" -> "nb", "zh-cn"/"zh-tw" -> "zh".
No answer (lingua returns None for text without letters it knows; langdetect raises
LangDetectException) counts as wrong and is reported as "none". A sample language the detector
cannot name at all is listed under "unsupported" (langdetect has no Serbian); its samples count
as wrong.

Reported per detector: accuracy over all samples, per kind (sentence, paragraph), per language
and kind, the macro average over languages, the most frequent wrong answers per language, and
time: model loading once, then the mean wall time per detect call (time.perf_counter around
each call, single thread, after one untimed warm-up call). The machine is a shared 2-core VM:
the times are indicative only.

Writes OUT (default bench/results/lang/langid-peers.json) and, beside it,
langid-predictions.tsv.gz: id, lang, kind and each detector's answer per sample (for paired
comparisons).

Run with the venv of bench/peers/setup-lang.sh:
  bash bench/peers/setup-lang.sh
  .venv-lang/bin/python bench/peers/langid.py [--samples data/text/langid/samples.jsonl]
      [--detectors lingua,lingua-known,langdetect] [--limit N]
"""
import argparse
import collections
import gzip
import json
import os
import sys
import time
from importlib.metadata import version

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", default=os.path.join(ROOT, "data", "text", "langid", "samples.jsonl"))
    ap.add_argument("--detectors", default="lingua,lingua-known,langdetect")
    ap.add_argument("--limit", type=int, default=0, help="first N samples per language and kind (0: all)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "lang", "langid-peers.json"))
    return ap.parse_args()


def load_samples(path, limit):
    rows, seen = [], collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            key = (r["lang"], r["kind"])
            if limit and seen[key] >= limit:
                continue
            seen[key] += 1
            rows.append(r)
    return rows


# ------------------------------------------------------------------ detectors

def make_lingua(known_langs=None):
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
    if known_langs is None:
        builder = LanguageDetectorBuilder.from_all_languages()
        config = "from_all_languages(), high accuracy, preloaded models"
    else:
        langs = []
        for code in sorted(known_langs):
            iso = getattr(IsoCode639_1, code.upper(), None)
            if iso is not None:
                langs.append(Language.from_iso_code_639_1(iso))
        builder = LanguageDetectorBuilder.from_languages(*langs)
        config = (f"from_languages({len(langs)} languages of the samples), high accuracy, "
                  "preloaded models")
    det = builder.with_preloaded_language_models().build()

    def detect(text):
        lang = det.detect_language_of(text)
        return lang.iso_code_639_1.name.lower() if lang is not None else None

    supported = {l.iso_code_639_1.name.lower() for l in Language.all()}
    return detect, config, supported, version("lingua-language-detector")


LANGDETECT_MAP = {"no": "nb", "zh-cn": "zh", "zh-tw": "zh"}


def make_langdetect():
    import langdetect
    from langdetect import DetectorFactory, LangDetectException
    DetectorFactory.seed = 0
    langdetect.detect("warm up the profiles")  # loads the profiles

    def detect(text):
        try:
            code = langdetect.detect(text)
        except LangDetectException:
            return None
        return LANGDETECT_MAP.get(code, code)

    from langdetect.detector_factory import _factory
    supported = {LANGDETECT_MAP.get(c, c) for c in _factory.get_lang_list()}
    return detect, "detect(text), DetectorFactory.seed = 0", supported, version("langdetect")


# ------------------------------------------------------------------ evaluation

def score(rows, preds):
    per = collections.defaultdict(lambda: [0, 0])
    wrong = collections.defaultdict(collections.Counter)
    for r, p in zip(rows, preds):
        for key in (("all",), (r["kind"],), (r["lang"], r["kind"]), (r["lang"],)):
            per[key][1] += 1
            per[key][0] += p == r["lang"]
        if p != r["lang"]:
            wrong[r["lang"]][p or "none"] += 1
    acc = {k: round(c / n, 4) for k, (c, n) in per.items()}
    langs = sorted({r["lang"] for r in rows})
    out = {
        "accuracy": acc[("all",)],
        "accuracy_by_kind": {k: acc[(k,)] for k in ("sentence", "paragraph") if (k,) in acc},
        "macro_accuracy": round(sum(acc[(l,)] for l in langs) / len(langs), 4),
        "macro_accuracy_by_kind": {},
        "per_language": {},
    }
    for kind in ("sentence", "paragraph"):
        ls = [l for l in langs if (l, kind) in acc]
        out["macro_accuracy_by_kind"][kind] = round(sum(acc[(l, kind)] for l in ls) / len(ls), 4)
    for l in langs:
        out["per_language"][l] = {
            "accuracy": acc[(l,)],
            **{kind: acc[(l, kind)] for kind in ("sentence", "paragraph") if (l, kind) in acc},
            **{f"n_{kind}": per[(l, kind)][1] for kind in ("sentence", "paragraph") if (l, kind) in per},
            "wrong_answers": dict(wrong[l].most_common(5)),
        }
    return out


def main():
    args = parse_args()
    rows = load_samples(args.samples, args.limit)
    langs = sorted({r["lang"] for r in rows})
    print(f"{len(rows)} samples, {len(langs)} languages", flush=True)
    makers = {"lingua": lambda: make_lingua(None), "lingua-known": lambda: make_lingua(set(langs)),
              "langdetect": make_langdetect}
    summary = {"samples": os.path.relpath(args.samples, ROOT), "n": len(rows), "languages": langs,
               "counts": {l: {k: sum(1 for r in rows if r["lang"] == l and r["kind"] == k)
                              for k in ("sentence", "paragraph")} for l in langs},
               "python": sys.version.split()[0], "detectors": {}}
    all_preds = {}
    for name in [d for d in args.detectors.split(",") if d]:
        if name not in makers:
            sys.exit(f"unknown detector {name} ({', '.join(makers)})")
        t0 = time.perf_counter()
        detect, config, supported, ver = makers[name]()
        load_s = time.perf_counter() - t0
        detect(rows[0]["text"])  # warm-up, untimed
        preds, total = [], 0.0
        for r in rows:
            t = time.perf_counter()
            preds.append(detect(r["text"]))
            total += time.perf_counter() - t
        res = score(rows, preds)
        res.update({
            "version": ver, "config": config, "load_s": round(load_s, 3),
            "mean_ms_per_text": round(1000 * total / len(rows), 4),
            "unsupported": [l for l in langs if l not in supported],
        })
        summary["detectors"][name] = res
        all_preds[name] = preds
        print(f"{name} {ver}: accuracy {res['accuracy']:.4f} (sentences "
              f"{res['accuracy_by_kind'].get('sentence', 0):.4f}, paragraphs "
              f"{res['accuracy_by_kind'].get('paragraph', 0):.4f}), macro {res['macro_accuracy']:.4f}, "
              f"{res['mean_ms_per_text']:.3f} ms/text, load {load_s:.1f} s"
              + (f", unsupported: {', '.join(res['unsupported'])}" if res["unsupported"] else ""),
              flush=True)
    names = list(all_preds)
    print("\nlang   " + "  ".join(f"{n + ' s/p':>19}" for n in names))
    for l in langs:
        cells = []
        for n in names:
            pl = summary["detectors"][n]["per_language"][l]
            cells.append(f"{pl.get('sentence', float('nan')):9.3f}/{pl.get('paragraph', float('nan')):.3f}")
        print(f"{l:6} " + "  ".join(f"{c:>19}" for c in cells))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
        f.write("\n")
    pred_path = os.path.join(os.path.dirname(args.out), "langid-predictions.tsv.gz")
    with gzip.GzipFile(pred_path, "wb", mtime=0) as gz:
        gz.write(("id\tlang\tkind\t" + "\t".join(names) + "\n").encode())
        for i, r in enumerate(rows):
            gz.write((f"{r['id']}\t{r['lang']}\t{r['kind']}\t"
                      + "\t".join(all_preds[n][i] or "none" for n in names) + "\n").encode())
    print(f"wrote {os.path.relpath(args.out, ROOT)} and {os.path.relpath(pred_path, ROOT)}")


if __name__ == "__main__":
    main()
