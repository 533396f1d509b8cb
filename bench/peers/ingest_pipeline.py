#!/usr/bin/env python3
"""End-to-end document ingest through the peer pipeline a user would assemble, to compare
documents/s with `sextant ingest` on the same corpus.

What it measures (CPU only; model load timed separately and excluded from documents/s):

  read_chunk    read the BEIR-style JSONL ({"_id", "title", "text"}); each document's
                "title\\n\\ntext" (just the text when the title is empty) is cut into windows of at
                most --chunk-tokens model tokens (the model's own fast tokenizer, special tokens
                not counted, no overlap; Sextant's default chunk budget is 200 model tokens);
                a chunk's text is the document's text from its first token's start to its last
                token's end
  embed         SentenceTransformer(model).encode(chunks, batch_size=--batch,
                normalize_embeddings=True) on PyTorch, torch.set_num_threads(--threads)
  lance_write   lancedb.connect(OUT/lancedb).create_table("chunks") with columns
                id (doc_id#n), doc_id, title, text, vector (fixed_size_list<float32>[dim]);
                no ANN index (LanceDB scans; --lance-index adds an IVF_HNSW_SQ cosine index
                as a separate stage, lance_index, with LanceDB's default partitioning)
  tantivy       a tantivy index in OUT/tantivy, one tantivy document per chunk: id and doc_id
                (raw tokenizer, stored), title and text (tokenizer en_stem, not stored), written
                with index.writer(num_threads=--threads), committed, merges waited for

Stages run one after the other (as a plain user script would); each gets wall time
(time.perf_counter) and process CPU time (time.process_time, all threads), and the whole
pipeline is timed end to end. Peak RSS is getrusage(RUSAGE_SELF).ru_maxrss (also recorded
after each stage). Thread pools are bounded to --threads where the libraries let us
(torch intra-op, OMP/MKL, the tokenizer's rayon pool, Lance's CPU pool, tantivy's writer).

--check (after the timed run, not timed): tantivy is queried with the words of the first
document's title (fields title and text) and LanceDB with the embedding of the first document's
text (cosine); the first document must be in the top 5 documents of each, else exit 1.

Setup (creates .venv-ingest-peer, pinned; fetches models/ if needed):
  bash bench/peers/setup-ingest.sh
Run (the full comparison; --out must be absent or empty):
  .venv-ingest-peer/bin/python bench/peers/ingest_pipeline.py \\
      --jsonl data/text/gcide-5k/corpus.jsonl --model models/all-MiniLM-L6-v2 \\
      --out bench/out/ingest-peer --threads 2 --batch 32 --chunk-tokens 200 \\
      --json bench/out/ingest-peer.json [--limit N] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import sys
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jsonl", required=True, type=Path, help="BEIR corpus.jsonl")
    ap.add_argument("--model", required=True, type=Path, help="sentence-transformers model dir")
    ap.add_argument("--out", required=True, type=Path,
                    help="directory for the LanceDB and tantivy data (absent or empty)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--chunk-tokens", type=int, default=200)
    ap.add_argument("--limit", type=int, default=None, help="first N documents only")
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    ap.add_argument("--check", action="store_true",
                    help="after the run, check that both indexes find the first document")
    ap.add_argument("--lance-index", action="store_true",
                    help="also build an IVF_HNSW_SQ cosine index on the LanceDB table")
    ap.add_argument("--overwrite", action="store_true",
                    help="remove OUT/lancedb and OUT/tantivy first when they exist")
    return ap.parse_args()


ARGS = parse_args()
# Before torch / tokenizers / lance load: CPU only, thread pools bounded to --threads.
os.environ["CUDA_VISIBLE_DEVICES"] = ""
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS", "LANCE_CPU_THREADS"):
    os.environ[var] = str(ARGS.threads)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import lancedb  # noqa: E402
import tantivy  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()

VERSION_PACKAGES = ("torch", "transformers", "sentence-transformers", "tokenizers", "numpy",
                    "lancedb", "pyarrow", "tantivy")
TOP_K = 5
TANTIVY_HEAP = 256 * 1024 * 1024


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["torch_cuda_build"] = torch.version.cuda
    return out


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def dir_mib(p: Path) -> float:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / (1024 * 1024)


class Stages:
    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def run(self, name: str, fn, *a, **kw):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn(*a, **kw)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        self.rows[name] = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib_after": maxrss_mib()}
        print(f"  {name:<12} {wall:8.2f} s wall  {cpu:8.2f} s cpu", file=sys.stderr)
        return result


# ---------------------------------------------------------------- stages


def read_chunk(path: Path, tokenizer, budget: int, limit: int | None):
    docs = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            title, text = d.get("title") or "", d.get("text") or ""
            full = f"{title}\n\n{text}" if title.strip() else text
            docs.append((str(d["_id"]), title, text, full))
            if limit is not None and len(docs) >= limit:
                break
    enc = tokenizer([d[3] for d in docs], add_special_tokens=False, return_offsets_mapping=True,
                    return_attention_mask=False, return_token_type_ids=False, verbose=False)
    chunks = []  # (id, doc_id, title, text)
    tokens = 0
    for (doc_id, title, _text, full), offsets in zip(docs, enc["offset_mapping"]):
        n = 0
        for start in range(0, len(offsets), budget):
            window = offsets[start : start + budget]
            piece = full[window[0][0] : window[-1][1]]
            if not piece.strip():
                continue
            chunks.append((f"{doc_id}#{n}", doc_id, title, piece))
            tokens += len(window)
            n += 1
    return docs, chunks, tokens


def embed(model: SentenceTransformer, texts: list[str], batch: int) -> np.ndarray:
    return model.encode(texts, batch_size=batch, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False)


def lance_write(db_dir: Path, chunks, vectors: np.ndarray):
    dim = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    table = pa.table({
        "id": pa.array([c[0] for c in chunks], pa.string()),
        "doc_id": pa.array([c[1] for c in chunks], pa.string()),
        "title": pa.array([c[2] for c in chunks], pa.string()),
        "text": pa.array([c[3] for c in chunks], pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
    })
    db = lancedb.connect(str(db_dir))
    return db.create_table("chunks", data=table)


def lance_index(tbl) -> None:
    from lancedb.index import HnswSq

    tbl.create_index("vector", config=HnswSq(distance_type="cosine"))  # LanceDB's defaults


def tantivy_build(index_dir: Path, chunks, threads: int):
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    sb.add_text_field("doc_id", stored=True, tokenizer_name="raw")
    sb.add_text_field("title", stored=False, tokenizer_name="en_stem")
    sb.add_text_field("text", stored=False, tokenizer_name="en_stem")
    schema = sb.build()
    index_dir.mkdir(parents=True)
    index = tantivy.Index(schema, path=str(index_dir))
    writer = index.writer(heap_size=TANTIVY_HEAP, num_threads=threads)
    for cid, doc_id, title, text in chunks:
        writer.add_document(tantivy.Document(id=cid, doc_id=doc_id, title=title, text=text))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return index


# ---------------------------------------------------------------- check


def top_docs(ids: list[str]) -> list[str]:
    seen: list[str] = []
    for d in ids:
        if d not in seen:
            seen.append(d)
    return seen


def check(model, tbl, index, first) -> dict:
    doc_id, title, text, _full = first
    words = re.findall(r"\w+", title) or re.findall(r"\w+", text)[:8]
    query = index.parse_query(" ".join(words), ["title", "text"])
    searcher = index.searcher()
    hits = searcher.search(query, 50).hits
    t_docs = top_docs([searcher.doc(addr)["doc_id"][0] for _score, addr in hits])[:TOP_K]
    qv = embed(model, [text], 1)[0]
    rows = (tbl.search(qv, vector_column_name="vector").distance_type("cosine")
            .limit(50).to_list())
    l_docs = top_docs([r["doc_id"] for r in rows])[:TOP_K]
    ok = doc_id in t_docs and doc_id in l_docs
    return {"doc_id": doc_id, "tantivy_query": " ".join(words), "tantivy_top": t_docs,
            "lancedb_query": "embedding of the document's text", "lancedb_top": l_docs,
            "ok": ok}


# ---------------------------------------------------------------- main


def main() -> int:
    a = ARGS
    out: Path = a.out
    lance_dir, tantivy_dir = out / "lancedb", out / "tantivy"
    if a.overwrite:
        for p in (lance_dir, tantivy_dir):
            if p.exists():
                shutil.rmtree(p)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"error: {out} is not empty (use a fresh directory, or --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(a.threads)

    print(f"peer ingest: {a.jsonl} -> {out}  threads={a.threads} batch={a.batch} "
          f"chunk_tokens={a.chunk_tokens}", file=sys.stderr)
    w0, c0 = time.perf_counter(), time.process_time()
    model = SentenceTransformer(str(a.model), device="cpu")
    model_load_s = time.perf_counter() - w0
    model_load_cpu_s = time.process_time() - c0
    rss_after_load = maxrss_mib()
    print(f"  {'model_load':<12} {model_load_s:8.2f} s wall  {model_load_cpu_s:8.2f} s cpu "
          f"(excluded)", file=sys.stderr)

    st = Stages()
    w0, c0 = time.perf_counter(), time.process_time()
    docs, chunks, tokens = st.run("read_chunk", read_chunk, a.jsonl, model.tokenizer,
                                  a.chunk_tokens, a.limit)
    vectors = st.run("embed", embed, model, [c[3] for c in chunks], a.batch)
    tbl = st.run("lance_write", lance_write, lance_dir, chunks, vectors)
    if a.lance_index:
        st.run("lance_index", lance_index, tbl)
    index = st.run("tantivy", tantivy_build, tantivy_dir, chunks, a.threads)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0

    for row in st.rows.values():
        row["wall_share"] = row["wall_s"] / wall if wall else None
        row["cpu_share"] = row["cpu_s"] / cpu if cpu else None
    n_docs, n_chunks = len(docs), len(chunks)
    result = {
        "system": "peer: sentence-transformers + LanceDB + tantivy (en_stem)",
        "corpus": str(a.jsonl),
        "model": str(a.model),
        "documents": n_docs,
        "chunks": n_chunks,
        "chunk_tokens": a.chunk_tokens,
        "tokens": tokens,
        "dim": int(vectors.shape[1]) if n_chunks else None,
        "threads": a.threads,
        "batch": a.batch,
        "lance_index": "IVF_HNSW_SQ cosine" if a.lance_index else None,
        "model_load_s": model_load_s,
        "model_load_cpu_s": model_load_cpu_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_utilisation": cpu / wall if wall else None,
        "documents_per_s": n_docs / wall if wall else None,
        "chunks_per_s": n_chunks / wall if wall else None,
        "stages": st.rows,
        "peak_rss_mib": maxrss_mib(),
        "peak_rss_mib_after_model_load": rss_after_load,
        "disk_mib": {"lancedb": dir_mib(lance_dir), "tantivy": dir_mib(tantivy_dir)},
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    rc = 0
    if a.check:
        result["check"] = check(model, tbl, index, docs[0])
        rc = 0 if result["check"]["ok"] else 1
    text = json.dumps(result, indent=2)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(text + "\n")
    else:
        print(text)
    shares = "  ".join(f"{k} {v['wall_share']:.0%}" for k, v in st.rows.items())
    print(f"peer ingest: {n_docs} docs, {n_chunks} chunks in {wall:.2f} s "
          f"({result['documents_per_s']:.1f} docs/s, {result['chunks_per_s']:.1f} chunks/s), "
          f"cpu {cpu:.2f} s, peak RSS {result['peak_rss_mib']:.0f} MiB, "
          f"model load {model_load_s:.2f} s (excluded); {shares}"
          + (f"; check {'ok' if rc == 0 else 'FAILED'}" if a.check else ""))
    if rc:
        print(json.dumps(result["check"], indent=2), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
